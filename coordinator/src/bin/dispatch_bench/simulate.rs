//! `dispatch-bench simulate`: the simulated workers of `bench/scale/run`, whose model time is a sleep.
//!
//! Each one leases the way `worker join` does, so that what bench/scale measures is the real worker's protocol:
//! it holds up to `--prefetch` jobs leased beside the one it is "computing", heartbeats every lease it holds, and
//! hands a finished job's report to the coordinator inside the `PollJob` that refills it (one round trip per
//! cell); the next held job starts the moment the current one ends, while that poll is on the wire.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail};
use sensgrid_client::{self as client, WorkerClient};
use sensgrid_proto::v1 as pb;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::Code;

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
    /// Jobs each worker holds leased beside the one computing, as `worker join --prefetch` (0: claim only when
    /// idle).
    #[arg(long, default_value_t = 1)]
    prefetch: usize,
}

/// How long a poll waits for a job. A worker with a job in hand waits too: its current job keeps running meanwhile,
/// and a report due while the poll waits goes by `CompleteJob` instead.
const POLL_WAIT_MS: u32 = 5_000;

/// `simulate`: registers `--workers` simulated workers, says so on stderr ("N simulated workers registered", which
/// bench/scale waits for before it submits the run), then runs them until the process is killed.
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
    // All registered before any polls, so that a run submitted after the line below finds every worker waiting.
    let mut registered = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let channel = client::connect(&args.coordinator, None).await?;
        let mut worker = client::worker_client(channel, &args.token)?;
        let answer = worker
            .register(pb::RegisterRequest {
                name: format!("simulated-{i}"),
                device: "simulated".into(),
            })
            .await
            .context("Register")?
            .into_inner();
        registered.push((worker, answer));
    }
    tracing::info!("{} simulated workers registered", args.workers);
    let mut tasks = JoinSet::new();
    for (worker, answer) in registered {
        let heartbeat = Duration::from_millis(u64::from(answer.heartbeat_interval_ms.max(1)));
        tasks.spawn(simulated_worker(
            worker,
            answer.worker_id,
            heartbeat,
            cell,
            args.prefetch,
        ));
    }
    // A worker only returns on an error: the first one ends the process.
    match tasks.join_next().await {
        Some(outcome) => outcome.context("a simulated worker")?,
        None => Ok(()),
    }
}

/// A job this worker holds leased; `started` is set once it is the one computing (the front of the queue).
struct Held {
    job: pb::Job,
    started: Option<Instant>,
}

/// One simulated worker's loop. It claims while it holds fewer than `1 + prefetch` jobs (one poll at a time);
/// "computes" the front job for `cell`; on its end starts the next held job at once and sends the finished one's
/// report with the refilling poll (or by `CompleteJob` when a poll is already waiting); heartbeats every held lease
/// each `heartbeat` and drops a job whose lease the coordinator says is gone.
async fn simulated_worker(
    worker: WorkerClient,
    worker_id: i64,
    heartbeat: Duration,
    cell: Duration,
    prefetch: usize,
) -> anyhow::Result<()> {
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut report: Option<pb::CompleteJobRequest> = None;
    // At most one poll in flight; the heartbeat rounds and reports sent on their own, as they go.
    let mut polls: JoinSet<(bool, Result<pb::PollJobResponse, tonic::Status>)> = JoinSet::new();
    let mut beats: JoinSet<Result<Vec<(i64, bool)>, tonic::Status>> = JoinSet::new();
    let mut reports: JoinSet<(i64, Result<(), tonic::Status>)> = JoinSet::new();
    let mut ticks = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if polls.is_empty() && held.len() <= prefetch {
            let mut worker = worker.clone();
            let complete = report.take();
            polls.spawn(async move {
                let carried = complete.is_some();
                let request = pb::PollJobRequest {
                    worker_id,
                    wait_ms: POLL_WAIT_MS,
                    complete,
                };
                (carried, worker.poll_job(request).await.map(tonic::Response::into_inner))
            });
        }
        if let Some(request) = report.take() {
            let mut worker = worker.clone();
            reports.spawn(async move { (request.job_id, worker.complete_job(request).await.map(drop)) });
        }
        let deadline = held.front().and_then(|h| h.started).map(|started| started + cell);
        tokio::select! {
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                let done = held.pop_front().expect("a deadline is the front job's");
                report = Some(completion(&done.job, done.started.map_or(cell, |s| s.elapsed())));
                start_front(&mut held);
            }
            Some(answer) = polls.join_next() => {
                let (carried, answer) = answer.context("a poll task")?;
                match answer {
                    Ok(polled) => {
                        if let Some(job) = polled.job {
                            held.push_back(Held { job, started: None });
                            start_front(&mut held);
                        }
                    }
                    // A refused report (its lease was lost, or its run cancelled): no claim was made; the next
                    // poll goes on.
                    Err(status) if carried && refused(&status) => {
                        tracing::warn!(error = status.message(), "completion refused");
                    }
                    Err(status) => return Err(anyhow::Error::new(status).context("PollJob")),
                }
            }
            _ = ticks.tick(), if !held.is_empty() => {
                let leases: Vec<(i64, i64)> = held.iter().map(|h| (h.job.job_id, h.job.lease_epoch)).collect();
                let mut worker = worker.clone();
                beats.spawn(async move {
                    let mut answers = Vec::with_capacity(leases.len());
                    for (job_id, lease_epoch) in leases {
                        let beat = pb::HeartbeatRequest { job_id, lease_epoch, done: 0, total: 1 };
                        answers.push((job_id, worker.heartbeat(beat).await?.into_inner().keep_going));
                    }
                    Ok(answers)
                });
            }
            Some(answers) = beats.join_next() => {
                for (job_id, keep_going) in answers.context("a heartbeat task")?.context("Heartbeat")? {
                    if !keep_going {
                        tracing::warn!(job_id, "lease lost: the job is dropped");
                        held.retain(|h| h.job.job_id != job_id);
                        start_front(&mut held);
                    }
                }
            }
            Some(sent) = reports.join_next() => {
                let (job_id, sent) = sent.context("a report task")?;
                match sent {
                    Ok(()) => {}
                    Err(status) if refused(&status) => {
                        tracing::warn!(job_id, error = status.message(), "completion refused");
                    }
                    Err(status) => return Err(anyhow::Error::new(status).context("CompleteJob")),
                }
            }
        }
    }
}

/// Starts the front job's clock if it is not running yet.
fn start_front(held: &mut VecDeque<Held>) {
    if let Some(front) = held.front_mut() {
        front.started.get_or_insert_with(Instant::now);
    }
}

/// Whether a completion was refused for its lease (stale, superseded or expired) or its run (cancelled), which a
/// worker logs and gets over, rather than a failure of the connection or the coordinator.
fn refused(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::FailedPrecondition | Code::Aborted)
}

/// The report of a finished job: a made-up sensitivity whose metric falls with the square of the ratio (0 for the
/// baseline), and the time it "computed".
fn completion(job: &pb::Job, computed: Duration) -> pb::CompleteJobRequest {
    let hmean = 0.9 * (1.0 - job.ratio * job.ratio);
    pb::CompleteJobRequest {
        job_id: job.job_id,
        lease_epoch: job.lease_epoch,
        metrics: [("hmean".to_string(), hmean), ("num_samples".to_string(), 1.0)].into(),
        seconds: computed.as_secs_f64(),
        device: "simulated".into(),
        ..Default::default()
    }
}
