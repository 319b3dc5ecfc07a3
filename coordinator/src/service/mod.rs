//! The coordinator's gRPC services and the tasks behind them; [`serve`] runs them all on one listener.
//!
//! - [`worker`]: `WorkerService` (register, long-poll, heartbeat, complete, fail, artifacts).
//! - [`admin`]: `AdminService` (create, follow, plan and cancel runs; list workers; artifacts for clients).
//! - [`dispatcher`]: gathers every waiting poll and claims jobs for all of them in one store call.
//! - [`completer`]: gathers concurrent completions and writes them in one store call.
//! - [`sweeper`]: takes expired leases back every `sweep`, waking the dispatcher for the requeued jobs; the
//!   first sweep waits one lease, so that workers a restart kept waiting can still report.
//! - [`pipeline`]: moves running runs on (fails a run whose baseline failed, plans, queues the export, ends
//!   the run) every `sweep` and whenever a job finished.
//! - [`artifacts`]: the content-addressed files under `--artifact-dir`.
//! - [`auth`]: the bearer-token check of each service.
//! - [`convert`]: between the contract's messages and the store's types, errors naming the field.
//! - [`config`]: the settings and their checks, and the duration syntax of the command line.
//! - [`http`]: the plain-HTTP listener (`/healthz`, `/metrics`, the dashboard and its JSON API), served with
//!   the gRPC services when [`Listeners::http`] is set (`coordinator serve --http`).
//! - [`metrics`]: the Prometheus metrics of `/metrics`.
//! - [`recent_runs`]: the bounded per-run cache of the worker service's early stops.
//!
//! [`serve`] also answers the standard gRPC health service (`grpc.health.v1.Health`, no token): SERVING for
//! "" and both services while it serves, NOT_SERVING once it is stopping.
//!
//! Handlers validate, call the store (directly or through the dispatcher and completer), and map the outcome
//! to a response or a status. No SQL lives here, and no handler holds a database connection while it waits.

pub mod admin;
pub mod artifacts;
pub mod auth;
pub mod completer;
pub mod config;
pub mod convert;
pub mod dispatcher;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod recent_runs;
pub mod sweeper;
pub mod worker;

use std::future::Future;
use std::sync::Arc;

use sensgrid_proto::v1::admin_service_server::AdminServiceServer;
use sensgrid_proto::v1::worker_service_server::WorkerServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

pub use config::{ConfigError, ServiceConfig, TlsIdentity, parse_duration};

use crate::clock::Clock;
use crate::store::JobStore;
use sensgrid_client::MAX_MESSAGE_BYTES;

