//! `AdminService`: what `coordinator submit`, `status`, `watch`, `results`, `plan`, `cancel`, `retry`,
//! `recover` and `workers` call. A run is created with its baseline job and one cell job per requested cell (cells known already are
//! created done); the pipeline adds the export once it has planned. The dispatcher is woken so waiting workers
//! get the baseline at once.

use std::sync::Arc;

use sensgrid_proto::v1 as pb;
use sensgrid_proto::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status, Streaming};

use super::artifacts::{ArtifactDir, ChunkStream};
use super::config::ServiceConfig;
use super::convert;
use super::dispatcher::DispatcherHandle;
use super::pipeline::PipelineHandle;
use crate::clock::Clock;
use crate::planning::{self, PlanRequest};
use crate::spec::{MeasuredSpec, PruneSpec, PruneTarget, RecoverSpec, RunSpec};
use crate::store::{
    JobKind, JobState, JobStore, PlanMode, RunCancelOutcome, RunCancelParams, RunCreateParams, RunId, RunPlanOutcome,
    RunPlanParams, RunRecoverOutcome, RunRecoverParams, RunReplanParams, RunState, RunSummary,
};

/// The admin service.
pub struct AdminApi<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: Arc<ServiceConfig>,
    dispatcher: DispatcherHandle,
    pipeline: PipelineHandle,
    artifacts: ArtifactDir,
}

impl<S: JobStore> AdminApi<S> {
    /// The service on these parts (built by [`super::serve`]).
    pub fn new(
        store: S,
        clock: Arc<dyn Clock>,
        config: Arc<ServiceConfig>,
        dispatcher: DispatcherHandle,
        pipeline: PipelineHandle,
        artifacts: ArtifactDir,
    ) -> Self {
        Self {
            store,
            clock,
            config,
            dispatcher,
            pipeline,
            artifacts,
        }
    }

    /// `PlanRun` with a measured target: the run's spec takes it as its `Prune` target and the run goes back to
    /// its pipeline, which searches with probes (those measured already count) and plans; nothing is planned
    /// here.
    async fn replan(
        &self,
        run_id: RunId,
        target: &pb::MeasuredTarget,
        export: bool,
    ) -> Result<pb::PlanRunResponse, Status> {
        let measured = MeasuredSpec {
            max_model_loss: target.max_model_loss,
            flops_reduction: target.flops_reduction,
            latency_reduction: target.latency_reduction,
            tolerance: target
                .tolerance
                .unwrap_or(sensgrid_eval::config::MeasuredTarget::DEFAULT_TOLERANCE),
        };
        if measured.flops_reduction.is_some() && measured.latency_reduction.is_some() {
            return Err(Status::invalid_argument(
                "measured: set one of flops_reduction and latency_reduction, not both",
            ));
        }
        if measured.max_model_loss.is_none() && measured.latency_reduction.is_none() {
            return Err(Status::invalid_argument(
                "measured: set max_model_loss or latency_reduction (flops_reduction alone is the table's target)",
            ));
        }
        measured
            .target()
            .validate()
            .map_err(|e| Status::invalid_argument(format!("measured: {e}")))?;
        let run = self.run(run_id).await?;
        let jobs = self
            .store
            .job_list_by_run(run_id)
            .await
            .map_err(convert::store_status)?;
        if let Some(job) = jobs.iter().find(|j| j.kind != JobKind::Export && !j.state.is_final()) {
            return Err(Status::failed_precondition(format!(
                "run {run_id} still has unfinished jobs (job {}, {}): plan once its grid (and its probes) are done",
                job.id,
                job.kind.as_str()
            )));
        }
        if jobs
            .iter()
            .any(|j| j.kind == JobKind::Export && j.state == JobState::Leased)
        {
            return Err(Status::failed_precondition(format!(
                "run {run_id}'s export is running: plan again once it has ended"
            )));
        }
        let mut spec = RunSpec::from_json(&run.spec).map_err(Status::failed_precondition)?;
        spec.prune = Some(PruneSpec {
            target: PruneTarget::Measured(measured),
            export,
        });
        let spec_json = serde_json::to_value(&spec).map_err(|e| Status::internal(format!("the spec: {e}")))?;
        let outcome = self
            .store
            .run_replan(RunReplanParams {
                run_id,
                spec: spec_json,
            })
            .await
            .map_err(convert::store_status)?;
        planned_or_status(run_id, outcome)?;
        self.pipeline.wake();
        Ok(pb::PlanRunResponse {
            plan_json: String::new(),
            max_loss: 0.0,
            flops_before: spec.flops,
            flops_after: 0,
        })
    }

