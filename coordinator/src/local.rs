//! `coordinator run`: the whole job on one machine, nothing to install. The coordinator runs in this process on
//! an embedded SQLite file in `--out` (or on Postgres with `--database-url`), `--workers` `worker join`
//! children join it on loopback with generated tokens, and the run is followed with the progress bar until it
//! ends; then its results are written into `--out` as `coordinator results` writes them.
//!
//! The run's id is kept in `--out/run.json`: started again with the same `--out` (after a kill, say), it resumes
//! that run from the store instead of submitting a new one, so finished cells are never computed twice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use sensgrid_coordinator::clock::SystemClock;
use sensgrid_coordinator::service::{self, ServiceConfig};
use sensgrid_coordinator::store::pg::PgStore;
use sensgrid_coordinator::store::sqlite::SqliteStore;
use sensgrid_coordinator::store::{Backoff, JobStore, RunId};
use sensgrid_coordinator::{MIGRATOR, client};
use sensgrid_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::commands;

#[derive(Args)]
pub struct RunArgs {
    /// The PaddleOCR-style config (Global.pretrained_model names the ONNX model; Eval.dataset the eval set).
    #[arg(short = 'c', long)]
    config: PathBuf,
    /// Overrides, `Section.key=value` as in PaddleOCR's tools (repeatable; several after one -o).
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    /// `worker join` processes to start on this machine.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The workers' device: auto, cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Where the store, the artifacts, the logs and the results go (created). The same folder resumes a run.
    #[arg(long)]
    out: PathBuf,
    /// Keep the job store in this Postgres database instead of `OUT/sensgrid.db`.
    #[arg(long)]
    database_url: Option<String>,
    /// A name for the run (default: the config's file name).
    #[arg(long)]
    name: Option<String>,
    /// Where the dashboard (and /metrics) listens; the default picks a free loopback port. It is printed.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    http: std::net::SocketAddr,
}

/// The file that names the run an `--out` folder holds.
const RUN_FILE: &str = "run.json";

pub async fn run(args: RunArgs) -> Result<()> {
    std::fs::create_dir_all(args.out.join("logs")).with_context(|| format!("creating {}", args.out.display()))?;
    match &args.database_url {
        Some(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect(url)
                .await
                .with_context(|| format!("connecting to {url}"))?;
            MIGRATOR.run(&pool).await.context("applying migrations")?;
            run_on(PgStore::new(pool), &args).await
        }
        None => {
            let file = args.out.join("sensgrid.db");
            let store = SqliteStore::open(&file)
                .await
                .with_context(|| format!("opening the job store {}", file.display()))?;
            let outcome = run_on(store.clone(), &args).await;
            store.close().await;
            outcome
        }
    }
}

async fn run_on<S: JobStore>(store: S, args: &RunArgs) -> Result<()> {
    let worker_token = token()?;
    let admin_token = token()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let address = format!("http://{}", listener.local_addr().context("reading the bound address")?);
    let http = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("binding --http {}", args.http))?;
    let dashboard = format!("http://{}/", http.local_addr().context("reading the bound address")?);
    let config = ServiceConfig {
        heartbeat: Duration::from_secs(2),
        lease: Duration::from_secs(10),
        sweep: Duration::from_secs(1),
        max_attempts: 3,
        backoff: Backoff::default(),
        artifact_dir: args.out.join("artifacts"),
        worker_token: worker_token.clone(),
        admin_token: admin_token.clone(),
        tls: None,
    };
    let stop = CancellationToken::new();
    let server = tokio::spawn(service::serve(
        store.clone(),
        Arc::new(SystemClock),
        config,
        service::Listeners {
            grpc: listener,
            http: Some(http),
        },
        stop.clone().cancelled_owned(),
    ));
    let mut workers = Workers(Vec::new());
    for i in 1..=args.workers {
        workers.0.push(start_worker(args, &address, &worker_token, i)?);
    }
    eprintln!("dashboard on {dashboard}");
    eprintln!(
        "coordinator on {address} with {} workers ({}; logs in {})",
        args.workers,
        args.database_url
            .as_deref()
            .map_or("job store in sensgrid.db", |_| "job store in Postgres"),
        args.out.join("logs").display()
    );
    let outcome = follow(&store, args, &address, &admin_token).await;
    drop(workers);
    stop.cancel();
    server.await.context("the coordinator task")??;
    outcome
}

