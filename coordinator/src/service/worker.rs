//! `WorkerService`: what workers call. Polls go through the dispatcher and completions through the completer
//! (both batch their store calls); heartbeats and failures call the store directly.
//!
//! Outcomes and statuses:
//!
//! | call | outcome | status |
//! | --- | --- | --- |
//! | `CompleteJob` | accepted, or accepted before (a retry) | OK |
//! | `CompleteJob` | the lease is not current (superseded, expired and taken back, failed) | `FAILED_PRECONDITION` |
//! | `CompleteJob` | the run was cancelled: the result is dropped | `ABORTED` |
//! | `CompleteJob`, `FailJob`, `Heartbeat` | no such job | `NOT_FOUND` |
//! | `FailJob` | queued again, or failed for good | OK |
//! | `FailJob` | the lease is not current | `FAILED_PRECONDITION` |
//! | `FailJob` | the run was cancelled | `ABORTED` |
//! | `Heartbeat` | extended | OK, `keep_going` |
//! | `Heartbeat` | lost, cancelled, no such job | OK, `keep_going = false` |
//! | `ReportRecovery` | kept | OK, `keep_going` |
//! | `ReportRecovery` | lost, cancelled, no such job: nothing kept | OK, `keep_going = false` |
//! | `ReportRecovery` | a step past the steps, a loss or metric not finite | `INVALID_ARGUMENT` |
//! | `ReportRecovery` | a checkpoint that is not stored: nothing kept | `NOT_FOUND` |
//! | `ReportRecovery` | the job is not a recover job | `FAILED_PRECONDITION` |
//!
//! A cancelled run's completion is `ABORTED`, not OK: the worker learns its result was dropped, and the
//! status says retrying will not help. `Heartbeat` answers OK even for an unknown job so a worker has one
//! signal to stop on (`keep_going`), and so does `ReportRecovery` for a lease that is not current: its
//! worker stops at once, as it would on the next heartbeat. A refused report keeps nothing of itself, so a
//! resumed attempt is never handed a checkpoint the coordinator does not hold.
//!
//! An accepted completion of a run with an early stop applies the stop before it is answered
//! ([`pipeline::apply_early_stop`]): the worker's next poll would otherwise claim the group's next ratio, a
//! cell the stop rules out, before the pipeline's round came to it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sensgrid_proto::v1 as pb;
use sensgrid_proto::v1::worker_service_server::WorkerService;
use tonic::{Request, Response, Status, Streaming};

use super::artifacts::{ArtifactDir, ChunkStream};
use super::completer::CompleterHandle;
use super::config::ServiceConfig;
use super::convert;
use super::dispatcher::DispatcherHandle;
use super::metrics::Metrics;
use super::pipeline::{self, PipelineHandle};
use super::recent_runs::RecentRuns;
use crate::clock::Clock;
use crate::spec::RunSpec;
use crate::store::{
    CompleteOutcome, FailOutcome, HeartbeatOutcome, JobCompletion, JobFailParams, JobHeartbeatParams, JobKind,
    JobRecoverProgressParams, JobStore, NamedJob, RecoverProgressOutcome, Run, StoreError, WorkerId,
    WorkerRegisterParams,
};

/// The longest a poll waits, whatever `wait_ms` asks: a worker that asks for more simply polls again.
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// How many runs the early-stop cache holds: far more than run at once, so a run's completions find it there
/// (one that went is read again, one query).
const EARLY_STOP_RUNS_CACHED: usize = 64;

/// The worker service.
pub struct WorkerApi<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: Arc<ServiceConfig>,
    dispatcher: DispatcherHandle,
    completer: CompleterHandle,
    pipeline: PipelineHandle,
    artifacts: ArtifactDir,
    metrics: Arc<Metrics>,
    /// Workers known to be registered. Workers are never removed, so once seen an id stays valid; a poll from
    /// an unknown id is refused here rather than failing a whole claim batch.
    registered: Mutex<HashSet<WorkerId>>,
    /// Per run seen completing lately, what its early stop needs (None when its spec has none): a spec never
    /// changes, and reading it again for every completion would cost a query each.
    early_stop_runs: Mutex<RecentRuns<Option<EarlyStopRun>>>,
}

/// A run with an early stop, as the worker service checks it after each completion.
#[derive(Clone, Debug)]
struct EarlyStopRun {
    run: Arc<Run>,
    spec: Arc<RunSpec>,
    /// The spec's `early_stop_loss`.
    threshold: f64,
    /// The baseline's metric, once read done: from then on a completion is checked by its own loss.
    baseline: Option<f64>,
}

