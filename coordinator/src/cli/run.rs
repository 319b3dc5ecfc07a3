//! `coordinator run`: the whole job on one machine, nothing to install. The coordinator runs in this process on
//! an embedded SQLite file in `--out` (or on Postgres with `--database-url`), `--workers` `worker join`
//! children join it on loopback with generated tokens, and the run is followed with the progress bar until it
//! ends; then its results are written into `--out` as `coordinator results` writes them.
//!
//! The run's id is kept in `--out/run.json`: started again with the same `--out` (after a kill, say), it resumes
//! that run from the store instead of submitting a new one, so finished cells are never computed twice. A new
//! run's config, model and eval set are checked before anything starts, so a bad one is refused at once.
//!
//! The workers never outlive this process: each gets `PR_SET_PDEATHSIG` (SIGKILL when the coordinator dies,
//! even by SIGKILL) and its own process group, which is killed on the way out. SIGINT, SIGTERM and SIGHUP (the
//! terminal closed) stop the workers and the coordinator, then end this process by the same signal
//! ([`Interrupted`]).
//!
//! A job store that cannot write (a full disk under `--out`) stops the run within seconds
//! ([`STORE_FAILURE_GRACE`]) with the store's error, rather than leaving it waiting on workers whose every
//! report fails: what was committed stays, and the same `--out` resumes once there is space.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_client::{AdminClient, atomic_file};
use sensgrid_coordinator::clock::SystemClock;
use sensgrid_coordinator::service::{self, ServiceConfig};
use sensgrid_coordinator::store::pg::PgStore;
use sensgrid_coordinator::store::sqlite::SqliteStore;
use sensgrid_coordinator::store::{Backoff, JobStore, RunId};
use sensgrid_coordinator::submit::{self, Prepared};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::migrate::migrated_pool;
use super::results::write_results;
use super::submit::create_prepared_run;
use super::watch::watch_run;

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

/// `coordinator run` was stopped by SIGINT, SIGTERM or SIGHUP: its workers and its coordinator are stopped, and
/// [`Interrupted::end_process`] ends the process by the same signal, as a shell and `make` expect of a command
/// that was interrupted (a shell shows 130 or 143). The run is not over: the same `--out` resumes it.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}: workers stopped; started again with the same --out, the run resumes", signal_name(*.signal))]
pub struct Interrupted {
    pub signal: libc::c_int,
}

impl Interrupted {
    /// Ends the process by the signal that interrupted it, with its default action.
    pub fn end_process(&self) -> ! {
        sensgrid_client::process::end_by_signal(self.signal)
    }
}

fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught from the start of `run` so that none leaves the workers behind.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    fn listen() -> Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("listening for SIGHUP")?,
        })
    }

    /// The next SIGINT, SIGTERM or SIGHUP.
    async fn recv(&mut self) -> Interrupted {
        let signal = tokio::select! {
            _ = self.interrupt.recv() => libc::SIGINT,
            _ = self.terminate.recv() => libc::SIGTERM,
            _ = self.hangup.recv() => libc::SIGHUP,
        };
        Interrupted { signal }
    }
}

pub async fn run(args: RunArgs) -> Result<()> {
    let mut signals = StopSignals::listen()?;
    std::fs::create_dir_all(args.out.join("logs")).with_context(|| format!("creating {}", args.out.display()))?;
    match &args.database_url {
        Some(url) => {
            let pool = migrated_pool(url, 8).await?;
            run_on(PgStore::new(pool), "the job store (Postgres)", &args, &mut signals).await
        }
        None => {
            let file = args.out.join("sensgrid.db");
            let store = SqliteStore::open(&file)
                .await
                .with_context(|| format!("opening the job store {}", file.display()))?;
            let place = format!("the job store {}", file.display());
            let outcome = run_on(store.clone(), &place, &args, &mut signals).await;
            store.close().await;
            outcome
        }
    }
}

/// What this `coordinator run` follows.
enum Submission {
    /// The run `--out/run.json` names, which the store holds.
    Resumed(i64),
    /// A new run of the config, checked and laid out, not yet created.
    New(Box<Prepared>),
}

