//! The client side of `coordinator submit`: everything checked and computed before any job exists.
//!
//! [`prepare`] reads the config with its overrides, reads the model and refuses an op or attribute the workers
//! do not run, checks that the model's output fits `PostProcess`, finds the channel groups, params and FLOPs
//! at the eval set's input shape, applies `Sensitivity.skip` (a pattern that matches no group, or a list that
//! leaves none, is refused), lays out the grid and packs the eval set (every label line and image read, so a
//! missing one is refused here, naming it). Nothing touches the coordinator until it all succeeded, so a
//! refused submission leaves no run and no job behind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sensgrid_eval::config::PostProcess;
use sensgrid_eval::config::schema::transform::DetResize;
use sensgrid_eval::config::{PruneTarget as ConfigPruneTarget, Transform};
use sensgrid_eval::rec::CharacterDict;
use sensgrid_eval::{Config, bundle};
use sensgrid_model::analysis::count;
use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::analysis::shapes;
use sensgrid_model::ir::{Dim, Graph};
use sensgrid_model::prune::sen_pickle::{self, SenPickleError};
use sensgrid_model::{onnx, ops};
use serde_json::{Value, json};

use crate::spec::{EvalSubset, ExcludedSpec, GroupSpec, MeasuredSpec, PruneSpec, PruneTarget, RecoverSpec, RunSpec};

/// PaddleSlim counts a det model's FLOPs at 640x640 (`paddleslim.analysis.dygraph_flops` in PaddleOCR's
/// pruning guide): det sets resize each image differently, so the grid's shape is that one.
pub const DET_INPUT_SIDE: usize = 640;

/// A submission ready to send.
pub struct Prepared {
    /// The config with its overrides applied (see [`Config::to_yaml`]).
    pub config_yaml: String,
    /// The ONNX model file.
    pub model: PathBuf,
    /// The eval set packed as a bundle.
    pub bundle: Vec<u8>,
    /// With a `Recover` section: the training set packed as a training bundle (its digest is the spec's
    /// [`RecoverSpec::train_set_digest`]).
    pub train_set: Option<Vec<u8>>,
    /// `Sensitivity.criterion`.
    pub criterion: &'static str,
    pub spec: RunSpec,
    /// The grid: every analysed group at every ratio, in model order.
    pub cells: Vec<(String, f64)>,
}

