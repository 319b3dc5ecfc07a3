//! The client side of `coordinator submit`: everything checked and computed before any job exists.
//!
//! [`prepare`] reads the config with its overrides, reads the model and refuses an op the workers do not run,
//! packs the eval set (every label line and image read, so a missing one is refused here, naming it), finds
//! the channel groups, params and FLOPs at the eval set's input shape, applies `Sensitivity.skip` (a pattern
//! that matches no group is refused) and lays out the grid. Nothing touches the coordinator until it all
//! succeeded, so a refused submission leaves no run and no job behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sensgrid_eval::config::schema::transform::DetResize;
use sensgrid_eval::config::{PruneTarget as ConfigPruneTarget, Transform};
use sensgrid_eval::{Config, bundle};
use sensgrid_model::analysis::count;
use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::ir::{Dim, Graph};
use sensgrid_model::{onnx, ops};
use serde_json::{Value, json};

use crate::spec::{EvalSubset, ExcludedSpec, GroupSpec, MeasuredSpec, PruneSpec, PruneTarget, RunSpec};

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
/// with an op outside the table, a missing label file or image, a skip pattern that matches no group, a model
/// whose groups cannot be found at the eval shape.
pub fn prepare(config_path: &Path, overrides: &[String], name: Option<&str>) -> Result<Prepared> {
    let config = Config::load(config_path, overrides)?;
    let model = config.model_path().to_owned();
    let graph = onnx::read(&model).with_context(|| format!("Global.pretrained_model {}", model.display()))?;
    ops::check_supported(&graph).with_context(|| format!("{}", model.display()))?;
    let mut bundle_bytes = Vec::new();
    let packed =
        bundle::pack(&config, &mut bundle_bytes).with_context(|| format!("{}: Eval.dataset", config_path.display()))?;
    let input_shape = input_shape(&config, &graph)?;
    let analysis = groups::analyse_at(&graph, std::slice::from_ref(&input_shape))
        .with_context(|| format!("{}: finding channel groups at {input_shape:?}", model.display()))?;
    let flops = count::flops_at(&graph, std::slice::from_ref(&input_shape))
        .with_context(|| format!("{}: counting FLOPs at {input_shape:?}", model.display()))?;
    let sensitivity = config.sensitivity();
    for glob in &sensitivity.skip {
        if !analysis.groups.iter().any(|g| glob.matches(&g.key)) {
            let at = config
                .tree()
                .lookup("Sensitivity.skip")
                .map_or_else(|| config_path.display().to_string(), |node| node.origin.to_string());
            bail!(
                "{at}: Sensitivity.skip: '{}' matches no channel group of {} (`worker inspect {} --groups` lists them)",
                glob.as_str(),
                model.display(),
                model.display()
            );
        }
    }
    let (skipped, analysed): (Vec<GroupSpec>, Vec<GroupSpec>) = group_specs(&graph, &analysis)
        .into_iter()
        .partition(|g| sensitivity.is_skipped(&g.key));
    let cells = analysed
        .iter()
        .flat_map(|g| sensitivity.ratios.iter().map(|&r| (g.key.clone(), r)))
        .collect();
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
        params: count::params(&graph),
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
    };
    Ok(Prepared {
        config_yaml: config.to_yaml(),
        model,
        bundle: bundle_bytes,
        criterion: sensitivity.criterion.as_str(),
        spec,
        cells,
    })
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
    let op_of: BTreeMap<&str, &str> = graph
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.op_type.as_str()))
        .collect();
    analysis
        .groups
        .iter()
        .enumerate()
        .map(|(index, g)| {
            let mut convs: Vec<String> = Vec::new();
            for member in &g.members {
                let weighted = matches!(
                    op_of.get(member.node.as_str()),
                    Some(&("Conv" | "ConvTranspose" | "Gemm" | "MatMul"))
                );
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

/// Known cells from a `sen.pickle`: `{group key: {ratio: loss}}` as PaddleSlim writes it, each as the
/// stored result `{"loss": x}`, keyed by (group key, the ratio's bits).
///
/// # Errors
///
/// An unreadable file, or a pickle that is not such a dict, naming the file and the entry.
pub fn read_sen_pickle(path: &Path) -> Result<BTreeMap<(String, u64), Value>> {
    use serde_pickle::{HashableValue, Value as Pickle};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let value = serde_pickle::value_from_slice(&bytes, serde_pickle::DeOptions::new())
        .with_context(|| format!("{}: not a pickle", path.display()))?;
    let shape = || format!("{}: expected a dict {{group key: {{ratio: loss}}}}", path.display());
    let Pickle::Dict(groups) = value else {
        bail!("{}", shape())
    };
    let mut cells = BTreeMap::new();
    for (key, losses) in groups {
        let key = match key {
            HashableValue::String(key) => key,
            HashableValue::Bytes(bytes) => String::from_utf8(bytes).with_context(shape)?,
            other => bail!("{}: the key {other} is not a string", shape()),
        };
        let Pickle::Dict(losses) = losses else {
            bail!("{}: '{key}' does not map ratios to losses", shape())
        };
        for (ratio, loss) in losses {
            let number = |what: &str, v: f64| {
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(anyhow::anyhow!("{}: '{key}': the {what} {v} is not finite", shape()))
                }
            };
            let ratio = match ratio {
                HashableValue::F64(r) => number("ratio", r)?,
                other => bail!("{}: '{key}': the ratio {other} is not a float", shape()),
            };
            let loss = match loss {
                Pickle::F64(l) => number("loss", l)?,
                Pickle::I64(l) => l as f64,
                other => bail!("{}: '{key}' at {ratio}: the loss {other} is not a number", shape()),
            };
            cells.insert((key.clone(), ratio.to_bits()), json!({"loss": loss}));
        }
    }
    Ok(cells)
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
        assert!(error.contains("sen.pickle: expected a dict"), "{error}");
    }
}
