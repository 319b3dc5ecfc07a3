//! Evaluating a model on its config's eval set: the loop `worker eval` runs once and `worker join` runs for
//! every job (the baseline, then each cell with its group masked).
//!
//! A [`Session`] loads the model and opens the eval set once; [`Session::evaluate`] feeds every batch through
//! the engine and hands the outputs to `sensgrid_eval`'s post-processing and metric. Masking happens in
//! place on the loaded weights and is undone bit for bit afterwards, also when the evaluation fails, so one
//! session serves any number of cells.
//!
//! The fast path of issue 16: the first evaluation keeps the eval set decoded, resized and normalized as
//! tensors on the device (when it fits the cache budget, `Sensitivity.cache_mb`), so later jobs never decode
//! again; and a masked evaluation runs each batch only from the first step its mask changes, reusing the
//! activations there across the cells of a group (`boundary_cache.rs`); post-processing runs on its own thread,
//! overlapping the next batch's inference; on CUDA, cuDNN's benchmark mode picks its fastest convolutions; and
//! `Sensitivity.precision: fp16` runs the model in half precision (`Executor::with_precision`).

use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use sensgrid_eval::Config;
use sensgrid_eval::batch::{Batch, batches};
use sensgrid_eval::dataset::Dataset;
use sensgrid_eval::evaluate::{Evaluator, open_dataset, sensitivity_open_options};
use sensgrid_eval::metric_dict::MetricDict;
use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::ir::Graph;
use sensgrid_model::onnx;
use sensgrid_model::prune::{Criterion, Cut, Plan, structural};
use tch::{Device, Tensor};

use crate::boundary_cache::{BoundaryCache, CacheStats};
use crate::exec::Executor;
use crate::pruning;

/// PaddleOCR evaluates det sets one image at a time (their sizes differ); rec and cls crops share one shape.
const DET_BATCH: usize = 1;
/// Used when the config has no `Eval.loader.batch_size_per_card`.
const DEFAULT_BATCH: usize = 64;
/// `Sensitivity.cache_mb` when the config leaves it out, on the CPU.
pub const DEFAULT_CACHE_MB_CPU: usize = 1024;
/// On a GPU, the share of its free memory (once the model is loaded) that `Sensitivity.cache_mb` defaults to:
/// the rest stays for the activations of the runs themselves and for other workers on the same GPU.
pub const DEFAULT_CACHE_SHARE_CUDA: f64 = 0.25;
/// On a GPU whose free memory the CUDA runtime does not tell.
pub const DEFAULT_CACHE_MB_CUDA: usize = 2048;

/// How far an evaluation is: samples scored, out of the set's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// A model loaded on a device with its config's eval set, ready to evaluate with or without a mask.
pub struct Session {
    config: Config,
    graph: Graph,
    executor: Executor,
    dataset: Dataset,
    batch_size: usize,
    /// The channel groups, computed on first use (static shapes at the first sample's size).
    analysis: Option<Analysis>,
    /// The bytes the decoded eval set and the boundaries may hold together.
    budget: usize,
    eval_set: EvalSet,
    /// The boundaries masked evaluations share.
    boundaries: BoundaryCache,
    /// Whether masked evaluations run from the boundary cache (on by default; off to measure it).
    incremental: bool,
}

/// The eval set as the engine takes it.
enum EvalSet {
    /// Not read through yet: the first evaluation decodes it and keeps it if it fits.
    Unread,
    /// Decoded, resized and normalized, one model input per batch on the device.
    Kept(Vec<Prepared>),
    /// Larger than the budget: decoded from disk by every evaluation.
    Streamed,
}

/// One batch ready for the model.
struct Prepared {
    /// The targets and shapes the evaluator reads (its `images` are emptied: the pixels are in `input`).
    batch: Batch,
    input: Tensor,
}

