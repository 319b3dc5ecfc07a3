//! The blocking half of `worker join`: one job evaluated on the engine, on a thread of its own while the
//! async half heartbeats.
//!
//! The [`Engine`] keeps the last [`Session`] (model on the device, eval set opened, channel groups traced)
//! and reuses it while jobs share a run's config, model and eval set, which is every job of a run: only the
//! first job of a run pays for loading. Cells are masked and restored bit for bit by the session.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use anyhow::{Context, anyhow};
use sensgrid_eval::metric_dict::MetricDict;
use sensgrid_eval::{Config, bundle};
use sensgrid_model::prune::{Criterion, Plan};
use sensgrid_proto::v1::{Job, JobKind};
use tch::Device;

use crate::evaluate::{self, Progress, Session};

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
}

/// A job with its artifacts on local disk.
pub struct Inputs {
    pub job: Job,
    /// The model, `models/<digest>.onnx` in the cache.
    pub model: PathBuf,
    /// The unpacked eval bundle.
    pub bundle: PathBuf,
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
    loaded: Option<(SessionKey, Session)>,
}

impl Engine {
    pub fn new(device: Device) -> Engine {
        Engine { device, loaded: None }
    }

    /// Runs one baseline or cell job, reporting progress to `state` and stopping when it asks.
    ///
    /// # Errors
    /// [`JobError`]: bad inputs, a failed evaluation, or a stop.
    pub fn run(&mut self, inputs: &Inputs, state: &Arc<JobState>) -> Result<MetricDict, JobError> {
        let job = &inputs.job;
        let kind = JobKind::try_from(job.kind).unwrap_or(JobKind::Unspecified);
        if !matches!(kind, JobKind::Baseline | JobKind::Cell) {
            return Err(JobError::Input(anyhow!(
                "job {}: kind {} is not run by this worker (baseline and cell jobs are)",
                job.job_id,
                kind.as_str_name()
            )));
        }
        let session = self.session(inputs).map_err(JobError::Input)?;
        let mut progress = |p: Progress| {
            state.report(p);
            match state.stop_reason() {
                Some(_) => Err(anyhow!("stopped")),
                None => Ok(()),
            }
        };
        let result = if kind == JobKind::Baseline {
            session.evaluate(&mut progress)
        } else {
            let (plan, criterion) = cell(session, job).map_err(JobError::Input)?;
            session.evaluate_masked(&plan, criterion, &mut progress)
        };
        result.map_err(|error| match state.stop_reason() {
            Some(_) => JobError::Stopped,
            None => JobError::Runtime(error),
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
            self.loaded = Some((key, Session::open(config, self.device)?));
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
        "" => evaluate::criterion(session.config().sensitivity().criterion),
        name => name.parse()?,
    };
    // Checked here, before the evaluation, so that a bad key is reported as the job's input error.
    session
        .analysis()?
        .prunable_group(&job.group_key)
        .with_context(|| format!("job {} (`worker inspect MODEL --groups` lists the groups)", job.job_id))?;
    Ok((Plan::from([(job.group_key.clone(), job.ratio)]), criterion))
}