/// What can stop [`serve`] from serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is refused; names the setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The artifact directory cannot be created or cleaned.
    #[error("artifact directory {}: {source}", .path.display())]
    ArtifactDir {
        /// The directory.
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key is refused.
    #[error("TLS identity: {0}")]
    Tls(#[source] tonic::transport::Error),
    /// The server failed while serving.
    #[error("serving: {0}")]
    Transport(#[source] tonic::transport::Error),
    /// The HTTP listener failed while serving.
    #[error("serving HTTP: {0}")]
    Http(#[source] std::io::Error),
}

/// Where [`serve`] listens: gRPC, and plain HTTP when set.
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    /// gRPC only.
    fn from(grpc: TcpListener) -> Self {
        Self { grpc, http: None }
    }
}

/// Serves both services on `listeners` until `shutdown` resolves, then stops cleanly: waiting polls are answered
/// "no job" at once, calls in flight finish, the completer writes what it has gathered, and the background
/// tasks end before this returns.
///
/// The caller binds the listeners (so it can print the bound addresses first, and tests can use port 0) and
/// applies the migrations.
///
/// # Errors
///
/// [`ServeError`] for a refused setting, an unusable artifact directory or TLS identity, or a transport
/// failure.
pub async fn serve<S: JobStore>(
    store: S,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Listeners { grpc: listener, http } = listeners.into();
    config.validate()?;
    let artifacts = artifacts::ArtifactDir::open(config.artifact_dir.clone())
        .await
        .map_err(|source| ServeError::ArtifactDir {
            path: config.artifact_dir.clone(),
            source,
        })?;
    let mut server = Server::builder().tcp_nodelay(true);
    if let Some(tls) = &config.tls {
        let identity = Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        server = server
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(ServeError::Tls)?;
    }

    let stop = CancellationToken::new();
    let config = Arc::new(config);
    let metrics = Arc::new(metrics::Metrics::new());
    let (dispatcher, dispatcher_task) = dispatcher::Dispatcher::start(
        store.clone(),
        clock.clone(),
        dispatcher::DispatcherConfig {
            lease: config.lease,
            recheck: config.sweep,
        },
        stop.clone(),
    );
    let (completer, completer_task) =
        completer::Completer::start(store.clone(), clock.clone(), dispatcher.clone(), stop.clone());
    let sweeper_task = sweeper::Sweeper::start(
        store.clone(),
        clock.clone(),
        sweeper::SweeperConfig {
            interval: config.sweep,
            lease: config.lease,
            backoff: config.backoff,
        },
        dispatcher.clone(),
        metrics.clone(),
        stop.clone(),
    );

    let (pipeline, pipeline_task) = pipeline::Pipeline::start(
        store.clone(),
        clock.clone(),
        config.artifact_dir.clone(),
        dispatcher.clone(),
        pipeline::Workforce {
            metrics: metrics.clone(),
            heartbeat: config.heartbeat,
        },
        config.sweep,
        stop.clone(),
    );
    let worker = worker::WorkerApi::new(
        store.clone(),
        clock.clone(),
        config.clone(),
        dispatcher.clone(),
        completer,
        pipeline.clone(),
        artifacts.clone(),
        metrics.clone(),
    );
    let admin = Arc::new(admin::AdminApi::new(
        store.clone(),
        clock,
        config.clone(),
        dispatcher,
        pipeline,
        artifacts,
    ));
    let http_task = http.map(|listener| {
        let routes = http::Http {
            store,
            admin: admin.clone(),
            metrics,
            config: config.clone(),
        };
        tokio::spawn(http::serve(routes, listener, stop.clone().cancelled_owned()))
    });
    let worker = InterceptedService::new(
        WorkerServiceServer::new(worker).max_decoding_message_size(MAX_MESSAGE_BYTES),
        auth::TokenCheck::new("WorkerService", &config.worker_token),
    );
    let admin = InterceptedService::new(
        AdminServiceServer::from_arc(admin).max_decoding_message_size(MAX_MESSAGE_BYTES),
        auth::TokenCheck::new("AdminService", &config.admin_token),
    );
    // "" is SERVING from the start; the services by their full names, as clients ask for them.
    let (health, health_service) = tonic_health::server::health_reporter();
    let names = [
        "",
        <WorkerServiceServer<worker::WorkerApi<S>> as NamedService>::NAME,
        <AdminServiceServer<admin::AdminApi<S>> as NamedService>::NAME,
    ];
    for name in &names[1..] {
        health.set_service_status(*name, ServingStatus::Serving).await;
    }
    let signal = {
        let stop = stop.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                () = stop.cancelled() => {}
            }
            // Health watchers (balancers) hear of the shutdown before the listener closes.
            for name in names {
                health.set_service_status(name, ServingStatus::NotServing).await;
            }
            // Answers the waiting polls, so the graceful shutdown below does not wait out their `wait_ms`.
            stop.cancel();
        }
    };
    let served = server
        .add_service(health_service)
        .add_service(worker)
        .add_service(admin)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), signal)
        .await;
    stop.cancel();
    for task in [dispatcher_task, completer_task, sweeper_task, pipeline_task] {
        // A task that panicked has nothing left to clean up; the panic was printed when it happened.
        let _ = task.await;
    }
    let http_served = match http_task {
        Some(task) => task
            .await
            .unwrap_or_else(|panic| Err(std::io::Error::other(panic.to_string()))),
        None => Ok(()),
    };
    served.map_err(ServeError::Transport)?;
    http_served.map_err(ServeError::Http)
}