impl Session {
    /// Loads `Global.pretrained_model` onto `device` and opens the eval set (the first
    /// `Sensitivity.eval_samples` lines of it, when that is set).
    ///
    /// # Errors
    /// An unreadable or unsupported model, an eval set with a bad line or a missing image.
    pub fn open(config: Config, device: Device) -> Result<Session> {
        let sensitivity = config.sensitivity();
        let dataset = open_dataset(&config, &sensitivity_open_options(&config))?;
        if device.is_cuda() {
            // Every job of a run sees the same few input shapes: choosing cuDNN's fastest algorithm per shape
            // once pays for itself at once.
            tch::Cuda::cudnn_set_benchmark(true);
        }
        let graph = onnx::read(config.model_path())?;
        // `Sensitivity.precision`: fp16 halves the memory and, on a GPU, uses its half-precision units; every
        // cell and the baseline of a run share it, so losses compare like with like.
        let executor = Executor::with_precision(&graph, device, sensitivity.precision)?;
        let batch_size = batch_size(&config, &dataset);
        let budget = match sensitivity.cache_mb {
            Some(mb) => mb.saturating_mul(1 << 20),
            None => default_cache_bytes(device),
        };
        Ok(Session {
            config,
            graph,
            executor,
            dataset,
            batch_size,
            analysis: None,
            budget,
            eval_set: EvalSet::Unread,
            boundaries: BoundaryCache::new(budget),
            incremental: true,
        })
    }

    /// Turns incremental cells on or off (`worker join --no-incremental`): off, every masked evaluation runs
    /// the whole graph. Results are the same either way.
    pub fn set_incremental(&mut self, on: bool) {
        self.incremental = on;
    }

    /// What the boundary cache has done so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.boundaries.stats()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The number of samples one evaluation scores.
    pub fn num_samples(&self) -> usize {
        self.dataset.len()
    }

    /// The channel groups of the model.
    ///
    /// # Errors
    /// An eval set without samples, or a model whose shapes cannot be inferred.
    pub fn analysis(&mut self) -> Result<&Analysis> {
        if self.analysis.is_none() {
            // Group membership does not depend on the input's size: any real sample gives it.
            let sample = match self.dataset.iter().next() {
                Some(sample) => sample?,
                None => bail!("the eval set is empty: no sample to trace the model's channels with"),
            };
            let [c, h, w] = sample.shape;
            self.analysis = Some(groups::analyse_at(&self.graph, &[vec![1, c, h, w]])?);
        }
        Ok(self.analysis.as_ref().expect("just computed"))
    }

    /// Scores the model as loaded. `progress` is called after every batch; an error from it stops the
    /// evaluation and is returned (that is how a cancelled job stops).
    ///
    /// # Errors
    /// An image that does not decode, a failing node, a model output the post-processing does not take.
    pub fn evaluate(&mut self, progress: &mut dyn FnMut(Progress) -> Result<()>) -> Result<MetricDict> {
        self.score(None, progress, None)
    }

    /// Scores the model from `from` on (see [`Run`]), handing each batch's first output to `outputs` if given.
    /// Post-processing runs on a thread of its own, so that it overlaps the inference of the next batch.
    fn score(
        &mut self,
        from: Option<usize>,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
        outputs: Option<&mut Vec<Tensor>>,
    ) -> Result<MetricDict> {
        let mut evaluator = Evaluator::new(&self.config)?;
        std::thread::scope(|scope| {
            // One batch waits while the next one runs: enough to overlap, without piling up outputs.
            let (sender, receiver) = mpsc::sync_channel::<Scored>(1);
            let post = scope.spawn(move || -> Result<Evaluator> {
                for scored in receiver {
                    evaluator.add_batch(&scored.batch, &scored.values, &scored.dims)?;
                }
                Ok(evaluator)
            });
            let inferred = self.infer_all(from, progress, outputs, &sender);
            drop(sender);
            // The post-processing's error first: it is why the inference could not hand it a batch.
            let evaluator = post.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            inferred?;
            Ok(evaluator.finish())
        })
    }