/// Submits the run (or finds the one this `--out` holds), follows it to its end and writes its results.
async fn follow<S: JobStore>(store: &S, args: &RunArgs, address: &str, admin_token: &str) -> Result<()> {
    let channel = client::connect(address, None).await?;
    let mut admin = client::admin_client(channel, admin_token)?;
    let run_file = args.out.join(RUN_FILE);
    let resumed = match std::fs::read_to_string(&run_file) {
        Ok(text) => {
            let id: i64 = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("run_id")?.as_i64())
                .with_context(|| format!("{}: expected {{\"run_id\": N}}", run_file.display()))?;
            store.run_get(RunId(id)).await?.map(|_| id)
        }
        Err(_) => None,
    };
    let run_id = match resumed {
        Some(id) => {
            eprintln!("resuming run {id} ({})", run_file.display());
            id
        }
        None => {
            let id =
                commands::create_run(&mut admin, &args.config, &args.overrides, args.name.as_deref(), None).await?;
            std::fs::write(&run_file, serde_json::json!({"run_id": id}).to_string())
                .with_context(|| format!("writing {}", run_file.display()))?;
            id
        }
    };
    let watched = commands::watch_run(&mut admin, run_id).await;
    let files = commands::write_results(&mut admin, run_id, &args.out).await?;
    watched?;
    for name in [
        "sen.pickle",
        "sen_status.pickle",
        "sensitivities.csv",
        "plan.json",
        "probes.csv",
        "pruned.onnx",
    ] {
        let path = args.out.join(name);
        if files.contains(&path) {
            println!("{name:<18} {}", path.display());
        }
    }
    let report = args.out.join("prune_report.json");
    if files.contains(&report) {
        let text = std::fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?;
        let report: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", report.display()))?;
        for line in before_and_after(&report) {
            println!("{line}");
        }
    }
    let state = admin.get_run(pb::GetRunRequest { run_id }).await?.into_inner().state;
    if state != "done" {
        bail!("run {run_id} ended {state}");
    }
    Ok(())
}

/// What the export changed, from `prune_report.json`: the metric, FLOPs and latency before and after, one line
/// each (a line whose numbers are missing is left out).
fn before_and_after(report: &serde_json::Value) -> Vec<String> {
    let number = |key: &str| report.get(key).and_then(serde_json::Value::as_f64);
    let change = |before: f64, after: f64| {
        if before > 0.0 {
            (after - before) / before * 100.0
        } else {
            0.0
        }
    };
    let mut lines = Vec::new();
    if let (Some(metric), Some(before), Some(after)) = (
        report.get("metric").and_then(serde_json::Value::as_str),
        number("metric_before"),
        number("metric_after"),
    ) {
        let loss = if before > 0.0 { (before - after) / before } else { 0.0 };
        lines.push(format!("{metric:<18} {before:.4} -> {after:.4} (loss {loss:.4})"));
    }
    if let (Some(before), Some(after)) = (number("flops_before"), number("flops_after")) {
        lines.push(format!(
            "{:<18} {before:.0} -> {after:.0} ({:+.1}%)",
            "FLOPs",
            change(before, after)
        ));
    }
    if let (Some(before), Some(after)) = (number("latency_ms_before"), number("latency_ms_after")) {
        let device = report.get("device").and_then(serde_json::Value::as_str).unwrap_or("?");
        lines.push(format!(
            "{:<18} {before:.1} ms -> {after:.1} ms ({:+.1}%, {device})",
            "latency",
            change(before, after)
        ));
    }
    lines
}

/// The `worker join` children; killed when dropped, so no error path leaves one behind.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // The run is over (or failing): nothing a worker holds is worth waiting for.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_worker(args: &RunArgs, address: &str, token: &str, index: usize) -> Result<Child> {
    let binary = worker_binary()?;
    let log = args.out.join("logs").join(format!("worker-{index}.log"));
    let stderr = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    Command::new(&binary)
        .arg("join")
        .args(["--coordinator", address, "--device", &args.device, "--name"])
        .arg(format!("local-{index}"))
        .arg("--cache-dir")
        .arg(args.out.join(format!("cache-{index}")))
        .env("SENSGRID_WORKER_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// The `worker` binary installed beside this one.
fn worker_binary() -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating the coordinator binary")?;
    let worker = me.with_file_name("worker");
    if worker.is_file() {
        Ok(worker)
    } else {
        bail!(
            "{} is missing: `coordinator run` starts the worker binary installed beside it",
            worker.display()
        )
    }
}

/// A fresh bearer token: 128 bits from the system's random source, as hex.
fn token() -> Result<String> {
    let mut bytes = [0u8; 16];
    let mut random = std::fs::File::open(Path::new("/dev/urandom")).context("opening /dev/urandom")?;
    std::io::Read::read_exact(&mut random, &mut bytes).context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
