//! The coordinator's plain-HTTP listener (`coordinator serve --http ADDR`), for what does not speak gRPC:
//!
//! - `GET /healthz`: 200 `ok` while the database answers (load balancers, compose and Kubernetes probes);
//! - `GET /metrics`: the Prometheus metrics of [`super::metrics`];
//! - `GET /`: the dashboard (`dashboard.html`), which polls the JSON API below;
//! - `GET /api/runs`, `GET /api/runs/{id}`, `GET /api/workers`: runs with their progress, one run's grid with
//!   every cell and its recovery, the workers with their leases (documented in the README, "Dashboard");
//! - `POST /api/runs/{id}/cancel`: cancels a run; the only call that needs a token, the admin one, as
//!   `Authorization: Bearer TOKEN`.
//!
//! The API answers from the admin service's own handlers, so the page shows what `coordinator status` and
//! `results` show.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use sensgrid_proto::v1 as pb;
use sensgrid_proto::v1::admin_service_server::AdminService;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::admin::AdminApi;
use super::auth::TokenCheck;
use super::config::ServiceConfig;
use super::metrics::Metrics;
use crate::progress::{Progress, Recovery};
use crate::results::RunResults;
use crate::store::{JobKind, JobStore, RunId, RunState};
use sensgrid_client::AUTHORIZATION;

/// The runs `GET /api/runs` answers at most (the newest).
const LISTED_RUNS: usize = 50;

/// What the handlers answer from.
pub struct Http<S> {
    pub store: S,
    pub admin: Arc<AdminApi<S>>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServiceConfig>,
}

/// Every HTTP route.
pub fn router<S: JobStore>(http: Http<S>) -> Router {
    let admin_token = TokenCheck::new("dashboard", &http.config.admin_token);
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/api/runs", get(runs::<S>))
        .route("/api/runs/{id}", get(run::<S>))
        .route("/api/runs/{id}/cancel", post(cancel::<S>))
        .route("/api/workers", get(workers::<S>))
        .with_state(Arc::new(Shared {
            http,
            admin_token,
            ended: Mutex::new(HashMap::new()),
        }))
}

struct Shared<S> {
    http: Http<S>,
    admin_token: TokenCheck,
    /// The progress of runs that ended, which no longer changes: each page's poll reads only running runs.
    ended: Mutex<HashMap<i64, Value>>,
}

type AppState<S> = State<Arc<Shared<S>>>;

/// Serves [`router`] on `listener` until `shutdown` resolves; requests in flight finish first.
///
/// # Errors
///
/// The listener's accept error, should it fail for good.
pub async fn serve<S: JobStore>(
    http: Http<S>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(http))
        .with_graceful_shutdown(shutdown)
        .await
}

/// An API error: its status and `{"error": message}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let code = match status.code() {
            tonic::Code::NotFound => StatusCode::NOT_FOUND,
            tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
            tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
            tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(code, status.message().to_owned())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

/// 200 `ok` when the database answers a query and takes writes; 503 with the store's error otherwise, so a
/// probe takes a coordinator that lost its database, or whose disk is full, out of service (its gRPC calls
/// that change anything fail anyway).
async fn healthz<S: JobStore>(State(shared): AppState<S>) -> (StatusCode, String) {
    let store = &shared.http.store;
    if let Err(error) = store.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {error}"));
    }
    match store.write_failure() {
        None => (StatusCode::OK, "ok".into()),
        Some(failure) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "database: writes failing for {:.1} s: {}",
                failure.since.elapsed().as_secs_f64(),
                failure.error
            ),
        ),
    }
}

async fn metrics<S: JobStore>(State(shared): AppState<S>) -> Response {
    let http = &shared.http;
    match http.metrics.scrape(&http.store, http.config.heartbeat).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {error}")).into_response(),
    }
}

async fn get_run<S: JobStore>(admin: &AdminApi<S>, run_id: i64) -> Result<pb::GetRunResponse, ApiError> {
    Ok(admin
        .get_run(tonic::Request::new(pb::GetRunRequest { run_id }))
        .await?
        .into_inner())
}

async fn runs<S: JobStore>(State(shared): AppState<S>) -> ApiResult {
    let admin = &shared.http.admin;
    let listed = admin
        .list_runs(tonic::Request::new(pb::ListRunsRequest::default()))
        .await?
        .into_inner()
        .runs;
    let mut runs = Vec::new();
    for summary in listed.iter().take(LISTED_RUNS) {
        let ended = shared
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&summary.run_id)
            .cloned();
        let progress = match ended {
            Some(progress) => progress,
            None => {
                let run = get_run(admin, summary.run_id).await?;
                let progress = Progress::of(&run).json();
                if run.state() != RunState::Running {
                    let mut ended = shared.ended.lock().unwrap_or_else(PoisonError::into_inner);
                    ended.insert(summary.run_id, progress.clone());
                }
                progress
            }
        };
        runs.push(progress);
    }
    Ok(Json(json!({"runs": runs})))
}

