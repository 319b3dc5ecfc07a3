//! Evaluating a model on its config's eval set: the loop `worker eval` runs once and `worker join` runs for
//! every job (the baseline, then each cell with its group masked).
//!
//! A [`Session`] loads the model and opens the eval set once; [`Session::evaluate`] feeds every batch through
//! the engine and hands the outputs to `sensgrid_eval`'s post-processing and metric. Masking happens in
//! place on the loaded weights and is undone bit for bit afterwards, also when the evaluation fails, so one
//! session serves any number of cells.

use anyhow::{Context, Result, bail};
use sensgrid_eval::batch::batches;
use sensgrid_eval::config::Precision;
use sensgrid_eval::dataset::Dataset;
use sensgrid_eval::evaluate::{Evaluator, open_dataset, sensitivity_open_options};
use sensgrid_eval::metric_dict::MetricDict;
use sensgrid_eval::{Config, config};
use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::ir::Graph;
use sensgrid_model::onnx;
use sensgrid_model::prune::{Criterion, Cut, Plan, structural};
use tch::{Device, Tensor};

use crate::exec::Executor;
use crate::pruning;

/// PaddleOCR evaluates det sets one image at a time (their sizes differ); rec and cls crops share one shape.
const DET_BATCH: usize = 1;
/// Used when the config has no `Eval.loader.batch_size_per_card`.
const DEFAULT_BATCH: usize = 64;

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
}

impl Session {
    /// Loads `Global.pretrained_model` onto `device` and opens the eval set (the first
    /// `Sensitivity.eval_samples` lines of it, when that is set).
    ///
    /// # Errors
    /// An unreadable or unsupported model, an eval set with a bad line or a missing image, a
    /// `Sensitivity.precision` this worker does not run.
    pub fn open(config: Config, device: Device) -> Result<Session> {
        let sensitivity = config.sensitivity();
        if sensitivity.precision != Precision::Fp32 {
            bail!(
                "{}: Sensitivity.precision {}: this worker evaluates in fp32 only",
                config.path().display(),
                sensitivity.precision.as_str()
            );
        }
        let dataset = open_dataset(&config, &sensitivity_open_options(&config))?;
        let graph = onnx::read(config.model_path())?;
        let executor = Executor::new(&graph, device)?;
        let batch_size = batch_size(&config, &dataset);
        Ok(Session {
            config,
            graph,
            executor,
            dataset,
            batch_size,
            analysis: None,
        })
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
    pub fn evaluate(&self, progress: &mut dyn FnMut(Progress) -> Result<()>) -> Result<MetricDict> {
        let mut evaluator = Evaluator::new(&self.config)?;
        let total = self.dataset.len();
        for batch in batches(self.dataset.iter(), self.batch_size) {
            let batch = batch?;
            let dims: Vec<i64> = batch.shape.iter().map(|&d| d as i64).collect();
            let input = Tensor::from_slice(&batch.images).reshape(&dims);
            let outputs = self.executor.run(&[input])?;
            let output = outputs
                .into_iter()
                .next()
                .context("the model has no output")?
                .to_device(Device::Cpu)
                .to_kind(tch::Kind::Float)
                .contiguous();
            let dims: Vec<usize> = output.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(&output.flatten(0, -1)).context("reading the model's output")?;
            evaluator.add_batch(&batch, &values, &dims)?;
            progress(Progress {
                done: evaluator.num_samples(),
                total,
            })?;
        }
        Ok(evaluator.finish())
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
    /// bit for bit, whether or not the evaluation succeeded.
    ///
    /// # Errors
    /// A plan naming an unknown group or a ratio outside (0, 1); as [`Session::evaluate`].
    pub fn evaluate_masked(
        &mut self,
        plan: &Plan,
        criterion: Criterion,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
    ) -> Result<MetricDict> {
        self.analysis()?;
        let analysis = self.analysis.as_ref().expect("computed above");
        let cut = Cut::plan(&self.graph, analysis, plan, criterion)?;
        let masked = pruning::mask(&mut self.executor, &mut self.graph, analysis, &cut)?;
        let result = self.evaluate(progress);
        pruning::unmask(&mut self.executor, &mut self.graph, masked)?;
        result
    }
}

/// The criterion a config names, as the pruning code has it.
pub fn criterion(of: config::Criterion) -> Criterion {
    match of {
        config::Criterion::L1Norm => Criterion::L1Norm,
        config::Criterion::L1NormGroup => Criterion::L1NormGroup,
        config::Criterion::Fpgm => Criterion::Fpgm,
    }
}

/// `Eval.loader.batch_size_per_card` for rec and cls sets; det images go one at a time.
fn batch_size(config: &Config, dataset: &Dataset) -> usize {
    use sensgrid_eval::config::Value;
    use sensgrid_eval::transforms::LabelKind;
    if dataset.pipeline().label_kind() == LabelKind::Det {
        return DET_BATCH;
    }
    match config
        .tree()
        .lookup("Eval.loader.batch_size_per_card")
        .map(|n| &n.value)
    {
        Some(Value::Int(n)) if *n > 0 => *n as usize,
        _ => DEFAULT_BATCH,
    }
}