impl<S: JobStore> WorkerApi<S> {
    /// The service on these parts (built by [`super::serve`]).
    #[expect(
        clippy::too_many_arguments,
        reason = "each is a separate handle the service is wired to once, in `service::serve`"
    )]
    pub fn new(
        store: S,
        clock: Arc<dyn Clock>,
        config: Arc<ServiceConfig>,
        dispatcher: DispatcherHandle,
        completer: CompleterHandle,
        pipeline: PipelineHandle,
        artifacts: ArtifactDir,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            clock,
            config,
            dispatcher,
            completer,
            pipeline,
            artifacts,
            metrics,
            registered: Mutex::new(HashSet::new()),
            early_stop_runs: Mutex::new(RecentRuns::new(EARLY_STOP_RUNS_CACHED)),
        }
    }

    /// Applies the early stop of the run of `job` (the job a completion named, as the store answered it), if
    /// it has one, now that the job is done with `result` (see the module docs). This runs for every
    /// completion, so it reads the store only when the completion may stop a group: a run without an early
    /// stop costs no query once its spec has been read, and in a run with one, once its baseline is known,
    /// only a cell whose own loss exceeds the threshold has the run's cells read and the stops applied.
    async fn early_stop_after(&self, job: Option<NamedJob>, result: &serde_json::Value) -> Result<(), StoreError> {
        let Some(job) = job.filter(|job| job.kind == JobKind::Cell) else {
            return Ok(());
        };
        let known = self.early_stop_runs().get(job.run_id);
        let stop = match known {
            Some(stop) => stop,
            None => {
                let Some(run) = self.store.run_get(job.run_id).await? else {
                    return Ok(());
                };
                let stop = RunSpec::from_json(&run.spec).ok().and_then(|spec| {
                    let threshold = spec.early_stop_loss?;
                    Some(EarlyStopRun {
                        run: Arc::new(run),
                        spec: Arc::new(spec),
                        threshold,
                        baseline: None,
                    })
                });
                self.early_stop_runs().insert(job.run_id, stop.clone());
                stop
            }
        };
        let Some(mut stop) = stop else {
            return Ok(());
        };
        if let Some(baseline) = stop.baseline {
            let loss = crate::sensitivity::cell_loss(result, baseline, &stop.spec.metric);
            if !loss.is_some_and(|loss| loss > stop.threshold) {
                return Ok(());
            }
        }
        let jobs = self.store.job_list_by_run(job.run_id).await?;
        if stop.baseline.is_none() {
            stop.baseline = pipeline::baseline_metric(&stop.spec, &jobs);
            if stop.baseline.is_some() {
                self.early_stop_runs().insert(job.run_id, Some(stop.clone()));
            }
        }
        pipeline::apply_early_stop(&self.store, self.clock.as_ref(), &stop.run, &jobs).await?;
        Ok(())
    }

    /// Takes a finished job's report (`CompleteJob`, or one carried by a poll).
    async fn complete(&self, request: pb::CompleteJobRequest) -> Result<(), Status> {
        let lease = convert::lease(request.job_id, request.lease_epoch)?;
        let result = convert::completion_result(&request)?;
        let completed = self
            .completer
            .complete(JobCompletion {
                lease,
                result: result.clone(),
            })
            .await?;
        let outcome = completed.outcome;
        let job = lease.job_id;
        match outcome {
            CompleteOutcome::Accepted => self.metrics.completion_accepted(request.seconds),
            CompleteOutcome::Stale | CompleteOutcome::Cancelled => self.metrics.completion_rejected(),
            // A retried call of one already counted; an unknown job is the caller's mistake.
            CompleteOutcome::AlreadyAccepted | CompleteOutcome::NotFound => {}
        }
        match outcome {
            CompleteOutcome::Accepted | CompleteOutcome::AlreadyAccepted => {
                if let Err(error) = self.early_stop_after(completed.job, &result).await {
                    // The result is stored; the pipeline's next round applies the stop instead.
                    tracing::warn!(job_id = %job, %error, "applying the early stop after a completion failed");
                }
                self.pipeline.wake();
                Ok(())
            }
            CompleteOutcome::Stale => Err(Status::failed_precondition(format!(
                "job {job}: lease epoch {} is not current (superseded, expired or failed); the result is dropped",
                lease.epoch
            ))),
            CompleteOutcome::Cancelled => Err(Status::aborted(format!(
                "job {job}: its run was cancelled; the result is dropped"
            ))),
            CompleteOutcome::NotFound => Err(Status::not_found(format!("job_id: job {job} does not exist"))),
        }
    }

    fn early_stop_runs(&self) -> std::sync::MutexGuard<'_, RecentRuns<Option<EarlyStopRun>>> {
        // A map of runs cannot be left half-updated by a panic.
        self.early_stop_runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn registered(&self) -> std::sync::MutexGuard<'_, HashSet<WorkerId>> {
        // A set of ids cannot be left half-updated by a panic.
        self.registered.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks that `worker` is registered, asking the store only about ids not seen before.
    async fn check_registered(&self, worker: WorkerId) -> Result<(), Status> {
        if self.registered().contains(&worker) {
            return Ok(());
        }
        match self.store.worker_get(worker).await.map_err(convert::store_status)? {
            Some(_) => {
                self.registered().insert(worker);
                Ok(())
            }
            None => Err(Status::not_found(format!(
                "worker_id: worker {worker} is not registered"
            ))),
        }
    }

    /// `FailJob` with `local`: the worker gives the job back for a reason of its own, so it is queued again at
    /// once for another worker without spending an attempt (see [`JobStore::job_release`]).
    async fn release_job(
        &self,
        lease: crate::store::Lease,
        error: String,
    ) -> Result<Response<pb::FailJobResponse>, Status> {
        let outcome = self
            .store
            .job_release(crate::store::JobReleaseParams {
                now: self.clock.now(),
                lease,
                error,
            })
            .await
            .map_err(convert::store_status)?;
        let job = lease.job_id;
        match outcome {
            crate::store::ReleaseOutcome::Released => {
                self.dispatcher.wake();
                Ok(Response::new(pb::FailJobResponse {}))
            }
            crate::store::ReleaseOutcome::Stale => Err(Status::failed_precondition(format!(
                "job {job}: lease epoch {} is not current (superseded, expired, completed or failed)",
                lease.epoch
            ))),
            crate::store::ReleaseOutcome::Cancelled => {
                Err(Status::aborted(format!("job {job}: its run was cancelled")))
            }
            crate::store::ReleaseOutcome::NotFound => {
                Err(Status::not_found(format!("job_id: job {job} does not exist")))
            }
        }
    }
}