async fn run<S: JobStore>(State(shared): AppState<S>, Path(run_id): Path<i64>) -> ApiResult {
    let admin = &shared.http.admin;
    let run = get_run(admin, run_id).await?;
    let workers = admin
        .list_workers(tonic::Request::new(pb::ListWorkersRequest {}))
        .await?
        .into_inner()
        .workers;
    let results =
        RunResults::new(&run, &workers).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let jobs: Vec<Value> = run
        .jobs
        .iter()
        .map(|j| {
            json!({
                "job_id": j.job_id,
                "kind": j.kind().as_str(),
                "state": j.state().as_str(),
                "group_key": (!j.group_key.is_empty()).then_some(&j.group_key),
                "ratio": (j.kind() == JobKind::Cell).then_some(j.ratio),
                "attempt": j.attempt,
                "worker": (j.lease_owner != 0).then_some(j.lease_owner),
                "error": (!j.last_error.is_empty()).then_some(&j.last_error),
            })
        })
        .collect();
    let plan = serde_json::from_str::<Value>(&run.plan_json).unwrap_or(Value::Null);
    Ok(Json(json!({
        "progress": Progress::of(&run).json(),
        "recovery": Recovery::of(&run, &results.spec.metric).as_ref().map(Recovery::json),
        "results": results.json(),
        "jobs": jobs,
        "plan": plan,
    })))
}

async fn workers<S: JobStore>(State(shared): AppState<S>) -> ApiResult {
    let http = &shared.http;
    let store_error = |e: crate::store::StoreError| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}"));
    let workers = http.store.worker_list().await.map_err(store_error)?;
    // The leased jobs' kinds, groups and ratios, from their runs.
    let runs: BTreeSet<RunId> = workers
        .iter()
        .flat_map(|w| w.leases.iter().map(|(_, run)| *run))
        .collect();
    let mut jobs = HashMap::new();
    for run in runs {
        for job in http.store.job_list_by_run(run).await.map_err(store_error)? {
            jobs.insert(job.id, job);
        }
    }
    let now = time::OffsetDateTime::now_utc();
    // Its last heartbeat (stored) or its last poll (seen by this process), whichever is more recent.
    let since_seen = |w: &crate::store::WorkerSummary| {
        let heartbeat = (now - w.worker.last_seen_at).as_seconds_f64().max(0.0);
        let call = http.metrics.since_last_call(w.worker.id).map(|d| d.as_secs_f64());
        call.map_or(heartbeat, |call| call.min(heartbeat))
    };
    let listed: Vec<Value> = workers
        .iter()
        .map(|w| {
            let leases: Vec<Value> = w
                .leases
                .iter()
                .map(|(job, run)| {
                    let detail = jobs.get(job);
                    json!({
                        "job_id": job.0,
                        "run_id": run.0,
                        "kind": detail.map(|j| j.kind.as_str()),
                        "group_key": detail.and_then(|j| j.group_key.clone()),
                        "ratio": detail.and_then(|j| j.ratio),
                    })
                })
                .collect();
            json!({
                "worker_id": w.worker.id.0,
                "name": w.worker.name,
                "device": w.worker.device,
                "registered_at": super::convert::timestamp(Some(w.worker.registered_at)),
                "last_seen_at": super::convert::timestamp(Some(w.worker.last_seen_at)),
                "seconds_since_seen": since_seen(w),
                "connected": http.metrics.is_connected(w, http.config.heartbeat),
                "jobs": leases,
            })
        })
        .collect();
    Ok(Json(json!({"workers": listed})))
}

async fn cancel<S: JobStore>(State(shared): AppState<S>, Path(run_id): Path<i64>, headers: HeaderMap) -> ApiResult {
    let presented = headers.get(AUTHORIZATION).map(|v| v.as_bytes());
    if !presented.is_some_and(|p| shared.admin_token.admits(p)) {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "cancelling a run needs the admin token: 'Authorization: Bearer TOKEN'".into(),
        ));
    }
    let cancelled = shared
        .http
        .admin
        .cancel_run(tonic::Request::new(pb::CancelRunRequest { run_id }))
        .await?
        .into_inner();
    Ok(Json(json!({
        "state": cancelled.state().as_str(),
        "queued_cancelled": cancelled.queued_cancelled,
        "leased_cancelled": cancelled.leased_cancelled,
    })))
}
