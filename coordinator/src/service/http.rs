//! The coordinator's plain-HTTP listener (`coordinator serve --http ADDR`), for what does not speak gRPC:
//! `GET /healthz` for load balancers, compose and Kubernetes probes. Its one [`router`] is where later pages
//! (metrics, a dashboard) join.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::store::JobStore;

/// Every HTTP route, answered from `store`.
pub fn router<S: JobStore>(store: S) -> Router {
    Router::new().route("/healthz", get(healthz::<S>)).with_state(store)
}

/// Serves [`router`] on `listener` until `shutdown` resolves; requests in flight finish first.
///
/// # Errors
///
/// The listener's accept error, should it fail for good.
pub async fn serve<S: JobStore>(
    store: S,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}

/// 200 `ok` when the database answers a query; 503 with the store's error otherwise, so a probe takes a
/// coordinator that lost its database out of service (its gRPC calls would fail anyway).
async fn healthz<S: JobStore>(State(store): State<S>) -> (StatusCode, String) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {error}")),
    }
}
