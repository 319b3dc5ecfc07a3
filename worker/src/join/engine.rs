//! The blocking half of `worker join`: one job evaluated on the engine, on a thread of its own while the
//! async half heartbeats. Baselines and cells are scored on the loaded session; the export job prunes the
//! model structurally by its plan, scores the pruned model and times both; a probe does the same with its
//! candidate plan and uploads nothing. A recover job fine-tunes the exported model by distillation from the
//! run's model ([`crate::recover`]), handing each checkpoint to a [`CheckpointSink`] that ships it to the
//! coordinator, and resuming from the checkpoint an earlier attempt shipped. A shipped checkpoint that does not
//! load (corrupt, of another student or other options) is discarded with a warning and the recovery starts over
//! from step 0 ([`UnloadableCheckpoint::StartOver`]): every retry would be handed the same file, so refusing it
//! would fail the job forever.
//!
//! The [`Engine`] keeps the last [`Session`] (model on the device, eval set opened, channel groups traced)
//! and reuses it while jobs share a run's config, model and eval set, which is every job of a run: only the
//! first job of a run pays for loading. Cells are masked and restored bit for bit by the session.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, anyhow};
use sensgrid_eval::metric_dict::MetricDict;
use sensgrid_eval::{Config, bundle};
use sensgrid_model::analysis::count;
use sensgrid_model::onnx;
use sensgrid_model::prune::{Criterion, Plan, planner};
use sensgrid_proto::v1::{Job, JobKind, RecoverProgress};
use tch::{Device, Kind, Tensor};

use crate::evaluate::{Progress, Session};
use crate::latency;
use crate::recover::{self, CHECKPOINT_FILE, RECOVERED_FILE, Recovery, TrainSet, UnloadableCheckpoint};

/// Why a job did not produce metrics.
#[derive(Debug)]
pub enum JobError {
    /// The job's inputs are wrong (config, model, eval set, group, criterion): every attempt would fail alike.
    Input(anyhow::Error),
    /// The evaluation failed in a way another attempt may not (the device, the machine).
    Runtime(anyhow::Error),
    /// Stopped on request: see [`JobState::stop_reason`].
    Stopped,
}

/// Why a running job was told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The coordinator answered a heartbeat with `keep_going = false`: the lease is gone or the run cancelled.
    LeaseLost = 1,
    /// The worker was interrupted twice: hand the job back.
    Release = 2,
}

/// What the evaluating thread and the heartbeat share: progress one way, a stop request the other.
#[derive(Debug, Default)]
pub struct JobState {
    done: AtomicU64,
    total: AtomicU64,
    stop: AtomicU8,
    /// A recover job's last progress and the digest of the last checkpoint it shipped: reported with every
    /// heartbeat, so a report lost to an outage is made good by the next.
    recovery: Mutex<Option<(RecoverProgress, String)>>,
}