async fn run_on<S: JobStore>(store: S, place: &str, args: &RunArgs, signals: &mut StopSignals) -> Result<()> {
    let submission = tokio::select! {
        submission = submission(&store, args) => submission?,
        interrupted = signals.recv() => return Err(interrupted.into()),
    };
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
    let openmp = openmp_env(args.workers);
    for i in 1..=args.workers {
        workers.0.push(start_worker(args, &address, &worker_token, i, &openmp)?);
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
    let outcome = tokio::select! {
        outcome = follow(args, &address, &admin_token, submission) => outcome,
        interrupted = signals.recv() => Err(interrupted.into()),
        failure = cannot_write(&store, place) => Err(failure),
    };
    drop(workers);
    stop.cancel();
    server.await.context("the coordinator task")??;
    outcome
}

/// How long every write of the job store may fail before `run` stops: long enough for one failed commit to
/// be followed by a good one, short enough that a full disk ends the run within seconds.
const STORE_FAILURE_GRACE: Duration = Duration::from_secs(3);

/// Returns once the store's writes have failed for [`STORE_FAILURE_GRACE`] in a row, with the error to end
/// the run on (`place` names the store).
async fn cannot_write<S: JobStore>(store: &S, place: &str) -> anyhow::Error {
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    loop {
        ticks.tick().await;
        if let Some(failure) = store.write_failure() {
            let failing = failure.since.elapsed();
            if failing >= STORE_FAILURE_GRACE {
                return anyhow::anyhow!(
                    "{place} cannot be written ({}; every write for {:.0} s): workers stopped; what finished \
                     is kept, and once there is space the same --out resumes the run",
                    failure.error,
                    failing.as_secs_f64()
                );
            }
        }
    }
}

/// The run `--out` names when the store holds it; otherwise the config's new run, prepared (reading the
/// config, the model and the eval set) before anything starts, so that a bad one is refused at once.
async fn submission<S: JobStore>(store: &S, args: &RunArgs) -> Result<Submission> {
    let run_file = args.out.join(RUN_FILE);
    if let Ok(text) = std::fs::read_to_string(&run_file) {
        let id: i64 = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("run_id")?.as_i64())
            .with_context(|| format!("{}: expected {{\"run_id\": N}}", run_file.display()))?;
        if store.run_get(RunId(id)).await?.is_some() {
            return Ok(Submission::Resumed(id));
        }
    }
    let (config, overrides, name) = (args.config.clone(), args.overrides.clone(), args.name.clone());
    // Seconds of CPU (the model's groups and FLOPs, the eval set packed): off the async threads.
    let prepared = tokio::task::spawn_blocking(move || submit::prepare(&config, &overrides, name.as_deref()))
        .await
        .context("checking the submission")??;
    Ok(Submission::New(Box::new(prepared)))
}

/// Creates the run (or takes the one this `--out` holds), follows it to its end and writes its results.
async fn follow(args: &RunArgs, address: &str, admin_token: &str, submission: Submission) -> Result<()> {
    let channel = sensgrid_client::connect(address, None).await?;
    let mut admin = sensgrid_client::admin_client(channel, admin_token)?;
    let run_file = args.out.join(RUN_FILE);
    let run_id = match submission {
        Submission::Resumed(id) => {
            eprintln!("resuming run {id} ({})", run_file.display());
            retry_failed(&mut admin, id).await?;
            id
        }
        Submission::New(prepared) => {
            let id = create_prepared_run(&mut admin, *prepared, None).await?;
            atomic_file::write(&run_file, serde_json::json!({"run_id": id}).to_string().as_bytes())?;
            id
        }
    };
    let watched = watch_run(&mut admin, run_id).await;
    let files = write_results(&mut admin, run_id, &args.out).await?;
    watched?;
    let mut summary = String::new();
    for name in [
        "sen.pickle",
        "sen_status.pickle",
        "sensitivities.csv",
        "plan.json",
        "probes.csv",
        "pruned.onnx",
        "recovered.onnx",
    ] {
        let path = args.out.join(name);
        if files.contains(&path) {
            summary.push_str(&format!("{name:<18} {}\n", path.display()));
        }
    }
    let report = args.out.join("prune_report.json");
    if files.contains(&report) {
        let text = std::fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?;
        let report: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", report.display()))?;
        for line in before_and_after(&report) {
            summary.push_str(&line);
            summary.push('\n');
        }
    }
    let recovery = args.out.join("recover_report.json");
    if files.contains(&recovery) {
        let text = std::fs::read_to_string(&recovery).with_context(|| format!("reading {}", recovery.display()))?;
        let report: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", recovery.display()))?;
        if let Some(line) = recovered(&report) {
            summary.push_str(&line);
            summary.push('\n');
        }
    }
    write_stdout(&summary)
}