    async fn run(&self, run_id: RunId) -> Result<crate::store::Run, Status> {
        self.store
            .run_get(run_id)
            .await
            .map_err(convert::store_status)?
            .ok_or_else(|| Status::not_found(format!("run_id: run {run_id} does not exist")))
    }
}

/// `Ok` for a stored plan (or target), and for a plan without export that the run's export keeps from being
/// stored (the call answers it); the status that says why not otherwise.
fn planned_or_status(run_id: RunId, outcome: RunPlanOutcome) -> Result<(), Status> {
    match outcome {
        RunPlanOutcome::Planned | RunPlanOutcome::Exported => Ok(()),
        RunPlanOutcome::ExportLeased => Err(Status::failed_precondition(format!(
            "run {run_id}'s export is running: plan again once it has ended"
        ))),
        RunPlanOutcome::AlreadyPlanned => Err(Status::failed_precondition(format!("run {run_id} is planned already"))),
        RunPlanOutcome::NotPlannable(state) => Err(Status::failed_precondition(format!(
            "run {run_id} is {}: only a running or done run is planned",
            state.as_str()
        ))),
        RunPlanOutcome::NotFound => Err(Status::not_found(format!("run_id: run {run_id} does not exist"))),
    }
}

#[tonic::async_trait]
impl<S: JobStore> AdminService for AdminApi<S> {
    async fn create_run(
        &self,
        request: Request<pb::CreateRunRequest>,
    ) -> Result<Response<pb::CreateRunResponse>, Status> {
        let request = request.into_inner();
        if request.config_yaml.trim().is_empty() {
            return Err(Status::invalid_argument(
                "config_yaml: expected a config, got an empty one",
            ));
        }
        convert::digest("model_digest", &request.model_digest)?;
        convert::digest("dataset_digest", &request.dataset_digest)?;
        if !convert::CRITERIA.contains(&request.criterion.as_str()) {
            return Err(Status::invalid_argument(format!(
                "criterion: expected one of {}, got '{}'",
                convert::CRITERIA.join(", "),
                request.criterion.escape_debug()
            )));
        }
        let spec: serde_json::Value = match request.spec_json.as_str() {
            "" => {
                return Err(Status::invalid_argument(
                    "spec_json: expected the run's spec, got nothing",
                ));
            }
            text => serde_json::from_str(text).map_err(|e| Status::invalid_argument(format!("spec_json: {e}")))?,
        };
        RunSpec::from_json(&spec).map_err(|e| Status::invalid_argument(format!("spec_json: {e}")))?;
        let params = RunCreateParams {
            now: self.clock.now(),
            config_yaml: request.config_yaml,
            model_digest: request.model_digest,
            dataset_digest: request.dataset_digest,
            criterion: request.criterion,
            max_attempts: self.config.max_attempts,
            cells: convert::cells(request.cells)?,
            export: false,
            spec,
        };
        // The same checks the store makes, before a database round trip, with the same field names.
        params.validate().map_err(convert::store_status)?;
        let run_id = self.store.run_create(params).await.map_err(convert::store_status)?;
        self.dispatcher.wake();
        // A run whose cells were all imported may be plannable at once.
        self.pipeline.wake();
        Ok(Response::new(pb::CreateRunResponse { run_id: run_id.0 }))
    }

