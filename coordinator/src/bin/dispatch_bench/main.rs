//! `dispatch-bench`: how fast the coordinator hands out and takes back jobs (`bench/dispatch/run`), and the
//! simulated workers of `bench/scale/run` (`dispatch-bench simulate`).
//!
//! It creates a fresh database in the given Postgres (dropped at the end, also on failure), serves a coordinator
//! on 127.0.0.1:0 in this process, and for each client count N creates a run of `--jobs` cells and lets N
//! simulated workers, each on its own gRPC connection, poll and complete every job as soon as they get it. It
//! measures at the client: the time from sending a poll to receiving its job (dispatch latency), and claims
//! plus completions per second over the whole run. It prints one line per N, then one JSON object with the
//! figures and `meets_target` as the last line. It fails only on a broken setup, never on a figure.
//!
//! The clients report each job with `CompleteJob` (the headline figures), or with `--report-through-poll` in
//! their next `PollJob` (pipelined leases: one round trip per job, its latency then including the report).

mod simulate;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use sensgrid_client::{self as client, WorkerClient};
use sensgrid_coordinator::MIGRATOR;
use sensgrid_coordinator::clock::SystemClock;
use sensgrid_coordinator::service::{self, ServiceConfig};
use sensgrid_coordinator::store::Backoff;
use sensgrid_coordinator::store::pg::{self, PgStore};
use sensgrid_proto::v1 as pb;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

/// The target the figures are checked against, at the largest client count.
const TARGET_CLIENTS: usize = 256;
const TARGET_JOBS_PER_S: f64 = 2_000.0;
const TARGET_P99_MS: f64 = 50.0;

const WORKER_TOKEN: &str = "bench-worker";
const ADMIN_TOKEN: &str = "bench-admin";

/// Measures dispatch throughput and latency of a coordinator on a fresh database; or, with `simulate`, joins
/// a running coordinator with simulated workers.
#[derive(Parser)]
#[command(name = "dispatch-bench", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    dispatch: Args,
}

#[derive(clap::Subcommand)]
enum Mode {
    /// Workers whose model time is a sleep: each registers, long-polls, heartbeats at the coordinator's
    /// interval while it "evaluates" for --cell-seconds, and completes with a made-up metric dict (`hmean`
    /// falling with the ratio), until killed. Everything but the model is real: gRPC, leases, the store,
    /// completions, the pipeline.
    Simulate(simulate::SimulateArgs),
}

#[derive(clap::Args)]
struct Args {
    /// Postgres URL of an existing database to connect to while creating and dropping the benchmark's own.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://root@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Client counts to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    clients: Vec<usize>,
    /// Cell jobs per run (plus its baseline).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Connections in the coordinator's database pool.
    #[arg(long, default_value_t = 8)]
    pool: u32,
    /// Report each job in the next poll (`PollJobRequest.complete`) instead of a `CompleteJob` call.
    #[arg(long)]
    report_through_poll: bool,
}

