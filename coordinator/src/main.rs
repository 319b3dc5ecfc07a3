//! The `coordinator` binary: parses flags, sets up logging (`logs`) and dispatches; the work lives in the
//! library and, for the client commands, in `commands`.

mod commands;
mod local;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sensgrid_client::stdout::{StdoutClosed, write_stdout};
use sensgrid_coordinator::MIGRATOR;
use sensgrid_coordinator::clock::SystemClock;
use sensgrid_coordinator::service::{self, ServiceConfig, TlsIdentity, parse_duration};
use sensgrid_coordinator::store::Backoff;
use sensgrid_coordinator::store::pg::PgStore;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Spreads PaddleSlim-style sensitivity analysis of an ONNX model over a cluster of workers.
#[derive(Parser)]
#[command(name = "coordinator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    logs: sensgrid_client::logs::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Applies every pending migration to the database and lists what is applied.
    Migrate {
        /// Postgres URL, e.g. postgres://user@127.0.0.1:5432/sensgrid.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Applies the migrations, then serves the worker and admin gRPC services (and the gRPC health service)
    /// until SIGTERM or Ctrl-C. Prints `listening on ADDR` once bound, then `http on ADDR` with --http.
    Serve(Box<ServeArgs>),
    /// Checks a PaddleOCR-style config, its model and eval set, uploads them and creates the run: its baseline
    /// and one cell per (channel group, ratio). Prints the run id as its last stdout line.
    Submit(Box<commands::SubmitArgs>),
    /// Lists the runs, or shows one run's cells by state, active workers, elapsed time and ETA.
    Status(commands::StatusArgs),
    /// Follows a run with a progress bar until it ends; exits 0 when it is done, 1 when it failed, was
    /// cancelled, or ended done with failed cells (named).
    Watch(commands::RunArgs),
    /// Writes a run's sen.pickle, sensitivities.csv and .json, and after an export plan.json,
    /// prune_report.json and pruned.onnx.
    Results(commands::ResultsArgs),
    /// Plans per-group ratios for a finished run (PaddleSlim's max loss, or a FLOPs reduction) and can queue
    /// the export.
    Plan(commands::PlanArgs),
    /// Cancels a run: queued and running jobs stop, finished results stay.
    Cancel(commands::RunArgs),
    /// Queues a run's failed jobs again with fresh attempts; a run that ended done with them runs again
    /// (`coordinator watch RUN` follows it). A failed or cancelled run is refused.
    Retry(commands::RunArgs),
    /// Lists the registered workers, their devices and the jobs they hold.
    Workers(commands::WorkersArgs),
    /// Runs a config's whole job on this machine: the coordinator in this process on an embedded SQLite store
    /// in --out (or Postgres with --database-url), --workers `worker join` children on loopback, the progress
    /// bar, then the results in --out. Started again with the same --out, it resumes the run.
    Run(Box<local::RunArgs>),
}

#[derive(Args)]
struct ServeArgs {
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

/// Exit codes, the same for every command (README, "Exit codes"): 0 done; 1 the run followed (`watch`,
/// `submit --watch`, `run`) ended failed or cancelled, or done with failed cells ([`commands::RunEnded`]); 2 anything else refused or
/// failed (bad flags or config, an unknown run, a coordinator that does not answer). An error is one line on
/// stderr, its causes joined by ": ". A reader of stdout that left (`| head -1`) ends the command quietly with
/// 0; `run` stopped by SIGINT, SIGTERM or SIGHUP ends by that signal ([`local::Interrupted`]).
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Run(_)) {
        "warn"
    } else {
        "info"
    };
    if let Err(error) = cli.logs.init(default_level) {
        eprintln!("coordinator: {error:#}");
        return ExitCode::from(2);
    }
    let outcome = match cli.command {
        Command::Migrate { database_url } => migrate(&database_url).await,
        Command::Serve(args) => serve(*args).await,
        Command::Submit(args) => commands::submit(*args).await,
        Command::Status(args) => commands::status(args).await,
        Command::Watch(args) => commands::watch(args).await,
        Command::Results(args) => commands::results(args).await,
        Command::Plan(args) => commands::plan(args).await,
        Command::Cancel(args) => commands::cancel(args).await,
        Command::Retry(args) => commands::retry(args).await,
        Command::Workers(args) => commands::workers(args).await,
        Command::Run(args) => local::run(*args).await,
    };
    let Err(error) = outcome else {
        return ExitCode::SUCCESS;
    };
    if error.is::<StdoutClosed>() {
        return ExitCode::SUCCESS;
    }
    eprintln!("coordinator: {error:#}");
    if let Some(interrupted) = error.downcast_ref::<local::Interrupted>() {
        interrupted.end_process();
    }
    ExitCode::from(if error.is::<commands::RunEnded>() { 1 } else { 2 })
}

async fn connect(database_url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(database_url)
        .await
        .with_context(|| format!("connecting to {database_url}"))
}

async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let pool = connect(database_url, 1).await?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    let mut applied = String::new();
    for migration in MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()) {
        applied.push_str(&format!("applied {} {}\n", migration.version, migration.description));
    }
    write_stdout(&applied)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
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
    let pool = connect(&args.database_url, args.max_connections).await?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
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
