//! `coordinator serve`: the coordinator itself on Postgres, the worker and admin gRPC services (and with
//! `--http` the dashboard, its API and /metrics) until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_coordinator::clock::SystemClock;
use sensgrid_coordinator::service::{self, ServiceConfig, TlsIdentity, parse_duration};
use sensgrid_coordinator::store::Backoff;
use sensgrid_coordinator::store::pg::PgStore;

use super::migrate::migrated_pool;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the printed address has the real one).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Also serve plain HTTP here: the dashboard at /, its JSON API under /api (README, "Dashboard"), Prometheus
    /// metrics at /metrics, and /healthz (200 "ok" while the database answers and takes writes, 503 otherwise).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Postgres URL, e.g. postgres://user@127.0.0.1:5432/sensgrid.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Connections in the database pool. Claims and completions are batched, so a few suffice.
    #[arg(long, default_value_t = 8)]
    max_connections: u32,
    /// Bearer token workers present.
    #[arg(long, env = "SENSGRID_WORKER_TOKEN", hide_env_values = true)]
    worker_token: String,
    /// Bearer token admin clients present.
    #[arg(long, env = "SENSGRID_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// PEM certificate chain: serve TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Directory of artifact files (created if missing).
    #[arg(long)]
    artifact_dir: PathBuf,
    /// How often workers heartbeat a running job (e.g. 5s, 250ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// How long a claim or heartbeat keeps a job leased.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    lease: Duration,
    /// How often expired leases are taken back.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    sweep: Duration,
    /// Attempts each job of a new run gets.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Wait before a failed or expired job's first retry; doubles per attempt.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    backoff_base: Duration,
    /// Longest wait before a retry.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    backoff_cap: Duration,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let read = |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsIdentity {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        }),
        _ => None,
    };
    let config = ServiceConfig {
        heartbeat: args.heartbeat,
        lease: args.lease,
        sweep: args.sweep,
        max_attempts: args.max_attempts,
        backoff: Backoff {
            base: args.backoff_base,
            cap: args.backoff_cap,
        },
        artifact_dir: args.artifact_dir,
        worker_token: args.worker_token,
        admin_token: args.admin_token,
        tls,
    };
    config.validate()?;
    // Before anything is bound or printed: `listening on` promises a coordinator that serves.
    std::fs::create_dir_all(&config.artifact_dir)
        .with_context(|| format!("--artifact-dir {}", config.artifact_dir.display()))?;
    let pool = migrated_pool(&args.database_url, args.max_connections).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let http = match args.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --http {addr}"))?,
        ),
        None => None,
    };
    announce(&format!("listening on {bound}\n"));
    if let Some(http) = &http {
        announce(&format!(
            "http on {}\n",
            http.local_addr().context("reading the bound address")?
        ));
    }
    let served = service::serve(
        PgStore::new(pool.clone()),
        Arc::new(SystemClock),
        config,
        service::Listeners { grpc: listener, http },
        shutdown_signal(),
    )
    .await;
    served?;
    pool.close().await;
    Ok(())
}

/// Prints one of `serve`'s announcements. The service does not depend on their being read: a closed stdout
/// (`serve | head -1`) is no reason to stop serving.
fn announce(line: &str) {
    if let Err(error) = write_stdout(line) {
        tracing::debug!(error = %format!("{error:#}"), line = line.trim_end(), "not printed");
    }
}

/// Resolves at SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler Ctrl-C still stops the coordinator.
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the coordinator");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
