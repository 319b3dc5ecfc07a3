//! `worker join`: works for a coordinator until interrupted (see `crate::join`).
//!
//! `--device all` runs a worker per visible GPU in this one process, so that a multi-GPU box (a compose service
//! given every GPU) uses each of them: every worker is a [`join::run`] on a thread of its own, with its own
//! runtime, lease loop and registration (named `NAME/cuda:N`) and its own cache folder (`CACHE/cuda-N`, one live
//! worker per folder). Without a GPU it runs one worker on the CPU, and says so.
//!
//! Signals reach every worker, since each listens for them in the same process: the first SIGINT or SIGTERM
//! lets each finish and report its job, and the process exits once all have left; a second hands every job
//! back. A worker that stops for good (a refused token, a cache folder it cannot use, a panic) is logged with
//! its device at once and asks the others to leave as a first SIGTERM would (see [`run_each`]): the process
//! then exits with an error naming each failed device, and its supervisor (compose's `restart:`) starts it
//! again with every GPU, rather than it working on with one GPU idle and its failure unseen.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sensgrid_client::Tls;
use tch::Device;

use crate::devices::DeviceReport;
use crate::exec::{device_name, parse_device};
use crate::join::{self, Options};

/// The hidden variable (and flag) that makes `--device all` see this many CPU stand-ins instead of the GPUs,
/// so that tests show a worker per device on machines without one. Not for production: the stand-ins share
/// the same cores.
const CPU_STANDINS_ENV: &str = "SENSGRID_CPU_STANDINS";

#[derive(clap::Args)]
pub struct Args {
    /// The coordinator's gRPC address: http://HOST:7070, or https://HOST:7070 with --tls-ca.
    #[arg(long)]
    coordinator: String,
    /// The worker token (the coordinator's --worker-token).
    #[arg(long, env = "SENSGRID_WORKER_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM certificate of the CA that signed the coordinator's certificate (for https).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The name the coordinator's certificate is checked against (default: the host of --coordinator).
    #[arg(long, requires = "tls_ca")]
    tls_domain: Option<String>,
    /// auto (the first GPU when there is one), all (a worker per visible GPU, each named NAME/cuda:N with the
    /// cache folder CACHE_DIR/cuda-N; the CPU alone without a GPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Where downloaded models and eval sets are kept between jobs (default: $XDG_CACHE_HOME/sensgrid/worker,
    /// or ~/.cache/sensgrid/worker). One live worker per folder: a second one is refused.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// How this worker appears in the coordinator (default: the host name and the process id).
    #[arg(long)]
    name: Option<String>,
    /// Evaluate every cell on the whole graph instead of reusing the activations upstream of its group
    /// (the results are the same; benchmarks measure the difference).
    #[arg(long)]
    no_incremental: bool,
    /// Jobs held leased beside the one computing, so the next starts the moment the current one ends and its
    /// report travels with the next claim (0: claim only when idle).
    #[arg(long, default_value_t = 1)]
    prefetch: usize,
    /// Tests only: `--device all` sees this many CPU stand-ins instead of the GPUs (see [`CPU_STANDINS_ENV`]).
    #[arg(long, hide = true, env = CPU_STANDINS_ENV, value_parser = clap::value_parser!(u16).range(1..))]
    cpu_standins: Option<u16>,
}

/// How long after its start a worker surely listens for signals (it does after building its runtime and opening
/// its cache folder, milliseconds).
const LISTEN_GRACE: Duration = Duration::from_secs(1);

/// One worker of `--device all`: its device, and the label that sets it apart in its name, cache folder and
/// logs (`cuda:N`, or `cpu-standin-N` for a stand-in).
struct WorkerDevice {
    device: Device,
    label: String,
}

pub fn run(args: &Args) -> Result<()> {
    let tls = match &args.tls_ca {
        Some(path) => Some(Tls {
            ca_pem: std::fs::read(path).with_context(|| format!("--tls-ca {}", path.display()))?,
            domain: args.tls_domain.clone(),
        }),
        None => None,
    };
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => default_cache_dir()?,
    };
    let name = args.name.clone().unwrap_or_else(join::default_name);
    let options = |device, cache_dir, name| Options {
        coordinator: args.coordinator.clone(),
        token: args.token.clone(),
        tls: tls.clone(),
        device,
        cache_dir,
        name,
        incremental: !args.no_incremental,
        prefetch: args.prefetch,
    };
    if args.device != "all" {
        return join::run(options(parse_device(&args.device)?, cache_dir, name));
    }
    let workers = devices_for_all(args.cpu_standins)
        .into_iter()
        .map(|worker_device| {
            let folder = cache_dir.join(worker_device.label.replace(':', "-"));
            let worker = options(worker_device.device, folder, format!("{name}/{}", worker_device.label));
            (worker_device.label, worker)
        })
        .collect();
    run_each(workers)
}