/// A resumed run's failed jobs, queued again with fresh attempts (and the run reopened if it had ended done with
/// them), as `coordinator retry` does: resuming is asking for the rest of the run. A failed or cancelled run
/// stays as it is, and the watch that follows reports it.
async fn retry_failed(admin: &mut AdminClient, run_id: i64) -> Result<()> {
    match admin.retry_run(sensgrid_proto::v1::RetryRunRequest { run_id }).await {
        Ok(answer) => {
            let requeued = answer.into_inner().requeued;
            if requeued > 0 {
                eprintln!("run {run_id}: {requeued} failed jobs queued again");
            }
            Ok(())
        }
        Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(()),
        Err(status) => Err(anyhow::Error::new(status).context("RetryRun")),
    }
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

/// What the recovery won back, from `recover_report.json`: `recovered hmean  0.0000 -> 0.9072 (won back 95.8%,
/// 300 steps, 174 s, cpu)`; `None` when its numbers are missing.
fn recovered(report: &serde_json::Value) -> Option<String> {
    let number = |key: &str| report.get(key).and_then(serde_json::Value::as_f64);
    let metric = report.get("metric").and_then(serde_json::Value::as_str)?;
    let (pruned, recovered) = (number("pruned")?, number("recovered")?);
    let won_back = number("won_back").map_or_else(
        || "nothing was lost".to_owned(),
        |share| format!("won back {:.1}%", share * 100.0),
    );
    let steps = report.get("steps").and_then(serde_json::Value::as_u64)?;
    let device = report.get("device").and_then(serde_json::Value::as_str).unwrap_or("?");
    Some(format!(
        "{:<18} {pruned:.4} -> {recovered:.4} ({won_back}, {steps} steps, {:.0} s, {device})",
        format!("recovered {metric}"),
        number("wall_s")?
    ))
}

/// The `worker join` children, each the leader of its own process group; the groups are killed when this is
/// dropped, so no way out of `run` leaves a worker behind.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let group = -libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
            // The run is over (or failing): nothing a worker holds is worth waiting for. The whole group, so
            // that nothing a worker started survives it either.
            // SAFETY: kill(2) on the process group of a child not yet reaped, so its id is not reused.
            unsafe { libc::kill(group, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

/// The OpenMP settings the local workers get, each only where this process's environment leaves it unset.
/// libtorch runs its CPU ops on an OpenMP pool of one thread per core, so `--workers N` would start N pools on the
/// same cores: each worker gets cores / N threads. And libgomp's default wait spins at every barrier: a thread
/// whose partner (or whose core) is taken by another worker, the coordinator or the worker's own single-threaded
/// steps (decoding, post-processing) burns its time slice spinning. On a 2-core AMD EPYC with other work running,
/// `worker eval` of one det cell on 10 images took 1.4 s and once 9.4 s (8.9 s of it user time) with the default
/// wait, 1.0 to 1.2 s with `passive`, which sleeps at once; a 6-cell `run --workers 1` on 2 threads 13 to 16 s
/// with the default, 7.4 to 8.7 s with `passive` (9.5 to 10.6 s with a spin of 10,000).
fn openmp_env(workers: usize) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        // The CPUs this process may run on (its affinity mask and cgroup quota), as taskset or a container sets.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        env.push(("OMP_NUM_THREADS", (cores / workers.max(1)).max(1).to_string()));
    }
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        env.push(("OMP_WAIT_POLICY", "passive".to_string()));
    }
    env
}

fn start_worker(
    args: &RunArgs,
    address: &str,
    token: &str,
    index: usize,
    openmp: &[(&'static str, String)],
) -> Result<Child> {
    let binary = worker_binary()?;
    let log = args.out.join("logs").join(format!("worker-{index}.log"));
    // Appended to: a resumed run adds to the log of the run before, never truncates it.
    let stderr = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let coordinator = libc::pid_t::try_from(std::process::id()).expect("a pid fits pid_t");
    let mut command = Command::new(&binary);
    command
        .arg("join")
        .args(["--coordinator", address, "--device", &args.device, "--name"])
        .arg(format!("local-{index}"))
        .arg("--cache-dir")
        .arg(args.out.join(format!("cache-{index}")))
        .env("SENSGRID_WORKER_TOKEN", token)
        .envs(openmp.iter().map(|(key, value)| (key, value)))
        .stdout(Stdio::null())
        .stderr(stderr)
        // Its own group: Ctrl-C on a terminal reaches the coordinator alone, which then stops the workers
        // itself (`Workers`), rather than each worker finishing its job against a coordinator gone.
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe calls (prctl,
    // getppid), allocating nothing.
    unsafe {
        command.pre_exec(move || {
            // The kernel kills the worker when the thread that forked it exits. That is this process's main
            // thread (`run` runs on it, in the runtime's block_on), which ends only with the process.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The coordinator may have died between the fork and the prctl: no signal would come then.
            if libc::getppid() != coordinator {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_what_the_recovery_won_back() {
        let report = serde_json::json!({
            "metric": "hmean", "pruned": 0.0, "recovered": 0.9072, "won_back": 0.9576, "steps": 300,
            "wall_s": 173.2, "device": "cpu",
        });
        assert_eq!(
            recovered(&report).as_deref(),
            Some("recovered hmean    0.0000 -> 0.9072 (won back 95.8%, 300 steps, 173 s, cpu)")
        );
        let nothing_lost = serde_json::json!({
            "metric": "acc", "pruned": 0.9, "recovered": 0.9, "won_back": null, "steps": 10, "wall_s": 1.0,
            "device": "cuda:0",
        });
        assert_eq!(
            recovered(&nothing_lost).as_deref(),
            Some("recovered acc      0.9000 -> 0.9000 (nothing was lost, 10 steps, 1 s, cuda:0)")
        );
        assert_eq!(recovered(&serde_json::json!({"metric": "hmean"})), None);
    }
}