/// Checks a recovery report's numbers before anything is kept: the step within the steps (when the worker
/// names them), a finite loss (training refuses a step whose loss is not), and metrics that are finite or NaN
/// (no eval yet).
///
/// # Errors
///
/// `INVALID_ARGUMENT` naming the field.
fn check_recover_progress(progress: &pb::RecoverProgress) -> Result<(), Status> {
    if progress.steps > 0 && progress.step > progress.steps {
        return Err(Status::invalid_argument(format!(
            "progress.step: expected at most progress.steps ({}), got {}",
            progress.steps, progress.step
        )));
    }
    if !progress.loss.is_finite() {
        return Err(Status::invalid_argument(format!(
            "progress.loss: expected a finite number, got {}",
            progress.loss
        )));
    }
    for (field, value) in [("metric", progress.metric), ("best", progress.best)] {
        if value.is_infinite() {
            return Err(Status::invalid_argument(format!(
                "progress.{field}: expected a finite number (or NaN before the first eval), got {value}"
            )));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl<S: JobStore> WorkerService for WorkerApi<S> {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let request = request.into_inner();
        for (field, value) in [("name", &request.name), ("device", &request.device)] {
            if value.trim().is_empty() {
                return Err(Status::invalid_argument(format!("{field}: expected a non-empty value")));
            }
        }
        let worker = self
            .store
            .worker_register(WorkerRegisterParams {
                now: self.clock.now(),
                name: request.name,
                device: request.device,
            })
            .await
            .map_err(convert::store_status)?;
        self.registered().insert(worker.id);
        self.metrics.worker_called(worker.id);
        Ok(Response::new(pb::RegisterResponse {
            worker_id: worker.id.0,
            heartbeat_interval_ms: u32::try_from(self.config.heartbeat.as_millis()).unwrap_or(u32::MAX),
        }))
    }

    async fn poll_job(&self, request: Request<pb::PollJobRequest>) -> Result<Response<pb::PollJobResponse>, Status> {
        let request = request.into_inner();
        let worker = WorkerId(request.worker_id);
        self.check_registered(worker).await?;
        self.metrics.worker_called(worker);
        if let Some(completion) = request.complete {
            self.complete(completion).await?;
        }
        let wait = Duration::from_millis(u64::from(request.wait_ms)).min(MAX_POLL_WAIT);
        let arrived = Instant::now();
        let job = self.dispatcher.poll(worker, wait).await?;
        if job.is_some() {
            self.metrics.job_claimed(arrived.elapsed());
        }
        Ok(Response::new(pb::PollJobResponse { job }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let lease = convert::lease(request.job_id, request.lease_epoch)?;
        let outcome = self
            .store
            .job_heartbeat(JobHeartbeatParams {
                now: self.clock.now(),
                lease,
                lease_duration: self.config.lease,
            })
            .await
            .map_err(convert::store_status)?;
        Ok(Response::new(pb::HeartbeatResponse {
            keep_going: matches!(outcome, HeartbeatOutcome::Extended { .. }),
        }))
    }

    async fn report_recovery(
        &self,
        request: Request<pb::ReportRecoveryRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let lease = convert::lease(request.job_id, request.lease_epoch)?;
        let progress = request
            .progress
            .ok_or_else(|| Status::invalid_argument("progress: a recovery report needs its progress"))?;
        check_recover_progress(&progress)?;
        let checkpoint_digest = match request.checkpoint_digest.as_str() {
            "" => None,
            digest => {
                convert::digest("checkpoint_digest", digest)?;
                Some(digest.to_owned())
            }
        };
        let outcome = self
            .store
            .job_recover_progress(JobRecoverProgressParams {
                lease,
                checkpoint_digest,
                progress: convert::recover_progress(&progress),
            })
            .await
            .map_err(convert::store_status)?;
        let job = lease.job_id;
        match outcome {
            RecoverProgressOutcome::Kept => {
                self.metrics.recover_progress(job, &progress);
                Ok(Response::new(pb::HeartbeatResponse { keep_going: true }))
            }
            RecoverProgressOutcome::Stale | RecoverProgressOutcome::NotFound => {
                Ok(Response::new(pb::HeartbeatResponse { keep_going: false }))
            }
            RecoverProgressOutcome::NotRecover(kind) => Err(Status::failed_precondition(format!(
                "job {job} is a {} job: only a recover job reports a recovery",
                kind.as_str()
            ))),
        }
    }

    async fn complete_job(
        &self,
        request: Request<pb::CompleteJobRequest>,
    ) -> Result<Response<pb::CompleteJobResponse>, Status> {
        self.complete(request.into_inner()).await?;
        Ok(Response::new(pb::CompleteJobResponse {}))
    }
    async fn fail_job(&self, request: Request<pb::FailJobRequest>) -> Result<Response<pb::FailJobResponse>, Status> {
        let request = request.into_inner();
        let lease = convert::lease(request.job_id, request.lease_epoch)?;
        if request.local {
            return self.release_job(lease, request.error).await;
        }
        let outcome = self
            .store
            .job_fail(JobFailParams {
                now: self.clock.now(),
                lease,
                error: request.error,
                retryable: request.retryable,
                backoff: self.config.backoff,
            })
            .await
            .map_err(convert::store_status)?;
        let job = lease.job_id;
        match outcome {
            FailOutcome::Retrying { available_at, .. } => {
                self.dispatcher.wake_at(available_at);
                Ok(Response::new(pb::FailJobResponse {}))
            }
            FailOutcome::Failed { .. } => {
                self.pipeline.wake();
                Ok(Response::new(pb::FailJobResponse {}))
            }
            FailOutcome::Stale => Err(Status::failed_precondition(format!(
                "job {job}: lease epoch {} is not current (superseded, expired, completed or failed)",
                lease.epoch
            ))),
            FailOutcome::Cancelled => Err(Status::aborted(format!("job {job}: its run was cancelled"))),
            FailOutcome::NotFound => Err(Status::not_found(format!("job_id: job {job} does not exist"))),
        }
    }

    type DownloadArtifactStream = ChunkStream;

    async fn download_artifact(
        &self,
        request: Request<pb::DownloadArtifactRequest>,
    ) -> Result<Response<Self::DownloadArtifactStream>, Status> {
        self.artifacts.download_call(&self.store, request).await
    }

    async fn upload_artifact(
        &self,
        request: Request<Streaming<pb::ArtifactChunk>>,
    ) -> Result<Response<pb::UploadArtifactResponse>, Status> {
        self.artifacts
            .upload_call(&self.store, self.clock.as_ref(), request)
            .await
    }
}