/// Checks and lays out a submission.
///
/// # Errors
///
/// One line naming the file, line, key, node or op: a bad config key or override, an unreadable model or one
/// with an op or attribute the executor does not run, a model output that does not fit `PostProcess`, a model
/// whose groups cannot be found at the eval shape, a skip pattern that matches no group or a skip list that
/// leaves none, a missing label file or image. The model is checked before the eval set is read: packing
/// reads every image.
pub fn prepare(config_path: &Path, overrides: &[String], name: Option<&str>) -> Result<Prepared> {
    let config = Config::load(config_path, overrides)?;
    let model = config.model_path().to_owned();
    let graph = onnx::read(&model).with_context(|| format!("Global.pretrained_model {}", model.display()))?;
    ops::check_supported(&graph).with_context(|| format!("{}", model.display()))?;
    let input_shape = input_shape(&config, &graph)?;
    let shapes = shapes::infer(&graph, std::slice::from_ref(&input_shape))
        .with_context(|| format!("{}: inferring shapes at {input_shape:?}", model.display()))?;
    check_output_fits(&config, &graph, &shapes, &input_shape)?;
    let analysis = groups::analyse(&graph, &|name| shapes.get(name).cloned())
        .with_context(|| format!("{}: finding channel groups at {input_shape:?}", model.display()))?;
    let flops = count::flops_at(&graph, std::slice::from_ref(&input_shape))
        .with_context(|| format!("{}: counting FLOPs at {input_shape:?}", model.display()))?;
    let sensitivity = config.sensitivity();
    let skip_at = || {
        sensitivity
            .skip_at
            .as_ref()
            .map_or_else(|| config_path.display().to_string(), ToString::to_string)
    };
    for glob in &sensitivity.skip {
        if !analysis.groups.iter().any(|g| glob.matches(&g.key)) {
            bail!(
                "{}: Sensitivity.skip: '{}' matches no channel group of {} (`worker inspect {} --groups` lists them)",
                skip_at(),
                glob.as_str(),
                model.display(),
                model.display()
            );
        }
    }
    let (skipped, analysed): (Vec<GroupSpec>, Vec<GroupSpec>) = group_specs(&graph, &analysis)
        .into_iter()
        .partition(|g| sensitivity.is_skipped(&g.key));
    // A run of no cells would finish at once with an empty table and nothing to plan.
    if analysed.is_empty() {
        if skipped.is_empty() {
            bail!(
                "{}: no prunable channel group at {input_shape:?} (`worker inspect {} --groups` explains the \
                 excluded convolutions)",
                model.display(),
                model.display()
            );
        }
        bail!(
            "{}: Sensitivity.skip: skips all {} channel groups of {}, which leaves no cell to measure",
            skip_at(),
            skipped.len(),
            model.display()
        );
    }
    let cells = analysed
        .iter()
        .flat_map(|g| sensitivity.ratios.iter().map(|&r| (g.key.clone(), r)))
        .collect();
    let mut bundle_bytes = Vec::new();
    let packed =
        bundle::pack(&config, &mut bundle_bytes).with_context(|| format!("{}: Eval.dataset", config_path.display()))?;
    let prune = config.prune().map(|p| PruneSpec {
        target: match p.target {
            ConfigPruneTarget::MaxLoss(loss) => PruneTarget::MaxLoss(loss),
            ConfigPruneTarget::FlopsReduction(share) => PruneTarget::FlopsReduction(share),
            ConfigPruneTarget::Measured(m) => PruneTarget::Measured(MeasuredSpec {
                max_model_loss: m.max_model_loss,
                flops_reduction: m.flops_reduction,
                latency_reduction: m.latency_reduction,
                tolerance: m.tolerance,
            }),
        },
        export: p.export,
    });
    let train_set = pack_train_set(&config, config_path, prune.as_ref())?;
    let name = name.map_or_else(
        || {
            config_path
                .file_stem()
                .map_or_else(|| "run".to_owned(), |s| s.to_string_lossy().into_owned())
        },
        str::to_owned,
    );
    let spec = RunSpec {
        name,
        config_path: config_path.display().to_string(),
        metric: sensitivity.metric.clone(),
        ratios: sensitivity.ratios.clone(),
        input_shape,
        params: count::params(&graph)?,
        flops,
        groups: analysed,
        skipped,
        excluded: analysis
            .excluded
            .iter()
            .map(|e| ExcludedSpec {
                conv: e.conv.clone(),
                reason: e.reason.clone(),
            })
            .collect(),
        prune,
        eval_samples: (sensitivity.eval_samples > 0).then_some(EvalSubset {
            count: packed.lines,
            of: packed.available,
            seed: sensitivity.seed,
        }),
        early_stop_loss: sensitivity.early_stop_loss,
        precision_name: sensitivity.precision.as_str().to_owned(),
        recover: train_set.as_ref().map(|bytes| RecoverSpec {
            train_set_digest: sensgrid_client::sha256_hex(bytes),
        }),
    };
    Ok(Prepared {
        config_yaml: config.to_yaml(),
        model,
        bundle: bundle_bytes,
        train_set,
        criterion: sensitivity.criterion.name(),
        spec,
        cells,
    })
}

/// The training bundle of a config with a `Recover` section (`None` without one; see [`train_bundle`]). A
/// recovery trains the exported model, so it needs `Prune` with `export`.
///
/// # Errors
/// A `Recover` section without an export, or [`train_bundle`]'s.
fn pack_train_set(config: &Config, config_path: &Path, prune: Option<&PruneSpec>) -> Result<Option<Vec<u8>>> {
    if config.recover().is_none() {
        return Ok(None);
    }
    if !prune.is_some_and(|p| p.export) {
        bail!(
            "{}: Recover: a recovery trains the exported model; it needs a Prune section with export: true",
            config_path.display()
        );
    }
    train_bundle(config, &config_path.display()).map(Some)
}

/// The training set of `config` packed as a training bundle: `Recover.data_dir` + `Recover.label_file_list`,
/// else `Train.dataset`'s images, never the eval set's, listed as the worker's `worker recover` lists them
/// ([`bundle::TrainSet::images`]: labels are not read, a directory entry stands for its images) and each
/// decoded once. `at` names the config in errors.
///
/// # Errors
/// A config without training images, or a training set that does not pack (naming the label file and line,
/// or the directory).
pub fn train_bundle(config: &Config, at: &dyn std::fmt::Display) -> Result<Vec<u8>> {
    let set = bundle::TrainSet::from_config(config)
        .with_context(|| format!("{at}: the training set"))?
        .with_context(|| {
            format!(
                "{at}: Recover: no training images: set Recover.data_dir and Recover.label_file_list, or Train.dataset"
            )
        })?;
    let mut bytes = Vec::new();
    let packed = bundle::pack_train_set(config, &set, &mut bytes)
        .with_context(|| format!("{at}: the training set in {}", set.data_dir.display()))?;
    tracing::info!(images = packed.images, data_dir = %set.data_dir.display(), "packed the training set");
    Ok(bytes)
}

