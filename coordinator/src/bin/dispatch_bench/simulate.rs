//! `dispatch-bench simulate`: the simulated workers of `bench/scale/run`, whose model time is a sleep.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sensgrid_client::{self as client, WorkerClient};
use sensgrid_proto::v1 as pb;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The coordinator's address.
    #[arg(long, env = "SENSGRID_COORDINATOR")]
    coordinator: String,
    /// The worker bearer token.
    #[arg(long, env = "SENSGRID_WORKER_TOKEN", hide_env_values = true)]
    token: String,
    /// Simulated workers, each on its own connection.
    #[arg(long)]
    workers: usize,
    /// The simulated model time of one job.
    #[arg(long)]
    cell_seconds: f64,
}

/// `simulate`: runs `--workers` simulated workers until the process is killed.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    if args.workers == 0 {
        bail!("--workers: expected at least 1");
    }
    let cell = Duration::try_from_secs_f64(args.cell_seconds).map_err(|_| {
        anyhow::anyhow!(
            "--cell-seconds: expected a duration in seconds, got {}",
            args.cell_seconds
        )
    })?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.workers {
        let channel = client::connect(&args.coordinator, None).await?;
        let worker = client::worker_client(channel, &args.token)?;
        tasks.spawn(simulated_worker(worker, format!("simulated-{i}"), cell));
    }
    // A worker only returns on an error: the first one ends the process.
    match tasks.join_next().await {
        Some(outcome) => outcome.context("a simulated worker")?,
        None => Ok(()),
    }
}

/// One simulated worker's loop: poll, "evaluate" for `cell` while heartbeating, complete.
async fn simulated_worker(mut worker: WorkerClient, name: String, cell: Duration) -> anyhow::Result<()> {
    let registered = worker
        .register(pb::RegisterRequest {
            name,
            device: "simulated".into(),
        })
        .await
        .context("Register")?
        .into_inner();
    let heartbeat = Duration::from_millis(u64::from(registered.heartbeat_interval_ms.max(1)));
    loop {
        let polled = worker
            .poll_job(pb::PollJobRequest {
                worker_id: registered.worker_id,
                wait_ms: 5_000,
                complete: None,
            })
            .await
            .context("PollJob")?
            .into_inner();
        let Some(job) = polled.job else {
            continue;
        };
        let started = Instant::now();
        while started.elapsed() < cell {
            tokio::time::sleep(heartbeat.min(cell - started.elapsed())).await;
            if started.elapsed() >= cell {
                break;
            }
            let beat = pb::HeartbeatRequest {
                job_id: job.job_id,
                lease_epoch: job.lease_epoch,
                done: 0,
                total: 1,
            };
            worker.heartbeat(beat).await.context("Heartbeat")?;
        }
        // A made-up sensitivity: the metric falls with the square of the ratio (0 for the baseline).
        let hmean = 0.9 * (1.0 - job.ratio * job.ratio);
        let request = pb::CompleteJobRequest {
            job_id: job.job_id,
            lease_epoch: job.lease_epoch,
            metrics: [("hmean".to_string(), hmean), ("num_samples".to_string(), 1.0)].into(),
            seconds: started.elapsed().as_secs_f64(),
            device: "simulated".into(),
            ..Default::default()
        };
        // A stale or cancelled job's completion is refused; the next poll goes on.
        if let Err(status) = worker.complete_job(request).await {
            tracing::warn!(job_id = job.job_id, error = status.message(), "completion refused");
        }
    }
}