    /// Runs every batch of the eval set, from `from` on, and sends its output to the post-processing.
    fn infer_all(
        &mut self,
        from: Option<usize>,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
        mut outputs: Option<&mut Vec<Tensor>>,
        post: &mpsc::SyncSender<Scored>,
    ) -> Result<()> {
        let total = self.dataset.len();
        let mut done = 0;
        let mut run = Run {
            executor: &self.executor,
            boundaries: &mut self.boundaries,
            from,
        };
        let mut score = |index: usize, batch: &Batch, input: &Tensor| -> Result<()> {
            let output = run.first_output(index, input)?;
            if let Some(outputs) = outputs.as_deref_mut() {
                outputs.push(output.shallow_clone());
            }
            let output = output.to_device(Device::Cpu).to_kind(tch::Kind::Float).contiguous();
            let dims: Vec<usize> = output.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(&output.flatten(0, -1)).context("reading the model's output")?;
            // The batch's pixels are in `input`; the evaluator reads its targets and shapes.
            let batch = Batch {
                images: Vec::new(),
                shape: batch.shape,
                shape_lists: batch.shape_lists.clone(),
                targets: batch.targets.clone(),
            };
            done += batch.shape[0];
            if post.send(Scored { batch, values, dims }).is_err() {
                bail!("the post-processing stopped");
            }
            progress(Progress { done, total })
        };
        match &self.eval_set {
            EvalSet::Kept(batches) => {
                for (index, prepared) in batches.iter().enumerate() {
                    score(index, &prepared.batch, &prepared.input)?;
                }
            }
            EvalSet::Unread | EvalSet::Streamed => {
                let device = self.executor.device();
                let mut keep = matches!(self.eval_set, EvalSet::Unread).then(Vec::new);
                let mut kept_bytes = 0;
                for (index, batch) in batches(self.dataset.iter(), self.batch_size).enumerate() {
                    let mut batch = batch?;
                    let dims: Vec<i64> = batch.shape.iter().map(|&d| d as i64).collect();
                    let input = Tensor::from_slice(&batch.images).reshape(&dims).to_device(device);
                    batch.images = Vec::new();
                    score(index, &batch, &input)?;
                    if let Some(kept) = keep.as_mut() {
                        kept_bytes += input.numel() * input.kind().elt_size_in_bytes();
                        if kept_bytes > self.budget {
                            keep = None;
                            self.eval_set = EvalSet::Streamed;
                        } else {
                            kept.push(Prepared { batch, input });
                        }
                    }
                }
                if let Some(batches) = keep {
                    self.eval_set = EvalSet::Kept(batches);
                    // The kept set comes out of the budget; the boundaries get the rest.
                    self.boundaries.set_budget(self.budget - kept_bytes);
                }
            }
        }
        Ok(())
    }

    /// The model as loaded (unmasked between evaluations).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The model on the device.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// The model with the channels `plan` names removed for real (`Cut` ranks them by `criterion`), as
    /// `worker prune` writes it.
    ///
    /// # Errors
    /// A plan naming an unknown or excluded group, or a ratio outside (0, 1).
    pub fn prune(&mut self, plan: &Plan, criterion: Criterion) -> Result<Graph> {
        self.analysis()?;
        let analysis = self.analysis.as_ref().expect("computed above");
        let cut = Cut::plan(&self.graph, analysis, plan, criterion)?;
        Ok(structural::prune(&self.graph, analysis, &cut)?.graph)
    }

    /// Masks the channels `plan` prunes (ranked by `criterion`), scores the model, and restores every weight
    /// bit for bit, whether or not the evaluation succeeded. Each batch runs only from the first step the mask
    /// changes, from activations kept for the earlier cells of the group when there are some.
    ///
    /// # Errors
    /// A plan naming an unknown group or a ratio outside (0, 1); as [`Session::evaluate`].
    pub fn evaluate_masked(
        &mut self,
        plan: &Plan,
        criterion: Criterion,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
    ) -> Result<MetricDict> {
        self.masked(plan, criterion, progress, None)
    }