/// Refuses a model whose output cannot be what the config's `PostProcess` reads (a det config on a cls or rec
/// model, a rec dictionary or cls label list of another size than the model's classes): every worker's eval
/// would fail on it, and every cell of the run with it. `shapes` are the graph's at `input_shape`.
///
/// # Errors
///
/// The mismatch, naming the config file and line, the PostProcess name and the model's output shape; an
/// unreadable character dictionary.
fn check_output_fits(
    config: &Config,
    graph: &Graph,
    shapes: &HashMap<String, Vec<usize>>,
    input_shape: &[usize],
) -> Result<()> {
    let model = config.model_path().display();
    let output = graph
        .outputs
        .first()
        .with_context(|| format!("{model}: the model has no output"))?;
    let dims = shapes.get(&output.name).with_context(|| {
        format!(
            "{model}: output '{}' has no inferred shape at {input_shape:?}",
            output.name
        )
    })?;
    let (expected, fits) = match config.post_process() {
        PostProcess::DBPostProcess(_) => (
            "[N, 1, H, W] (a text probability map)".to_owned(),
            matches!(dims[..], [_, 1, _, _]),
        ),
        PostProcess::CTCLabelDecode(args) => {
            let path = args.character_dict_path.as_deref();
            let dict = CharacterDict::from_config(path, args.use_space_char).with_context(|| {
                format!(
                    "{}: PostProcess.character_dict_path {}",
                    config.path().display(),
                    path.map_or_else(String::new, |p| p.display().to_string())
                )
            })?;
            let source = path.map_or_else(|| "the built-in 0-9a-z".to_owned(), |p| p.display().to_string());
            (
                format!("[N, T, {}] (the entries of {source} and the blank)", dict.len()),
                matches!(dims[..], [_, _, classes] if classes == dict.len()),
            )
        }
        PostProcess::ClsPostProcess(args) => (
            format!(
                "[N, {}] (one class per label_list entry {:?})",
                args.label_list.len(),
                args.label_list
            ),
            matches!(dims[..], [_, classes] if classes == args.label_list.len()),
        ),
    };
    if !fits {
        let at = config.post_process_at();
        bail!(
            "{at}: PostProcess.name {} reads a model output of {expected}, but output '{}' of {model} is {dims:?} \
             at input {input_shape:?}",
            config.post_process().name(),
            output.name
        );
    }
    Ok(())
}

/// The shape the grid's groups and FLOPs are computed at: the model's own where it is fixed, else the eval
/// transforms' output size (a rec or cls `image_shape`; 640x640 for det sets, see [`DET_INPUT_SIDE`]), batch 1.
///
/// # Errors
///
/// A model with no input, or an eval set whose shape no transform states.
pub fn input_shape(config: &Config, graph: &Graph) -> Result<Vec<usize>> {
    let input = graph
        .inputs
        .first()
        .with_context(|| format!("{}: the model has no input", config.model_path().display()))?;
    let declared: Option<Vec<Option<usize>>> = input.fact.as_ref().and_then(|f| f.shape.as_ref()).map(|dims| {
        dims.iter()
            .map(|d| match d {
                Dim::Known(size) => Some(*size),
                _ => None,
            })
            .collect()
    });
    let from_transforms = config.eval_dataset().transforms.iter().find_map(|t| match t {
        Transform::DetResizeForTest(resize) => Some(match resize.resize {
            DetResize::ImageShape { height, width, .. } => [3, height, width],
            _ => [3, DET_INPUT_SIDE, DET_INPUT_SIDE],
        }),
        Transform::RecResizeImg(resize) => Some(resize.image_shape),
        Transform::ClsResizeImg(resize) => Some(resize.image_shape),
        _ => None,
    });
    let eval = from_transforms.map(|[c, h, w]| [1, c, h, w]);
    match (declared, eval) {
        (Some(dims), _) if dims.iter().all(Option::is_some) => Ok(dims.into_iter().flatten().collect()),
        (Some(dims), Some(eval)) if dims.len() == 4 => Ok(dims.iter().zip(eval).map(|(d, e)| d.unwrap_or(e)).collect()),
        (None, Some(eval)) => Ok(eval.to_vec()),
        _ => bail!(
            "{}: the model's input '{}' is dynamic and no eval transform (DetResizeForTest, RecResizeImg, \
             ClsResizeImg) states its size",
            config.path().display(),
            input.name
        ),
    }
}

