//! `AdminService`: creating runs and reading their progress. A run is created with its baseline job and one
//! cell job per requested cell (no export job yet: export plans come with the planner), and the dispatcher is
//! woken so waiting workers get the baseline at once.

use std::sync::Arc;

use sensgrid_proto::v1 as pb;
use sensgrid_proto::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

use super::config::ServiceConfig;
use super::convert;
use super::dispatcher::DispatcherHandle;
use crate::clock::Clock;
use crate::store::{JobStore, RunCreateParams, RunId};

/// The admin service.
pub struct AdminApi<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: Arc<ServiceConfig>,
    dispatcher: DispatcherHandle,
}

impl<S: JobStore> AdminApi<S> {
    /// The service on these parts (built by [`super::serve`]).
    pub fn new(store: S, clock: Arc<dyn Clock>, config: Arc<ServiceConfig>, dispatcher: DispatcherHandle) -> Self {
        Self {
            store,
            clock,
            config,
            dispatcher,
        }
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
        let params = RunCreateParams {
            now: self.clock.now(),
            config_yaml: request.config_yaml,
            model_digest: request.model_digest,
            dataset_digest: request.dataset_digest,
            criterion: request.criterion,
            max_attempts: self.config.max_attempts,
            cells: convert::cells(request.cells),
            export: false,
        };
        // The same checks the store makes, before a database round trip, with the same field names.
        params.validate().map_err(convert::store_status)?;
        let run_id = self.store.run_create(params).await.map_err(convert::store_status)?;
        self.dispatcher.wake();
        Ok(Response::new(pb::CreateRunResponse { run_id: run_id.0 }))
    }

    async fn get_run(&self, request: Request<pb::GetRunRequest>) -> Result<Response<pb::GetRunResponse>, Status> {
        let run_id = RunId(request.into_inner().run_id);
        let run = self
            .store
            .run_get(run_id)
            .await
            .map_err(convert::store_status)?
            .ok_or_else(|| Status::not_found(format!("run_id: run {run_id} does not exist")))?;
        let jobs = self
            .store
            .job_list_by_run(run_id)
            .await
            .map_err(convert::store_status)?;
        Ok(Response::new(pb::GetRunResponse {
            run_id: run.id.0,
            state: convert::run_state_name(run.state).into(),
            jobs: jobs.iter().map(convert::job_status).collect(),
        }))
    }
}