    async fn get_run(&self, request: Request<pb::GetRunRequest>) -> Result<Response<pb::GetRunResponse>, Status> {
        let run_id = RunId(request.into_inner().run_id);
        let run = self.run(run_id).await?;
        let jobs = self
            .store
            .job_list_by_run(run_id)
            .await
            .map_err(convert::store_status)?;
        let mut counts = crate::store::JobCounts::default();
        for job in &jobs {
            counts.add(job.state, 1);
        }
        let summary = convert::run_summary(&RunSummary {
            run: run.clone(),
            jobs: counts,
        });
        Ok(Response::new(pb::GetRunResponse {
            run_id: run.id.0,
            state: run.state.into(),
            jobs: jobs.iter().map(convert::job_status).collect(),
            summary: Some(summary),
            spec_json: run.spec.to_string(),
            plan_json: run.plan.as_ref().map(ToString::to_string).unwrap_or_default(),
            config_yaml: run.config_yaml,
            model_digest: run.model_digest,
            dataset_digest: run.dataset_digest,
            criterion: run.criterion,
        }))
    }

    async fn list_runs(&self, request: Request<pb::ListRunsRequest>) -> Result<Response<pb::ListRunsResponse>, Status> {
        let state = convert::run_state_filter(request.into_inner().state)?;
        let runs = self.store.run_list(state).await.map_err(convert::store_status)?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.iter().map(convert::run_summary).collect(),
        }))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::CancelRunResponse>, Status> {
        let run_id = RunId(request.into_inner().run_id);
        let outcome = self
            .store
            .run_cancel(RunCancelParams {
                now: self.clock.now(),
                run_id,
            })
            .await
            .map_err(convert::store_status)?;
        match outcome {
            RunCancelOutcome::Cancelled { queued, leased } => Ok(Response::new(pb::CancelRunResponse {
                state: RunState::Cancelled.into(),
                queued_cancelled: queued,
                leased_cancelled: leased,
            })),
            RunCancelOutcome::AlreadyFinal(state) => Ok(Response::new(pb::CancelRunResponse {
                state: state.into(),
                queued_cancelled: 0,
                leased_cancelled: 0,
            })),
            RunCancelOutcome::NotFound => Err(Status::not_found(format!("run_id: run {run_id} does not exist"))),
        }
    }

    /// Queues a run's failed jobs again (fresh attempts) and reopens it when it had ended done with them; a
    /// failed or cancelled run is refused.
    async fn retry_run(&self, request: Request<pb::RetryRunRequest>) -> Result<Response<pb::RetryRunResponse>, Status> {
        let run_id = RunId(request.into_inner().run_id);
        let outcome = self
            .store
            .run_retry(crate::store::RunRetryParams {
                now: self.clock.now(),
                run_id,
            })
            .await
            .map_err(convert::store_status)?;
        match outcome {
            crate::store::RunRetryOutcome::Requeued { requeued, reopened } => {
                tracing::info!(run_id = %run_id, requeued, reopened, "failed jobs queued again");
                if requeued > 0 {
                    self.dispatcher.wake();
                    self.pipeline.wake();
                }
                let state = self.run(run_id).await?.state;
                Ok(Response::new(pb::RetryRunResponse {
                    state: state.into(),
                    requeued,
                }))
            }
            crate::store::RunRetryOutcome::NotRetryable(state) => Err(Status::failed_precondition(format!(
                "run {run_id} is {}: only a running or done run's failed jobs are retried",
                state.as_str()
            ))),
            crate::store::RunRetryOutcome::NotFound => {
                Err(Status::not_found(format!("run_id: run {run_id} does not exist")))
            }
        }
    }

    /// Reopens an ended run whose export is done (done, or failed or cancelled in an earlier recovery) for a
    /// recovery with the request's config and training set (see `coordinator recover`). A run recovering
    /// already is refused, not replaced: its worker's steps would be lost.
    async fn recover_run(
        &self,
        request: Request<pb::RecoverRunRequest>,
    ) -> Result<Response<pb::RecoverRunResponse>, Status> {
        let request = request.into_inner();
        let run_id = RunId(request.run_id);
        convert::digest("train_set_digest", &request.train_set_digest)?;
        if self
            .store
            .artifact_get(&request.train_set_digest)
            .await
            .map_err(convert::store_status)?
            .is_none()
        {
            return Err(Status::not_found(format!(
                "train_set_digest: no artifact {} (upload the training bundle first)",
                request.train_set_digest
            )));
        }
        let run = self.run(run_id).await?;
        let mut spec =
            RunSpec::from_json(&run.spec).map_err(|e| Status::failed_precondition(format!("run {run_id}: {e}")))?;
        spec.recover = Some(RecoverSpec {
            train_set_digest: request.train_set_digest,
        });
        let spec = serde_json::to_value(&spec).map_err(|e| Status::internal(format!("run {run_id}'s spec: {e}")))?;
        let outcome = self
            .store
            .run_recover(RunRecoverParams {
                now: self.clock.now(),
                run_id,
                config_yaml: request.config_yaml,
                spec,
            })
            .await
            .map_err(convert::store_status)?;
        match outcome {
            RunRecoverOutcome::Queued => {
                tracing::info!(run_id = %run_id, "recovery queued");
                self.dispatcher.wake();
                self.pipeline.wake();
                Ok(Response::new(pb::RecoverRunResponse {}))
            }
            RunRecoverOutcome::Recovering(state) => Err(Status::failed_precondition(format!(
                "run {run_id} is recovering already (its recover job is {}): wait for it to end (`coordinator watch \
                 {run_id}`), or cancel the run (`coordinator cancel {run_id}`), then recover it again",
                state.as_str()
            ))),
            RunRecoverOutcome::NotDone(state) => Err(Status::failed_precondition(format!(
                "run {run_id} is {}: a run is recovered once its export is done (`coordinator watch {run_id}` \
                 follows it)",
                state.as_str()
            ))),
            RunRecoverOutcome::NotExported(state) => Err(Status::failed_precondition(format!(
                "run {run_id} is {} without a done export: recovery trains the exported model (a Prune section with \
                 export: true, or `coordinator plan {run_id} --export`)",
                state.as_str()
            ))),
            RunRecoverOutcome::NotFound => Err(Status::not_found(format!("run_id: run {run_id} does not exist"))),
        }
    }

    /// Plans a finished grid for a table target (`max_loss`, `flops_reduction`), or hands a measured target to
    /// the run's pipeline ([`Self::replan`]).
    ///
    /// With `export`, the plan becomes the run's and its export is queued anew. Without, the call is
    /// PaddleSlim's `get_ratios_by_loss`: it answers the plan, which becomes the run's only when the run has no
    /// export job. An export prunes by the run's stored plan (a queued one reads it when claimed), and
    /// `results` writes that plan as plan.json beside the export's prune_report.json and pruned.onnx: replacing
    /// the plan alone would make them disagree, or change what a queued export prunes. Replacing both takes
    /// `export`.
    async fn plan_run(&self, request: Request<pb::PlanRunRequest>) -> Result<Response<pb::PlanRunResponse>, Status> {
        let request = request.into_inner();
        let run_id = RunId(request.run_id);
        // NaN fails both comparisons, so it is refused too.
        let share = |field: &str, value: f64| {
            if value > 0.0 && value < 1.0 {
                Ok(value)
            } else {
                Err(Status::invalid_argument(format!(
                    "{field}: expected a share in (0, 1), got {value}"
                )))
            }
        };
        let target = match request.target {
            Some(pb::plan_run_request::Target::MaxLoss(loss)) => PruneTarget::MaxLoss(share("max_loss", loss)?),
            Some(pb::plan_run_request::Target::FlopsReduction(reduction)) => {
                PruneTarget::FlopsReduction(share("flops_reduction", reduction)?)
            }
            Some(pb::plan_run_request::Target::Measured(m)) => {
                return self.replan(run_id, &m, request.export).await.map(Response::new);
            }
            None => return Err(Status::invalid_argument("target: set max_loss or flops_reduction")),
        };
        let run = self.run(run_id).await?;
        if matches!(run.state, RunState::Cancelled | RunState::Failed) {
            return Err(Status::failed_precondition(format!(
                "run {run_id} is {}: only a running or done run is planned",
                run.state.as_str()
            )));
        }
        let jobs = self
            .store
            .job_list_by_run(run_id)
            .await
            .map_err(convert::store_status)?;
        let unfinished = jobs
            .iter()
            .filter(|j| j.kind != JobKind::Export && !j.state.is_final())
            .count();
        if unfinished > 0 {
            return Err(Status::failed_precondition(format!(
                "run {run_id} still has {unfinished} unfinished jobs: plan once its grid (and its probes) are done"
            )));
        }
        if request.export
            && jobs
                .iter()
                .any(|j| j.kind == JobKind::Export && j.state == JobState::Leased)
        {
            return Err(Status::failed_precondition(format!(
                "run {run_id}'s export is running: plan again once it has ended"
            )));
        }
        let stores_plan = request.export || !jobs.iter().any(|j| j.kind == JobKind::Export);
        let spec = RunSpec::from_json(&run.spec).map_err(Status::failed_precondition)?;
        let plan_request = PlanRequest {
            model: self.artifacts.path(&run.model_digest),
            run,
            jobs,
            spec,
            target,
        };
        let planned = tokio::task::spawn_blocking(move || planning::plan(&plan_request))
            .await
            .map_err(|panic| Status::internal(format!("the planner panicked: {panic}")))?
            .map_err(Status::failed_precondition)?;
        if stores_plan {
            let outcome = self
                .store
                .run_plan(RunPlanParams {
                    now: self.clock.now(),
                    run_id,
                    plan: planned.plan_json(),
                    export: request.export,
                    mode: PlanMode::Replace,
                })
                .await
                .map_err(convert::store_status)?;
            planned_or_status(run_id, outcome)?;
        }
        if request.export {
            self.dispatcher.wake();
        }
        Ok(Response::new(pb::PlanRunResponse {
            plan_json: planned.plan_json().to_string(),
            max_loss: planned.max_loss,
            flops_before: planned.flops_before,
            flops_after: planned.flops_after,
        }))
    }

    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let workers = self.store.worker_list().await.map_err(convert::store_status)?;
        Ok(Response::new(pb::ListWorkersResponse {
            workers: workers
                .into_iter()
                .map(|w| pb::WorkerSummary {
                    worker_id: w.worker.id.0,
                    name: w.worker.name,
                    device: w.worker.device,
                    registered_at: convert::timestamp(Some(w.worker.registered_at)),
                    last_seen_at: convert::timestamp(Some(w.worker.last_seen_at)),
                    lease_jobs: w.leases.iter().map(|(job, _)| job.0).collect(),
                    lease_runs: w.leases.iter().map(|(_, run)| run.0).collect(),
                })
                .collect(),
        }))
    }

    async fn stat_artifact(
        &self,
        request: Request<pb::StatArtifactRequest>,
    ) -> Result<Response<pb::StatArtifactResponse>, Status> {
        let digest = request.into_inner().digest;
        convert::digest("digest", &digest)?;
        let stored = self.store.artifact_get(&digest).await.map_err(convert::store_status)?;
        // Its metadata is recorded only after its file is in place (see `artifacts`); a file damaged since
        // answers "not stored", so the client uploads it again and that upload repairs it.
        let stored = match stored {
            Some(artifact) if self.artifacts.is_intact(&artifact).await? => Some(artifact),
            _ => None,
        };
        Ok(Response::new(match stored {
            Some(artifact) => pb::StatArtifactResponse {
                stored: true,
                size_bytes: artifact.size_bytes,
                media_type: artifact.media_type,
            },
            None => pb::StatArtifactResponse::default(),
        }))
    }

    async fn upload_artifact(
        &self,
        request: Request<Streaming<pb::ArtifactChunk>>,
    ) -> Result<Response<pb::UploadArtifactResponse>, Status> {
        self.artifacts
            .upload_call(&self.store, self.clock.as_ref(), request)
            .await
    }

    type DownloadArtifactStream = ChunkStream;

    async fn download_artifact(
        &self,
        request: Request<pb::DownloadArtifactRequest>,
    ) -> Result<Response<Self::DownloadArtifactStream>, Status> {
        self.artifacts.download_call(&self.store, request).await
    }
}