/// The groups as a run's spec describes them: key, channels, params, FLOPs and the weighted ops they reach.
pub fn group_specs(graph: &Graph, analysis: &Analysis) -> Vec<GroupSpec> {
    let weights_of: BTreeMap<&str, ops::Weights> = graph
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.as_str(), ops::describe(n)?.weights)))
        .collect();
    analysis
        .groups
        .iter()
        .enumerate()
        .map(|(index, g)| {
            let mut convs: Vec<String> = Vec::new();
            for member in &g.members {
                let weighted = matches!(weights_of.get(member.node.as_str()), Some(ops::Weights::Filters { .. }));
                if weighted && !convs.contains(&member.node) {
                    convs.push(member.node.clone());
                }
            }
            GroupSpec {
                key: g.key.clone(),
                index,
                channels: g.channels,
                params: g.params,
                flops: g.flops,
                convs,
            }
        })
        .collect()
}

/// Known cells from a `sen.pickle`: `{group key: {ratio: loss}}` as PaddleSlim writes it, each as the stored
/// result `{"loss": x}`, keyed by (group key, the ratio's bits). The file is untrusted: [`sen_pickle::read`]
/// runs only the opcodes of such a dict, so the file cannot name a class to build or exhaust the stack.
///
/// # Errors
///
/// An unreadable file, one over [`sen_pickle::MAX_BYTES`], or a pickle that is not such a dict, naming the file
/// and the opcode's offset or the entry.
pub fn read_sen_pickle(path: &Path) -> Result<BTreeMap<(String, u64), Value>> {
    use std::io::Read;
    let reading = || format!("reading {}", path.display());
    let file = std::fs::File::open(path).with_context(reading)?;
    let size = file.metadata().with_context(reading)?.len();
    if size > sen_pickle::MAX_BYTES {
        bail!("{}: {}", path.display(), SenPickleError::TooLarge { size });
    }
    let mut bytes = Vec::new();
    // One byte over the limit, so a file that grew since its size was read is still refused.
    file.take(sen_pickle::MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(reading)?;
    let table = sen_pickle::read(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(table
        .into_iter()
        .flat_map(|(key, losses)| {
            losses
                .into_iter()
                .map(move |(ratio, loss)| ((key.clone(), ratio.get().to_bits()), json!({"loss": loss})))
        })
        .collect())
}

/// How far a known cell's ratio may be from a grid ratio and still be that cell: a ratio computed rather than
/// written (`np.arange(0.1, 1, 0.1)` gives 0.30000000000000004) is off in the last bits, while grid ratios
/// are far further apart.
pub const RATIO_TOLERANCE: f64 = 1e-9;

/// What `--resume-from` brings into a new run.
#[derive(Debug, Default, PartialEq)]
pub struct Resumed {
    /// The known cells that are cells of the grid: (group key, the grid's ratio bits) to the stored result.
    pub cells: BTreeMap<(String, u64), Value>,
    /// Why the other known cells are left out: each reason with the number of cells it covers.
    pub dropped: Vec<(String, usize)>,
}

impl Resumed {
    /// The reasons listed in a message; the rest are counted.
    const LISTED: usize = 5;

    pub fn dropped_cells(&self) -> usize {
        self.dropped.iter().map(|(_, cells)| cells).sum()
    }

    /// One line: how many cells are imported, then how many are dropped and why.
    pub fn summary(&self) -> String {
        let imported = format!("imported {}", cells(self.cells.len()));
        if self.dropped.is_empty() {
            return imported;
        }
        format!("{imported}; dropped {}: {}", self.dropped_cells(), self.reasons())
    }

    /// The first few reasons for dropping cells, each with its count of cells when more than one.
    pub fn reasons(&self) -> String {
        let mut listed: Vec<String> = self
            .dropped
            .iter()
            .take(Self::LISTED)
            .map(|(reason, count)| match count {
                1 => reason.clone(),
                _ => format!("{reason} ({})", cells(*count)),
            })
            .collect();
        if self.dropped.len() > Self::LISTED {
            listed.push(format!("and {} more reasons", self.dropped.len() - Self::LISTED));
        }
        listed.join(", ")
    }
}

/// Matches known cells (of a sen.pickle or an earlier run) to the grid of `spec`: a cell is imported when its
/// group is analysed and its ratio is one of `Sensitivity.ratios` (within [`RATIO_TOLERANCE`]); every other is
/// dropped with the reason: a group the model lacks or `Sensitivity.skip` leaves out, or a ratio off the grid.
pub fn resume_cells(spec: &RunSpec, known: BTreeMap<(String, u64), Value>) -> Resumed {
    let analysed: BTreeSet<&str> = spec.groups.iter().map(|g| g.key.as_str()).collect();
    let skipped: BTreeSet<&str> = spec.skipped.iter().map(|g| g.key.as_str()).collect();
    let mut resumed = Resumed::default();
    let mut missing_groups: BTreeMap<String, usize> = BTreeMap::new();
    // Off-grid ratio bits to the groups that have it (ratios in (0, 1) order by their bits as by value).
    let mut off_grid: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut repeated: Vec<String> = Vec::new();
    for ((group, bits), result) in known {
        if !analysed.contains(group.as_str()) {
            *missing_groups.entry(group).or_default() += 1;
            continue;
        }
        let ratio = f64::from_bits(bits);
        let Some(grid_ratio) = spec.ratios.iter().find(|r| (*r - ratio).abs() <= RATIO_TOLERANCE) else {
            off_grid.entry(bits).or_default().push(group);
            continue;
        };
        let cell = (group, grid_ratio.to_bits());
        if resumed.cells.contains_key(&cell) {
            repeated.push(format!(
                "ratio {ratio} of {} repeats ratio {grid_ratio}",
                sen_pickle::quote(&cell.0)
            ));
            continue;
        }
        resumed.cells.insert(cell, result);
    }
    for (group, cells) in missing_groups {
        let reason = if skipped.contains(group.as_str()) {
            format!("{} is left out by Sensitivity.skip", sen_pickle::quote(&group))
        } else {
            format!("{} is not a channel group of this model", sen_pickle::quote(&group))
        };
        resumed.dropped.push((reason, cells));
    }
    for (bits, groups) in off_grid {
        let ratio = f64::from_bits(bits);
        let of = match groups.len() {
            1 => sen_pickle::quote(&groups[0]),
            2 => format!("{} and 1 more group", sen_pickle::quote(&groups[0])),
            more => format!("{} and {} more groups", sen_pickle::quote(&groups[0]), more - 1),
        };
        resumed.dropped.push((
            format!("ratio {ratio} of {of} is not in Sensitivity.ratios"),
            groups.len(),
        ));
    }
    resumed.dropped.extend(repeated.into_iter().map(|reason| (reason, 1)));
    resumed
}

fn cells(count: usize) -> String {
    match count {
        1 => "1 cell".to_owned(),
        _ => format!("{count} cells"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sen_pickle_cells_read_back_as_losses_and_bad_shapes_are_named() {
        use serde_pickle::{HashableValue, SerOptions, Value as Pickle};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sen.pickle");
        let losses = |pairs: &[(f64, f64)]| {
            Pickle::Dict(
                pairs
                    .iter()
                    .map(|&(r, l)| (HashableValue::F64(r), Pickle::F64(l)))
                    .collect(),
            )
        };
        // As PaddleSlim pickles it: str keys, float ratios and losses (a negative loss included).
        let table = Pickle::Dict(
            [
                (
                    HashableValue::String("conv2d_0.w_0".into()),
                    losses(&[(0.1, 0.01), (0.5, -0.25)]),
                ),
                (HashableValue::Bytes(b"conv2d_1.w_0".to_vec()), losses(&[(0.2, 0.5)])),
            ]
            .into_iter()
            .collect(),
        );
        std::fs::write(&path, serde_pickle::value_to_vec(&table, SerOptions::new()).unwrap()).unwrap();
        let cells = read_sen_pickle(&path).unwrap();
        assert_eq!(cells.len(), 3);
        assert_eq!(
            cells[&("conv2d_0.w_0".to_owned(), 0.5f64.to_bits())],
            json!({"loss": -0.25})
        );
        assert_eq!(
            cells[&("conv2d_1.w_0".to_owned(), 0.2f64.to_bits())],
            json!({"loss": 0.5})
        );

        let list = Pickle::List(vec![Pickle::F64(1.0)]);
        std::fs::write(&path, serde_pickle::value_to_vec(&list, SerOptions::new()).unwrap()).unwrap();
        let error = read_sen_pickle(&path).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "sen.pickle: byte 2: EMPTY_LIST is refused: a sen.pickle holds only a dict {str: {float: float}}"
            ),
            "{error}"
        );
    }

    #[test]
    fn sen_pickles_of_serde_pickle_read_across_its_batches_of_items() {
        use serde_pickle::{HashableValue, SerOptions, Value as Pickle};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sen.pickle");
        // serde-pickle sets items in batches of 1000 pairs, as Python does; 1500 groups take two batches.
        let table = Pickle::Dict(
            (0..1500)
                .map(|g| {
                    let losses = [(0.1, f64::from(g)), (0.2, -1.0)]
                        .into_iter()
                        .map(|(r, l)| (HashableValue::F64(r), Pickle::F64(l)))
                        .collect();
                    (HashableValue::String(format!("conv{g}")), Pickle::Dict(losses))
                })
                .collect(),
        );
        for options in [SerOptions::new(), SerOptions::new().proto_v2()] {
            std::fs::write(&path, serde_pickle::value_to_vec(&table, options).unwrap()).unwrap();
            let cells = read_sen_pickle(&path).unwrap();
            assert_eq!(cells.len(), 3000);
            assert_eq!(
                cells[&("conv1499".to_owned(), 0.1f64.to_bits())],
                json!({"loss": 1499.0})
            );
        }
    }

    #[test]
    fn resumed_cells_are_the_grid_cells_and_the_rest_are_dropped_with_the_reason() {
        let group = |key: &str| GroupSpec {
            key: key.to_owned(),
            index: 0,
            channels: 8,
            params: 0,
            flops: 0,
            convs: Vec::new(),
        };
        let spec = RunSpec {
            ratios: vec![0.1, 0.3],
            groups: vec![group("conv1"), group("conv2")],
            skipped: vec![group("conv3")],
            ..RunSpec::default()
        };
        let known = |cells: &[(&str, f64)]| -> BTreeMap<(String, u64), Value> {
            cells
                .iter()
                .map(|&(g, r)| ((g.to_owned(), r.to_bits()), json!({"loss": r})))
                .collect()
        };
        let resumed = resume_cells(
            &spec,
            known(&[
                ("conv1", 0.1),
                // np.arange's 0.3 is the grid's.
                ("conv1", 0.1 + 0.1 + 0.1),
                ("conv1", 0.1 + 1e-12),
                ("conv1", 0.15),
                ("conv2", 0.15),
                ("conv3", 0.1),
                ("conv9", 0.1),
                ("conv9", 0.3),
            ]),
        );
        let imported: Vec<(&str, f64)> = resumed
            .cells
            .keys()
            .map(|(g, bits)| (g.as_str(), f64::from_bits(*bits)))
            .collect();
        assert_eq!(imported, [("conv1", 0.1), ("conv1", 0.3)]);
        assert_eq!(
            resumed.cells[&("conv1".to_owned(), 0.3f64.to_bits())],
            json!({"loss": 0.30000000000000004}),
            "the result is the known cell's, under the grid's ratio"
        );
        assert_eq!(
            resumed.summary(),
            "imported 2 cells; dropped 6: 'conv3' is left out by Sensitivity.skip, 'conv9' is not a channel group \
             of this model (2 cells), ratio 0.15 of 'conv1' and 1 more group is not in Sensitivity.ratios (2 cells), \
             ratio 0.10000000000100001 of 'conv1' repeats ratio 0.1"
        );
        assert_eq!(
            resume_cells(&spec, known(&[("conv2", 0.1)])).summary(),
            "imported 1 cell"
        );

        let many = resume_cells(
            &spec,
            known(&[
                ("a", 0.1),
                ("b", 0.1),
                ("c", 0.1),
                ("d", 0.1),
                ("e", 0.1),
                ("f", 0.1),
                ("g", 0.1),
            ]),
        );
        assert!(many.cells.is_empty());
        assert!(
            many.reasons()
                .ends_with("'e' is not a channel group of this model, and 2 more reasons"),
            "{}",
            many.reasons()
        );
    }
}