/// The workers `--device all` runs: one per visible GPU, the CPU alone without one, or the stand-ins.
fn devices_for_all(cpu_standins: Option<u16>) -> Vec<WorkerDevice> {
    if let Some(count) = cpu_standins {
        tracing::warn!(
            count,
            "--device all: CPU stand-ins instead of GPUs ({CPU_STANDINS_ENV}, for tests)"
        );
        return (0..count)
            .map(|index| WorkerDevice {
                device: Device::Cpu,
                label: format!("cpu-standin-{index}"),
            })
            .collect();
    }
    let report = DeviceReport::probe();
    if report.cuda_devices == 0 {
        tracing::info!("--device all: libtorch sees no GPU; one worker on the CPU");
    } else {
        tracing::info!(gpus = report.cuda_devices, "--device all: a worker per GPU");
    }
    report
        .join_all()
        .into_iter()
        .map(|device| WorkerDevice {
            device,
            label: device_name(device),
        })
        .collect()
}

/// Runs each `(label, options)` worker on a thread of its own until all have ended.
///
/// The first to stop for good sends this process a SIGTERM, unless an interrupt came already: every other
/// worker takes it as a first interrupt, finishes and reports its job, and leaves. A worker misses a signal
/// sent before it listens (its first instants: a runtime, its cache folder), so the SIGTERM waits until the
/// workers have run [`LISTEN_GRACE`]; one that fails at once (its cache folder locked) would otherwise leave
/// the others working on, unstopped.
///
/// # Errors
/// The workers that stopped for good, each named by its label with its error.
fn run_each(workers: Vec<(String, Options)>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Listening here first also keeps the SIGTERM sent below from ending the process by its default action
        // should no worker listen yet: a handler, once installed, stays for the life of the process.
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let (ended, mut endings) = tokio::sync::mpsc::unbounded_channel();
        let mut running = workers.len();
        for (label, options) in workers {
            let ended = ended.clone();
            let span = tracing::info_span!("worker", device = %label);
            std::thread::Builder::new()
                .name(format!("worker {label}"))
                .spawn(move || {
                    // The worker's own loop runs on this thread (block_on), so its events carry the device.
                    let outcome = span.in_scope(|| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| join::run(options)))
                            .unwrap_or_else(|_| Err(anyhow!("panicked")))
                    });
                    // The receiver lives until every worker has ended.
                    let _ = ended.send((label, outcome));
                })
                .context("starting a worker thread")?;
        }
        drop(ended);
        let listening = tokio::time::Instant::now() + LISTEN_GRACE;
        let mut interrupted = false;
        let mut failures = Vec::new();
        while running > 0 {
            tokio::select! {
                _ = interrupt.recv() => interrupted = true,
                _ = terminate.recv() => interrupted = true,
                Some((label, outcome)) = endings.recv() => {
                    running -= 1;
                    match outcome {
                        Ok(()) => tracing::info!(device = %label, running, "worker left"),
                        Err(error) => {
                            tracing::error!(device = %label, error = format!("{error:#}"), "worker stopped for good");
                            if !interrupted && running > 0 {
                                tokio::select! {
                                    () = tokio::time::sleep_until(listening) => {
                                        tracing::warn!(running, "asking the other workers to finish their jobs and leave");
                                        // SAFETY: kill(2) on this process's own id, with a signal it handles.
                                        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
                                    }
                                    _ = interrupt.recv() => {}
                                    _ = terminate.recv() => {}
                                }
                                interrupted = true;
                            }
                            failures.push(format!("{label}: {error:#}"));
                        }
                    }
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            bail!("worker stopped for good: {}", failures.join("; "))
        }
    })
}

fn default_cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("--cache-dir: not given, and HOME is not set")?)
            .join(".cache"),
    };
    Ok(base.join("sensgrid").join("worker"))
}