/// The figures of one client count.
struct Figures {
    clients: usize,
    jobs: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Figures {
    fn jobs_per_s(&self) -> f64 {
        self.jobs as f64 / self.seconds
    }

    /// Each job is one claim and one completion.
    fn ops_per_s(&self) -> f64 {
        2.0 * self.jobs_per_s()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.mode {
        Some(Mode::Simulate(args)) => simulate::simulate(args).await,
        None => dispatch(cli.dispatch).await,
    }
}

async fn dispatch(args: Args) -> anyhow::Result<()> {
    if args.clients.is_empty() || args.clients.contains(&0) || args.jobs == 0 {
        bail!("--clients and --jobs: expected counts above 0");
    }
    let database = format!("sensgrid_dispatch_bench_{}", std::process::id());
    let (server_url, _) = args
        .database_url
        .rsplit_once('/')
        .with_context(|| format!("--database-url '{}': expected …/<database>", args.database_url))?;
    let bench_url = format!("{server_url}/{database}");
    let mut admin = PgConnection::connect(&args.database_url)
        .await
        .with_context(|| format!("connecting to {}", args.database_url))?;
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating database {database}"))?;
    let artifact_dir = std::env::temp_dir().join(&database);

    let measured = bench(&args, &bench_url, &artifact_dir).await;

    let dropped = sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .with_context(|| format!("dropping database {database}"));
    // The artifact directory only holds the two tiny artifacts; a failure to remove it is not worth failing on.
    let _ = std::fs::remove_dir_all(&artifact_dir);
    let figures = measured?;
    dropped?;

    let at_target = figures.iter().find(|f| f.clients == TARGET_CLIENTS);
    let meets_target = at_target.is_some_and(|f| f.jobs_per_s() >= TARGET_JOBS_PER_S && f.p99_ms <= TARGET_P99_MS);
    let results: Vec<_> = figures
        .iter()
        .map(|f| {
            json!({
                "clients": f.clients,
                "jobs": f.jobs,
                "seconds": round(f.seconds, 3),
                "jobs_per_s": round(f.jobs_per_s(), 1),
                "claims_plus_completions_per_s": round(f.ops_per_s(), 1),
                "dispatch_p50_ms": round(f.p50_ms, 2),
                "dispatch_p99_ms": round(f.p99_ms, 2),
            })
        })
        .collect();
    let summary = json!({
        "bench": "dispatch",
        "pool": args.pool,
        "reports": if args.report_through_poll { "poll" } else { "complete_job" },
        "results": results,
        "target": {"clients": TARGET_CLIENTS, "jobs_per_s": TARGET_JOBS_PER_S, "dispatch_p99_ms": TARGET_P99_MS},
        "meets_target": meets_target,
    });
    println!("{summary}");
    Ok(())
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Serves a coordinator on `database_url` and measures each client count.
async fn bench(args: &Args, database_url: &str, artifact_dir: &std::path::Path) -> anyhow::Result<Vec<Figures>> {
    let pool = PgPoolOptions::new()
        .max_connections(args.pool)
        .connect_with(pg::connect_options(database_url).with_context(|| format!("database URL {database_url}"))?)
        .await
        .with_context(|| format!("connecting to {database_url}"))?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let config = ServiceConfig {
        heartbeat: Duration::from_secs(5),
        lease: Duration::from_secs(20),
        sweep: Duration::from_secs(2),
        max_attempts: 3,
        backoff: Backoff::default(),
        artifact_dir: artifact_dir.to_owned(),
        worker_token: WORKER_TOKEN.into(),
        admin_token: ADMIN_TOKEN.into(),
        tls: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service::serve(
        PgStore::new(pool.clone()),
        Arc::new(SystemClock),
        config,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));

    let measured = measure_all(args, &endpoint).await;
    // The server is gone if it failed; a failed send then changes nothing.
    let _ = stop.send(());
    server.await.context("the coordinator task")?.context("serving")?;
    pool.close().await;
    measured
}

async fn measure_all(args: &Args, endpoint: &str) -> anyhow::Result<Vec<Figures>> {
    let mut setup = client::worker_client(client::connect(endpoint, None).await?, WORKER_TOKEN)?;
    let model = client::upload_artifact(&mut setup, b"bench model", "application/onnx").await?;
    let dataset = client::upload_artifact(&mut setup, b"bench dataset", "application/x-tar").await?;
    let mut admin = client::admin_client(client::connect(endpoint, None).await?, ADMIN_TOKEN)?;
    let mut figures = Vec::new();
    for &clients in &args.clients {
        let run = create_run(&mut admin, &model, &dataset, args.jobs).await?;
        let f = measure(endpoint, clients, args.jobs + 1, args.report_through_poll).await?;
        let state = admin
            .get_run(pb::GetRunRequest { run_id: run })
            .await
            .context("GetRun")?
            .into_inner();
        let done = state.jobs.iter().filter(|j| j.state() == pb::JobState::Done).count();
        if done != args.jobs + 1 {
            bail!(
                "run {run}: {done} of {} jobs done after the clients stopped",
                args.jobs + 1
            );
        }
        println!(
            "N={:<4} {} jobs in {:.2} s: {:.0} jobs/s ({:.0} claims+completions/s), dispatch latency p50 {:.2} ms, \
             p99 {:.2} ms",
            f.clients,
            f.jobs,
            f.seconds,
            f.jobs_per_s(),
            f.ops_per_s(),
            f.p50_ms,
            f.p99_ms
        );
        figures.push(f);
    }
    Ok(figures)
}

/// A run of `cells` cells: 1,000 groups at evenly spaced ratios.
async fn create_run(admin: &mut client::AdminClient, model: &str, dataset: &str, cells: usize) -> anyhow::Result<i64> {
    const GROUPS: usize = 1_000;
    let ratios = cells.div_ceil(GROUPS);
    let cells = (0..cells)
        .map(|i| pb::Cell {
            group_key: format!("conv2d_{:04}.w_0", i % GROUPS),
            ratio: (i / GROUPS + 1) as f64 / (ratios + 1) as f64,
            result_json: String::new(),
        })
        .collect();
    let request = pb::CreateRunRequest {
        config_yaml: "Global:\n  use_gpu: false\n".into(),
        model_digest: model.into(),
        dataset_digest: dataset.into(),
        criterion: "l1_norm".into(),
        cells,
        spec_json: r#"{"name": "dispatch bench", "metric": "hmean"}"#.into(),
    };
    Ok(admin
        .create_run(request)
        .await
        .context("CreateRun")?
        .into_inner()
        .run_id)
}

/// Runs `clients` workers until `total` jobs are done; answers the figures.
async fn measure(endpoint: &str, clients: usize, total: usize, report_through_poll: bool) -> anyhow::Result<Figures> {
    let mut workers = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut worker = client::worker_client(client::connect(endpoint, None).await?, WORKER_TOKEN)?;
        let request = pb::RegisterRequest {
            name: format!("bench-{i}"),
            device: "cpu".into(),
        };
        let id = worker
            .register(request)
            .await
            .context("Register")?
            .into_inner()
            .worker_id;
        workers.push((worker, id));
    }
    let completed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|(worker, id)| {
            let client = Client {
                worker,
                worker_id: id,
                report_through_poll,
            };
            tokio::spawn(client.work(total, completed.clone(), start))
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut last_completion = Duration::ZERO;
    for task in tasks {
        let (mut mine, finished) = task.await.context("a client task")??;
        latencies.append(&mut mine);
        last_completion = last_completion.max(finished);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1e3
    };
    Ok(Figures {
        clients,
        jobs: latencies.len(),
        seconds: last_completion.as_secs_f64(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
    })
}

/// One simulated worker.
struct Client {
    worker: WorkerClient,
    worker_id: i64,
    /// Whether a job's report rides on the next poll rather than a `CompleteJob` call of its own.
    report_through_poll: bool,
}

impl Client {
    /// Polls and completes each job at once until every job of the run is done. Answers its dispatch latencies
    /// and when its last completion returned (since `start`).
    async fn work(
        mut self,
        total: usize,
        completed: Arc<AtomicUsize>,
        start: Instant,
    ) -> anyhow::Result<(Vec<Duration>, Duration)> {
        let mut latencies = Vec::new();
        let mut finished = Duration::ZERO;
        // The report of the last job, when it travels with the next poll.
        let mut report = None;
        while completed.load(Ordering::Relaxed) < total {
            let asked = Instant::now();
            let carried: Option<pb::CompleteJobRequest> = report.take();
            let reported = carried.is_some();
            let polled = self
                .worker
                .poll_job(pb::PollJobRequest {
                    worker_id: self.worker_id,
                    wait_ms: 200,
                    complete: carried,
                })
                .await
                .context("PollJob")?
                .into_inner();
            if reported {
                completed.fetch_add(1, Ordering::Relaxed);
                finished = start.elapsed();
            }
            let Some(job) = polled.job else {
                continue;
            };
            latencies.push(asked.elapsed());
            let request = pb::CompleteJobRequest {
                job_id: job.job_id,
                lease_epoch: job.lease_epoch,
                metrics: [("hmean".to_string(), 0.5), ("num_samples".to_string(), 1.0)].into(),
                ..Default::default()
            };
            if self.report_through_poll {
                report = Some(request);
                continue;
            }
            self.worker.complete_job(request).await.context("CompleteJob")?;
            completed.fetch_add(1, Ordering::Relaxed);
            finished = start.elapsed();
        }
        Ok((latencies, finished))
    }
}