impl JobState {
    /// Samples scored so far, out of the set's size.
    pub fn progress(&self) -> (u64, u64) {
        (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }

    /// Asks the evaluation to stop after its current batch (the first reason given wins).
    pub fn stop(&self, reason: Stop) {
        let _ = self
            .stop
            .compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn stop_reason(&self) -> Option<Stop> {
        match self.stop.load(Ordering::SeqCst) {
            1 => Some(Stop::LeaseLost),
            2 => Some(Stop::Release),
            _ => None,
        }
    }

    fn report(&self, progress: Progress) {
        self.done.store(progress.done as u64, Ordering::Relaxed);
        self.total.store(progress.total as u64, Ordering::Relaxed);
    }

    /// A recover job's progress (steps done out of all) and its last shipped checkpoint, empty before the
    /// first; `None` for other jobs.
    pub fn recovery(&self) -> Option<(RecoverProgress, String)> {
        self.recovery.lock().expect("no holder panics").clone()
    }

    fn report_recovery(&self, step: &recover::Progress) {
        self.done.store(step.step, Ordering::Relaxed);
        self.total.store(step.steps, Ordering::Relaxed);
        let mut recovery = self.recovery.lock().expect("no holder panics");
        let last_digest = recovery.take().map(|(_, digest)| digest).unwrap_or_default();
        // Most steps are not evaluated: they carry the last eval's metric on (NaN before any), so that a
        // heartbeat between two evals still reports it, also after a resume.
        let progress = RecoverProgress {
            step: step.step,
            steps: step.steps,
            loss: step.loss,
            metric: step.last_metric.unwrap_or(f64::NAN),
            best: step.best,
        };
        *recovery = Some((progress, last_digest));
    }

    /// Notes the digest of the checkpoint just uploaded, which the heartbeats report from now on.
    pub fn checkpoint_shipped(&self, digest: String) {
        if let Some((_, shipped)) = self.recovery.lock().expect("no holder panics").as_mut() {
            *shipped = digest;
        }
    }
}

/// Ships a recover job's checkpoint (the file at the path) to the coordinator: uploads it, notes its digest in
/// the job's state ([`JobState::checkpoint_shipped`]) and reports it at once. Runs on the engine's thread,
/// which waits for it: until the coordinator keeps it, it is not a checkpoint another worker resumes from.
pub type CheckpointSink = Box<dyn FnMut(&Path, &JobState) -> anyhow::Result<()> + Send>;

/// Timed forward passes per model for the export's latency figures, after untimed warm-up passes (the two
/// models in alternation, see [`latency::compare`]).
const LATENCY_RUNS: usize = 20;
const LATENCY_WARMUP: usize = 3;

/// What a finished job reports.
#[derive(Debug)]
pub struct Outcome {
    pub metrics: MetricDict,
    /// Export jobs: params, FLOPs and latency before and after.
    pub report: HashMap<String, f64>,
    /// Export jobs: the pruned ONNX to upload; recover jobs: recovered.onnx.
    pub artifact: Option<PathBuf>,
    /// Recover jobs: recover_report.json.
    pub report_json: String,
    /// Wall time of the job on this worker.
    pub seconds: f64,
}

impl Outcome {
    fn metrics(metrics: MetricDict) -> Outcome {
        Outcome {
            metrics,
            report: HashMap::new(),
            artifact: None,
            report_json: String::new(),
            seconds: 0.0,
        }
    }
}

/// How an export failed: its inputs (every attempt would fail alike) or the run.
enum ExportError {
    Input(anyhow::Error),
    Runtime(anyhow::Error),
}

/// A job with its artifacts on local disk.
pub struct Inputs {
    pub job: Job,
    /// The model, `models/<digest>.onnx` in the cache.
    pub model: PathBuf,
    /// The unpacked eval bundle.
    pub bundle: PathBuf,
    /// Recover jobs: what else they train with.
    pub recovery: Option<RecoverInputs>,
}

/// A recover job's inputs beside the run's model (the teacher) and eval set.
pub struct RecoverInputs {
    /// The exported model, in the cache.
    pub student: PathBuf,
    /// The unpacked training bundle.
    pub train_set: PathBuf,
    /// The job's own directory: the checkpoint to resume from (when an earlier attempt shipped one) is placed
    /// there before the job runs, and the recovery writes its checkpoints and outputs there.
    pub out_dir: PathBuf,
    pub checkpoint_sink: CheckpointSink,
}

/// What a loaded session was opened from.
#[derive(PartialEq, Eq)]
struct SessionKey {
    config_yaml: String,
    model_digest: String,
    dataset_digest: String,
}

/// Evaluates jobs on one device, reusing the session of the last one.
pub struct Engine {
    device: Device,
    /// Whether cells run incrementally (see [`Session::set_incremental`]).
    incremental: bool,
    loaded: Option<(SessionKey, Session)>,
}

impl Engine {
    pub fn new(device: Device, incremental: bool) -> Engine {
        Engine {
            device,
            incremental,
            loaded: None,
        }
    }

    /// Runs one job, reporting progress to `state` and stopping when it asks.
    ///
    /// # Errors
    /// [`JobError`]: bad inputs, a failed evaluation, or a stop.
    pub fn run(&mut self, inputs: &mut Inputs, state: &Arc<JobState>) -> Result<Outcome, JobError> {
        let job = &inputs.job;
        let kind = job.kind();
        let started = Instant::now();
        let mut progress = |p: Progress| {
            state.report(p);
            match state.stop_reason() {
                Some(_) => Err(anyhow!("stopped")),
                None => Ok(()),
            }
        };
        let stopped_or = |error: anyhow::Error| match state.stop_reason() {
            Some(_) => JobError::Stopped,
            None => JobError::Runtime(error),
        };
        let mut outcome = match kind {
            JobKind::Baseline => {
                let session = self.session(inputs).map_err(JobError::Input)?;
                Outcome::metrics(session.evaluate(&mut progress).map_err(stopped_or)?)
            }
            JobKind::Cell => {
                let session = self.session(inputs).map_err(JobError::Input)?;
                let (plan, criterion) = cell(session, job).map_err(JobError::Input)?;
                Outcome::metrics(
                    session
                        .evaluate_masked(&plan, criterion, &mut progress)
                        .map_err(stopped_or)?,
                )
            }
            JobKind::Export | JobKind::Probe => {
                let mut outcome = self.export(inputs, &mut progress).map_err(|e| match e {
                    ExportError::Input(e) => JobError::Input(e),
                    ExportError::Runtime(e) => stopped_or(e),
                })?;
                if kind == JobKind::Probe {
                    // A probe's model is measured, never shipped.
                    if let Some(path) = outcome.artifact.take() {
                        let _ = std::fs::remove_file(path);
                    }
                }
                outcome
            }
            JobKind::Recover => self.recover(inputs, state).map_err(|e| match e {
                ExportError::Input(e) => JobError::Input(e),
                ExportError::Runtime(e) => stopped_or(e),
            })?,
            JobKind::Unspecified => {
                return Err(JobError::Input(anyhow!(
                    "job {}: kind {} is not a job this worker runs",
                    job.job_id,
                    kind
                )));
            }
        };
        outcome.seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    }

    /// The export job (and a probe): prunes the run's model structurally by the plan it carries (never
    /// recomputed here), writes the pruned ONNX beside the cached model, scores it on the eval set, and measures
    /// both models' latency on this device at the run's input shape, one right after the other.
    fn export(
        &mut self,
        inputs: &Inputs,
        progress: &mut dyn FnMut(Progress) -> anyhow::Result<()>,
    ) -> Result<Outcome, ExportError> {
        let job = &inputs.job;
        let input = ExportError::Input;
        if job.plan.is_empty() {
            return Err(input(anyhow!(
                "job {}: an export or probe job without a plan",
                job.job_id
            )));
        }
        let shape: Vec<usize> = job.input_shape.iter().map(|&d| d as usize).collect();
        if shape.len() != 4 {
            return Err(input(anyhow!(
                "job {}: input_shape {shape:?}: expected N, C, H, W",
                job.job_id
            )));
        }
        let plan: Plan = planner::cut_plan(&job.plan.iter().map(|(k, &r)| (k.clone(), r)).collect());
        let device = self.device;
        let session = self.session(inputs).map_err(input)?;
        let criterion = match job.criterion.as_str() {
            "" => session.config().sensitivity().criterion,
            name => name.parse().map_err(|e: sensgrid_model::ModelError| input(e.into()))?,
        };
        let pruned = session
            .prune(&plan, criterion)
            .with_context(|| format!("job {}: pruning by the plan", job.job_id))
            .map_err(input)?;
        let before = session.graph();
        let dims = std::slice::from_ref(&shape);
        let mut report = HashMap::from([
            (
                "params_before".to_owned(),
                count::params(before).map_err(|e| input(e.into()))? as f64,
            ),
            (
                "params_after".to_owned(),
                count::params(&pruned).map_err(|e| input(e.into()))? as f64,
            ),
            (
                "flops_before".to_owned(),
                count::flops_at(before, dims).map_err(|e| input(e.into()))? as f64,
            ),
            (
                "flops_after".to_owned(),
                count::flops_at(&pruned, dims).map_err(|e| input(e.into()))? as f64,
            ),
        ]);
        let zeros = || {
            Tensor::zeros(
                shape.iter().map(|&d| d as i64).collect::<Vec<_>>(),
                (Kind::Float, device),
            )
        };
        let path = inputs.model.with_extension(format!("pruned-{}.onnx", job.job_id));
        onnx::write(&pruned, &path)
            .with_context(|| format!("writing {}", path.display()))
            .map_err(ExportError::Runtime)?;
        // The pruned model is scored as a run's model is: its own session on the same eval set.
        let overrides = bundle::rebase(&inputs.bundle, &path).map_err(|e| input(e.into()))?;
        let config = Config::from_yaml(&job.config_yaml, format!("run {} config", job.run_id), &overrides)
            .map_err(|e| input(e.into()))?;
        let mut pruned_session = Session::open(config, device).map_err(input)?;
        let latency = latency::compare(
            session.executor(),
            pruned_session.executor(),
            &zeros(),
            device,
            LATENCY_WARMUP,
            LATENCY_RUNS,
        )
        .map_err(ExportError::Runtime)?;
        let metrics = pruned_session.evaluate(progress).map_err(ExportError::Runtime)?;
        report.insert("latency_ms_before".into(), latency.before.median_ms);
        report.insert("latency_ms_after".into(), latency.after.median_ms);
        // Each pruned run against the unpruned run right before it: the median, and the pessimistic estimate a
        // latency target is judged by (see `latency::Comparison`).
        report.insert("latency_reduction".into(), 1.0 - latency.ratio);
        report.insert("latency_reduction_low".into(), 1.0 - latency.ratio_high);
        Ok(Outcome {
            metrics,
            report,
            artifact: Some(path),
            report_json: String::new(),
            seconds: 0.0,
        })
    }

    /// The recover job: trains the exported model (the student) to reproduce the run's model (the teacher) on
    /// the run's training set, as the config's `Recover` section says, shipping each checkpoint through the
    /// sink; reports the recovered model's metric and the report, and hands recovered.onnx back to upload. The
    /// checkpoint placed in the job's directory is resumed from, or discarded when it does not load.
    fn recover(&mut self, inputs: &mut Inputs, state: &JobState) -> Result<Outcome, ExportError> {
        let input = ExportError::Input;
        let job = &inputs.job;
        let RecoverInputs {
            student,
            train_set,
            out_dir,
            checkpoint_sink,
        } = inputs.recovery.as_mut().ok_or_else(|| {
            input(anyhow!(
                "job {}: a recover job without its student model and training set",
                job.job_id
            ))
        })?;
        let config = |model: &Path| -> anyhow::Result<Config> {
            let overrides = bundle::rebase(&inputs.bundle, model)?;
            Ok(Config::from_yaml(
                &job.config_yaml,
                format!("run {} config", job.run_id),
                &overrides,
            )?)
        };
        let teacher = config(&inputs.model).map_err(input)?;
        let student = config(student).map_err(input)?;
        let options = recover::Options::of(&student);
        let train_set = TrainSet {
            data_dir: train_set.clone(),
            label_file_list: vec![train_set.join(bundle::LABELS)],
        };
        // Recovery holds both models and the student's gradients: the evaluation session goes first.
        self.loaded = None;
        let report = Recovery {
            teacher,
            student,
            train_set: &train_set,
            options: &options,
            device: self.device,
            out_dir,
            unloadable_checkpoint: UnloadableCheckpoint::StartOver,
        }
        .run(&mut |step| {
            state.report_recovery(step);
            if step.checkpointed {
                checkpoint_sink(&out_dir.join(CHECKPOINT_FILE), state)?;
            }
            match state.stop_reason() {
                Some(_) => Err(anyhow!("stopped")),
                None => Ok(()),
            }
        })
        .map_err(ExportError::Runtime)?;
        let mut metrics = MetricDict::new();
        metrics.insert(report.metric.clone(), report.recovered);
        Ok(Outcome {
            metrics,
            report: HashMap::new(),
            artifact: Some(out_dir.join(RECOVERED_FILE)),
            report_json: report.to_json().to_string(),
            seconds: 0.0,
        })
    }

    /// The session for `inputs`: the loaded one when it matches, else a new one (dropping the old first, so
    /// two models never share the device's memory).
    fn session(&mut self, inputs: &Inputs) -> anyhow::Result<&mut Session> {
        let job = &inputs.job;
        let key = SessionKey {
            config_yaml: job.config_yaml.clone(),
            model_digest: job.model_digest.clone(),
            dataset_digest: job.dataset_digest.clone(),
        };
        if self.loaded.as_ref().is_none_or(|(loaded, _)| *loaded != key) {
            self.loaded = None;
            let overrides = bundle::rebase(&inputs.bundle, &inputs.model)?;
            let name = format!("run {} config", job.run_id);
            let config = Config::from_yaml(&job.config_yaml, &name, &overrides)?;
            let mut session = Session::open(config, self.device)?;
            session.set_incremental(self.incremental);
            self.loaded = Some((key, session));
        }
        Ok(&mut self.loaded.as_mut().expect("loaded above").1)
    }
}

/// A cell's one-group plan and criterion, checked against the model's groups.
fn cell(session: &mut Session, job: &Job) -> anyhow::Result<(Plan, Criterion)> {
    if !(job.ratio > 0.0 && job.ratio < 1.0) {
        anyhow::bail!("job {}: ratio {}: expected a share in (0, 1)", job.job_id, job.ratio);
    }
    let criterion = match job.criterion.as_str() {
        "" => session.config().sensitivity().criterion,
        name => name.parse()?,
    };
    // Checked here, before the evaluation, so that a bad key is reported as the job's input error.
    session
        .analysis()?
        .prunable_group(&job.group_key)
        .with_context(|| format!("job {} (`worker inspect MODEL --groups` lists the groups)", job.job_id))?;
    Ok((Plan::from([(job.group_key.clone(), job.ratio)]), criterion))
}