    /// [`Session::evaluate_masked`], also returning each batch's first model output as it was scored (the
    /// tests compare them bit for bit with full runs).
    ///
    /// # Errors
    /// As [`Session::evaluate_masked`].
    pub fn evaluate_masked_outputs(
        &mut self,
        plan: &Plan,
        criterion: Criterion,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
    ) -> Result<(MetricDict, Vec<Tensor>)> {
        let mut outputs = Vec::new();
        let metrics = self.masked(plan, criterion, progress, Some(&mut outputs))?;
        Ok((metrics, outputs))
    }

    fn masked(
        &mut self,
        plan: &Plan,
        criterion: Criterion,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
        outputs: Option<&mut Vec<Tensor>>,
    ) -> Result<MetricDict> {
        self.analysis()?;
        let analysis = self.analysis.as_ref().expect("computed above");
        let cut = Cut::plan(&self.graph, analysis, plan, criterion)?;
        let masked = pruning::mask(&mut self.executor, &mut self.graph, analysis, &cut)?;
        // Everything before the first reader of a masked constant is the unmasked run's.
        let from = if self.incremental {
            self.executor.first_reader(masked.tensors())
        } else {
            None
        };
        let result = self.score(from, progress, outputs);
        pruning::unmask(&mut self.executor, &mut self.graph, masked)?;
        result
    }
}

/// How one evaluation runs a batch: in full, or from the boundary at step `from`.
struct Run<'a> {
    executor: &'a Executor,
    boundaries: &'a mut BoundaryCache,
    from: Option<usize>,
}

impl Run<'_> {
    /// The model's first output on eval batch `index`.
    fn first_output(&mut self, index: usize, input: &Tensor) -> Result<Tensor> {
        let outputs = match self.from {
            Some(step) => self.boundaries.outputs(self.executor, step, index, input)?,
            None => self.executor.run(std::slice::from_ref(input))?,
        };
        outputs.into_iter().next().context("the model has no output")
    }
}

/// One batch's model output on its way to the post-processing.
struct Scored {
    batch: Batch,
    values: Vec<f32>,
    dims: Vec<usize>,
}

/// The cache budget when `Sensitivity.cache_mb` is not set: [`DEFAULT_CACHE_MB_CPU`] on the CPU, a
/// [`DEFAULT_CACHE_SHARE_CUDA`] of the GPU's free memory on CUDA.
fn default_cache_bytes(device: Device) -> usize {
    let Device::Cuda(index) = device else {
        return DEFAULT_CACHE_MB_CPU << 20;
    };
    match crate::devices::cuda_memory(index) {
        Ok((free, total)) => {
            let budget = (free as f64 * DEFAULT_CACHE_SHARE_CUDA) as usize;
            tracing::info!(
                free_mb = free >> 20,
                total_mb = total >> 20,
                cache_mb = budget >> 20,
                "cache budget on cuda:{index}"
            );
            budget
        }
        Err(error) => {
            tracing::warn!(%error, cache_mb = DEFAULT_CACHE_MB_CUDA, "cuda:{index}: free memory unknown; Sensitivity.cache_mb defaults to a fixed size");
            DEFAULT_CACHE_MB_CUDA << 20
        }
    }
}

/// `Eval.loader.batch_size_per_card` for rec and cls sets; det images go one at a time.
fn batch_size(config: &Config, dataset: &Dataset) -> usize {
    use sensgrid_eval::transforms::LabelKind;
    if dataset.pipeline().label_kind() == LabelKind::Det {
        return DET_BATCH;
    }
    config.eval_batch_size().unwrap_or(DEFAULT_BATCH)
}
