//! `worker join`: a worker of a coordinator. It registers, long-polls for jobs, downloads and caches their
//! artifacts, evaluates baselines and cells with the engine (and runs the export: prune, score, time, upload
//! the pruned model), heartbeats with progress while it does, and reports the metric dict, until it is
//! interrupted.
//!
//! **Pipelined leases**: beside the job it computes, the worker holds up to `--prefetch` more (default 1), leased
//! and fenced like any other: each is heartbeaten from the moment it arrives and its artifacts are fetched
//! ahead, so the next job starts the moment the current one ends. The evaluation runs on a blocking thread
//! with the [`Engine`] moved in and out, and the finished job's report travels while the next one computes: a
//! completion rides in the `PollJob` that refills the prefetch queue (one round trip for both), which then does
//! not wait for a job, since its answer is the completion's; the worker logs `completed` when it comes. Failures,
//! exports (after their upload) and completions with no refill to ride (`--prefetch 0`, interrupted, a poll
//! already out) go by `FailJob` and `CompleteJob`. A refused completion answers its poll with the completion's
//! error (the job unknown, the lease stale, the run cancelled), never "this worker is unknown".
//!
//! Faults it rides out:
//! - **The coordinator is away** (restarting, unreachable, its database restarting): every call is retried
//!   with exponential backoff (0.2 s doubling to 10 s) on `UNAVAILABLE`-like statuses. A job's evaluation goes
//!   on meanwhile, and its completion is retried until it is answered (a poll that carried it and was not
//!   answered passes it on to `CompleteJob`): a completion repeated for the same lease is a no-op on the
//!   coordinator, so a reply lost in the outage costs nothing. The heartbeats of the jobs it holds go on until
//!   their reports are delivered, so the restarted coordinator sees their leases renewed within a heartbeat,
//!   before its first sweep.
//! - **A lease is lost** (the run cancelled, or the job expired and went to another worker): the heartbeat
//!   answers `keep_going = false`; the job computing stops after its batch, a prefetched one is dropped;
//!   nothing is reported.
//! - **A local fault** (its disk or cache full, out of memory, a device error; see [`local_cause`]): the job is
//!   not at fault, so it is handed back (`FailJob` with `local`) without spending an attempt and another worker
//!   takes it at once, while this one waits before its next poll, longer after each local fault in a row (2 s
//!   doubling to [`MAX_LOCAL_BACKOFF`]), until a job goes through: a worker whose disk is full does not burn a
//!   run's attempts, and picks up again by itself once space is freed. It hands its prefetched jobs back the
//!   same way and prefetches none until a job goes through, so no job waits on a worker that waits. A job it
//!   has handed back [`MAX_HAND_BACKS`] times spends its attempts again, so one whose failure only looks local
//!   still ends.
//! - **Interrupts** (Ctrl-C, SIGTERM): the first one finishes and reports the current job, hands the prefetched
//!   ones back at once (as for a local fault: no attempt spent) so another worker takes them now, then leaves;
//!   a second one stops the current job and hands it back (`FailJob`, retryable) so another worker takes it now
//!   rather than after the lease. Both are bounded in time, as `docker stop` and Kubernetes expect of a process
//!   they signal: a report or upload still undelivered [`REPORT_GRACE`] after the first interrupt is given up,
//!   and [`HAND_BACK_GRACE`] after the second the worker leaves by that signal whatever it waits on (a
//!   coordinator that stopped answering mid-call). The lease then expires and the job runs elsewhere.
//! - **Killed** (SIGKILL, the machine gone): the jobs it held, computing or prefetched, are taken back by the
//!   coordinator when their leases expire, as any leased job is. A recover job ships each checkpoint as it is
//!   written (uploaded, then named in a `ReportRecovery` at once, see [`checkpoint_sink`]), and the next attempt, on
//!   any worker, downloads the last one into the job's directory and resumes there: at most `checkpoint_every`
//!   steps are lost.
//!
//! It logs through `tracing` (the binary's `--log-format` and `--log-level`). Everything a job does happens in a
//! `job` span carrying `run_id`, `job_id`, `epoch`, `worker_id`, `kind`, and for cells `group` and `ratio`, so
//! its events need no ids of their own: `started` (when it starts computing), then `completed` (with
//! `metrics`, once the coordinator has taken the completion; the fault tests count them), `failed`, `handed
//! back`, `stopped`, or a report refused or not delivered.

mod cache;
mod engine;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sensgrid_client::{self as client, Tls, WorkerClient};
use sensgrid_proto::v1::{
    CompleteJobRequest, FailJobRequest, HeartbeatRequest, Job, JobKind, PollJobRequest, PollJobResponse,
    RegisterRequest, ReportRecoveryRequest,
};
use tch::Device;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;
use tonic::{Code, Status};
use tracing::{Instrument, Span};

use cache::{ArtifactCache, FetchError};
use engine::{CheckpointSink, Engine, Inputs, JobError, JobState, Outcome, RecoverInputs, Stop};

use crate::exec::device_name;
use crate::recover::CHECKPOINT_FILE;

/// How long one poll waits for a job before asking again.
const POLL_WAIT: Duration = Duration::from_secs(30);
/// The first wait before retrying a call the coordinator did not answer; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The wait before the next poll after a job handed back for a local fault; it doubles with each local fault
/// in a row up to [`MAX_LOCAL_BACKOFF`].
const FIRST_LOCAL_BACKOFF: Duration = Duration::from_secs(2);
const MAX_LOCAL_BACKOFF: Duration = Duration::from_secs(60);
/// How often a worker hands the same job back for a local fault without spending an attempt; after that, the
/// job's attempts count (one a minute at most, given the backoff), so a job whose failure only looks local
/// (a device error it causes itself) still ends.
const MAX_HAND_BACKS: u32 = 5;
/// How long after the first interrupt a finished job's report (or upload) is still retried.
const REPORT_GRACE: Duration = Duration::from_secs(10);
/// How long after the second interrupt the worker waits for the hand-back before it leaves regardless.
const HAND_BACK_GRACE: Duration = Duration::from_secs(5);

/// How to join a coordinator.
pub struct Options {
    /// `http://host:port`, or `https://host:port` with `tls`.
    pub coordinator: String,
    pub token: String,
    pub tls: Option<Tls>,
    pub device: Device,
    pub cache_dir: PathBuf,
    /// How the worker appears in the coordinator's records.
    pub name: String,
    /// Whether cells reuse the activations upstream of their group (`--no-incremental` turns it off).
    pub incremental: bool,
    /// Jobs held leased beside the one computing (`--prefetch`).
    pub prefetch: usize,
}

/// Joins the coordinator and works until interrupted.
///
/// # Errors
/// A cache folder that cannot be created, a refused token, or a coordinator that refuses this worker for
/// good (anything but being away).
pub fn run(options: Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(join(options))
}

async fn join(options: Options) -> Result<()> {
    let cache = ArtifactCache::open(&options.cache_dir)?;
    let interrupts = Interrupts::listen()?;
    let mut backoff = Backoff::default();
    let channel = loop {
        let connecting = client::connect(&options.coordinator, options.tls.as_ref());
        let answer = tokio::select! {
            answer = connecting => answer,
            () = interrupts.reached(1) => return Ok(()),
        };
        match answer {
            Ok(channel) => break channel,
            Err(error @ client::ClientError::Endpoint { .. }) => return Err(error.into()),
            Err(error) => {
                if !backoff.wait("connecting", &error, &interrupts).await {
                    return Ok(());
                }
            }
        }
    };
    let (lost_leases, lost_lease) = mpsc::unbounded_channel();
    let mut worker = Worker {
        client: client::worker_client(channel, &options.token)?,
        cache: Arc::new(cache),
        engine: Some(Engine::new(options.device, options.incremental)),
        device: options.device,
        incremental: options.incremental,
        name: options.name,
        prefetch: options.prefetch,
        interrupts,
        worker_id: 0,
        heartbeat: Duration::from_secs(5),
        local_faults: 0,
        handed_back: HashMap::new(),
        local_backoff_until: None,
        prefetched: VecDeque::new(),
        computing: None,
        finished: None,
        polling: None,
        poll_backoff: Backoff::default(),
        poll_after: None,
        deliveries: JoinSet::new(),
        lost_leases,
        lost_lease,
        shutting_down: false,
    };
    if !worker.register().await? {
        return Ok(());
    }
    worker.work().await
}

struct Worker {
    client: WorkerClient,
    cache: Arc<ArtifactCache>,
    /// `None` only while a job evaluates on the blocking thread.
    engine: Option<Engine>,
    device: Device,
    incremental: bool,
    name: String,
    /// Jobs held leased beside the one computing, when nothing stands against it (see [`Worker::capacity`]).
    prefetch: usize,
    interrupts: Interrupts,
    worker_id: i64,
    heartbeat: Duration,
    /// Jobs that failed for a local fault in a row (see [`local_cause`]); 0 once a job ends otherwise.
    local_faults: u32,
    /// How often each job failed here for a local fault (see [`MAX_HAND_BACKS`]).
    handed_back: HashMap<i64, u32>,
    /// Until when the worker holds no job after a local fault.
    local_backoff_until: Option<Instant>,
    /// The jobs waiting their turn, oldest first.
    prefetched: VecDeque<Prefetched>,
    computing: Option<Computing>,
    /// The job whose evaluation just ended, until [`Worker::poll_or_deliver`] sends its report on its way.
    finished: Option<Finished>,
    /// The poll in flight, if any (one at a time).
    polling: Option<Polling>,
    poll_backoff: Backoff,
    /// When a poll the coordinator did not answer may be made again.
    poll_after: Option<Instant>,
    /// Reports on their way, each retried in a task of its own; an error is one no worker should go on after.
    deliveries: JoinSet<Result<()>>,
    /// Where heartbeats say a job's lease is lost, and where the worker hears it (to drop a prefetched job).
    lost_leases: mpsc::UnboundedSender<i64>,
    lost_lease: mpsc::UnboundedReceiver<i64>,
    /// Set at the first interrupt: no more polls, the prefetched jobs handed back, the current one finished.
    shutting_down: bool,
}

/// A job leased to this worker, from the poll that brought it until its report is delivered: its heartbeat
/// renews the lease as long as this lives.
struct Leased {
    job: Job,
    /// The job's span (see the module docs).
    span: Span,
    state: Arc<JobState>,
    _heartbeat: AbortOnDrop,
}

/// A job waiting its turn, its artifacts fetched meanwhile.
struct Prefetched {
    leased: Leased,
    inputs: JoinHandle<Result<Inputs, JobError>>,
}

/// The job the engine is on.
struct Computing {
    leased: Leased,
    /// The evaluation: the engine back (none when it panicked) and how the job went.
    task: JoinHandle<(Option<Engine>, Result<Outcome, JobError>)>,
}

/// A job whose evaluation ended, with its report.
struct Finished {
    leased: Leased,
    report: Report,
    /// An export's pruned model, uploaded before the report (whose digest it fills in).
    artifact: Option<PathBuf>,
}

/// A `PollJob` in flight, with the completion it carries.
struct Polling {
    /// The answer; none when given up at an interrupt (see [`Worker::start_poll`]).
    task: JoinHandle<Option<Result<PollJobResponse, Status>>>,
    carried: Option<Finished>,
}

/// A task aborted when this is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    /// Registers, retrying while the coordinator is away. False when interrupted first.
    async fn register(&mut self) -> Result<bool> {
        let mut backoff = Backoff::default();
        loop {
            let request = RegisterRequest {
                name: self.name.clone(),
                device: device_name(self.device),
            };
            match self.client.register(request).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    self.worker_id = answer.worker_id;
                    self.heartbeat = Duration::from_millis(u64::from(answer.heartbeat_interval_ms).max(100));
                    tracing::info!(
                        worker_id = self.worker_id,
                        name = %self.name,
                        device = %device_name(self.device),
                        heartbeat = ?self.heartbeat,
                        prefetch = self.prefetch,
                        "registered"
                    );
                    return Ok(true);
                }
                Err(status) if transient(&status) => {
                    if !backoff.wait("registering", &describe(&status), &self.interrupts).await {
                        return Ok(false);
                    }
                }
                Err(status) => bail!("registering: {}", describe(&status)),
            }
        }
    }

    /// Polls and runs jobs until the first interrupt, then finishes the current job, hands the prefetched ones
    /// back and leaves once every report is delivered (or given up).
    async fn work(&mut self) -> Result<()> {
        loop {
            self.hand_back_excess();
            self.start_next();
            self.poll_or_deliver();
            if self.shutting_down && self.computing.is_none() && self.polling.is_none() && self.deliveries.is_empty() {
                break;
            }
            let wake_at = self.poll_after.into_iter().chain(self.local_backoff_until).min();
            tokio::select! {
                joined = join_task(self.computing.as_mut().map(|c| &mut c.task)) => self.computed(joined),
                joined = join_task(self.polling.as_mut().map(|p| &mut p.task)) => self.polled(joined).await?,
                Some(delivered) = self.deliveries.join_next() => match delivered {
                    Ok(delivered) => delivered?,
                    Err(error) => tracing::error!(%error, "a report's task ended abnormally"),
                },
                Some(job_id) = self.lost_lease.recv() => self.drop_lost(job_id),
                () = sleep_until_set(wake_at) => {
                    let now = Instant::now();
                    self.poll_after = self.poll_after.filter(|at| *at > now);
                    self.local_backoff_until = self.local_backoff_until.filter(|at| *at > now);
                }
                () = self.interrupts.reached(1), if !self.shutting_down => self.shutting_down = true,
            }
        }
        tracing::info!(worker_id = self.worker_id, "interrupted: leaving");
        Ok(())
    }

    /// How many jobs the worker may hold now, the computing one included: none once interrupted or while it
    /// backs off after a local fault, one until a job goes through after that, else one and `--prefetch` more.
    fn capacity(&self) -> usize {
        if self.shutting_down || self.local_backoff_until.is_some() {
            0
        } else if self.local_faults > 0 {
            1
        } else {
            1 + self.prefetch
        }
    }

    /// Hands back, without spending an attempt, the prefetched jobs the worker may no longer hold (see
    /// [`Worker::capacity`]), so that another worker takes them now. The computing job is never one of them.
    fn hand_back_excess(&mut self) {
        let keep = self.capacity().saturating_sub(usize::from(self.computing.is_some()));
        if self.prefetched.len() <= keep {
            return;
        }
        let error = if self.shutting_down {
            "released: the worker was interrupted"
        } else {
            "released: the worker backs off after a fault of its own"
        };
        for Prefetched { leased, .. } in self.prefetched.split_off(keep) {
            // Ends its artifacts' retries, should the coordinator be away.
            leased.state.stop(Stop::Release);
            let report = Report::Fail(FailJobRequest {
                job_id: leased.job.job_id,
                lease_epoch: leased.job.lease_epoch,
                error: error.to_owned(),
                retryable: true,
                local: true,
            });
            self.deliver(Finished {
                leased,
                report,
                artifact: None,
            });
        }
    }

    /// Starts the next prefetched job on the engine when it is free.
    fn start_next(&mut self) {
        if self.computing.is_some() {
            return;
        }
        while let Some(Prefetched { leased, inputs }) = self.prefetched.pop_front() {
            if leased.state.stop_reason().is_some() {
                leased.span.in_scope(log_stopped);
                continue;
            }
            let engine = self
                .engine
                .take()
                .unwrap_or_else(|| Engine::new(self.device, self.incremental));
            leased.span.in_scope(|| tracing::info!("started"));
            let task = tokio::spawn(compute(engine, inputs, leased.state.clone()).instrument(leased.span.clone()));
            self.computing = Some(Computing { leased, task });
            return;
        }
    }

    /// Polls when the worker holds fewer jobs than it may. The job that just finished (if any) has its report
    /// sent on: a completion rides in that poll when it refills the prefetch queue, anything else goes by a
    /// call of its own. A poll that refills nothing (`--prefetch 0`, or after a local fault) waits for the
    /// reports on their way, as before pipelining: a poll must not overtake a completion, whose early stop
    /// may rule out the cell it would claim.
    fn poll_or_deliver(&mut self) {
        let held = self.prefetched.len() + usize::from(self.computing.is_some());
        let capacity = self.capacity();
        let refill = capacity > 1;
        let may_poll = self.polling.is_none() && self.poll_after.is_none() && held < capacity;
        let (carried, separate) = match self.finished.take() {
            Some(finished) if may_poll && refill && finished.carriable() => (Some(finished), None),
            other => (None, other),
        };
        if let Some(finished) = separate {
            self.deliver(finished);
        }
        if may_poll && (refill || self.deliveries.is_empty()) {
            self.start_poll(carried);
        }
    }

    /// Sends a `PollJob`, carrying `carried`'s completion if any. A poll waiting for a job is given up at the
    /// first interrupt (as before pipelining); one carrying a completion is a report, given up only when a
    /// report is.
    fn start_poll(&mut self, carried: Option<Finished>) {
        let complete = carried.as_ref().and_then(|finished| match &finished.report {
            Report::Complete(request) => Some(request.clone()),
            Report::Fail(_) => None,
        });
        let (wait, give_up) = match complete {
            // Its answer is the completion's, which should not wait for a queue that may stay empty: the next
            // poll waits.
            Some(_) => (Duration::ZERO, self.interrupts.nth(2)),
            None => (POLL_WAIT, self.interrupts.clone()),
        };
        let request = PollJobRequest {
            worker_id: self.worker_id,
            wait_ms: wait.as_millis() as u32,
            complete,
        };
        let mut client = self.client.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                answer = client.poll_job(request) => Some(answer.map(tonic::Response::into_inner)),
                () = give_up.given_up() => None,
            }
        });
        self.polling = Some(Polling { task, carried });
    }

    /// A poll's answer: the job it brings is held, the completion it carried logged as taken or refused.
    async fn polled(&mut self, joined: Result<Option<Result<PollJobResponse, Status>>, JoinError>) -> Result<()> {
        let Polling { carried, .. } = self.polling.take().expect("a poll was in flight");
        let answer = match joined {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                if let Some(finished) = carried {
                    finished.leased.span.in_scope(log_undelivered);
                }
                return Ok(());
            }
            Err(error) => {
                tracing::error!(%error, "a poll's task ended abnormally");
                if let Some(finished) = carried {
                    self.deliver(finished);
                }
                return Ok(());
            }
        };
        match (answer, carried) {
            (Ok(answer), carried) => {
                self.poll_backoff = Backoff::default();
                if let Some(finished) = carried {
                    finished.delivered();
                }
                if let Some(job) = answer.job {
                    self.hold(job);
                }
            }
            // The poll's error is its completion's: the claim was not made.
            (Err(status), Some(finished)) => {
                if forbidden(&status) {
                    bail!("reporting job {}: {}", finished.leased.job.job_id, describe(&status));
                }
                if transient(&status) {
                    // Delivered on its own, retried as any report; the poll waits out the backoff.
                    self.deliver(finished);
                    self.back_off_polling(&status);
                } else {
                    finished.refused(&status);
                }
            }
            // The coordinator's database no longer knows this worker (it was recreated): register anew.
            (Err(status), None) if status.code() == Code::NotFound => {
                tracing::warn!(
                    worker_id = self.worker_id,
                    error = %describe(&status),
                    "the coordinator does not know this worker; registering again"
                );
                self.register().await?;
            }
            (Err(status), None) if transient(&status) => self.back_off_polling(&status),
            (Err(status), None) => bail!("polling for a job: {}", describe(&status)),
        }
        Ok(())
    }

    fn back_off_polling(&mut self, status: &Status) {
        let delay = self.poll_backoff.delay("polling", &describe(status));
        self.poll_after = Some(Instant::now() + delay);
    }

    /// Takes a job the coordinator leased to this worker: its heartbeat starts now, and its artifacts are
    /// fetched while it waits its turn.
    fn hold(&mut self, job: Job) {
        let span = job_span(&job, self.worker_id);
        let state = Arc::new(JobState::default());
        let heartbeat = tokio::spawn(
            heartbeat(
                self.client.clone(),
                (job.job_id, job.lease_epoch),
                self.heartbeat,
                state.clone(),
                self.interrupts.clone(),
                self.lost_leases.clone(),
            )
            .instrument(span.clone()),
        );
        let inputs = tokio::spawn(
            fetch_inputs(
                self.client.clone(),
                self.cache.clone(),
                job.clone(),
                state.clone(),
                self.interrupts.nth(2),
            )
            .instrument(span.clone()),
        );
        span.in_scope(|| tracing::debug!(held = self.prefetched.len() + 1, "leased"));
        self.prefetched.push_back(Prefetched {
            leased: Leased {
                job,
                span,
                state,
                _heartbeat: AbortOnDrop(heartbeat),
            },
            inputs,
        });
    }

    /// Drops a prefetched job whose heartbeat found its lease lost.
    fn drop_lost(&mut self, job_id: i64) {
        let lost = self.prefetched.iter().position(|prefetched| {
            prefetched.leased.job.job_id == job_id && prefetched.leased.state.stop_reason() == Some(Stop::LeaseLost)
        });
        if let Some(at) = lost
            && let Some(prefetched) = self.prefetched.remove(at)
        {
            prefetched.leased.span.in_scope(log_stopped);
        }
    }

    /// Takes the engine back from an evaluation that ended and decides its job's report.
    fn computed(&mut self, joined: Result<(Option<Engine>, Result<Outcome, JobError>), JoinError>) {
        let Computing { leased, .. } = self.computing.take().expect("a job was computing");
        let outcome = match joined {
            Ok((engine, outcome)) => {
                self.engine = engine;
                outcome
            }
            Err(error) => Err(JobError::Runtime(anyhow!(
                "the evaluation's task ended abnormally: {error}"
            ))),
        };
        let span = leased.span.clone();
        let _entered = span.enter();
        let (job_id, lease_epoch) = (leased.job.job_id, leased.job.lease_epoch);
        let fail = |error: String, retryable: bool| {
            Report::Fail(FailJobRequest {
                job_id,
                lease_epoch,
                error,
                retryable,
                local: false,
            })
        };
        let mut artifact = None;
        let report = match outcome {
            Ok(outcome) => {
                artifact = outcome.artifact;
                Report::Complete(CompleteJobRequest {
                    job_id,
                    lease_epoch,
                    metrics: outcome.metrics.into_map().into_iter().collect(),
                    // An export's, once uploaded.
                    artifact_digest: String::new(),
                    seconds: outcome.seconds,
                    device: device_name(self.device),
                    report: outcome.report,
                    report_json: outcome.report_json,
                })
            }
            Err(JobError::Stopped) if leased.state.stop_reason() == Some(Stop::Release) => {
                fail("released: the worker was interrupted".into(), true)
            }
            Err(JobError::Stopped) => {
                log_stopped();
                return;
            }
            Err(JobError::Input(error) | JobError::Runtime(error)) if local_cause(&error).is_some() => {
                self.local_faults += 1;
                let handed_back = self.handed_back.entry(job_id).or_default();
                *handed_back += 1;
                let error = format!("worker {} ({}): {error:#}", self.worker_id, self.name);
                let report = if *handed_back <= MAX_HAND_BACKS {
                    tracing::warn!(
                        cause = local_cause_text(&error).unwrap_or("local"),
                        %error,
                        local_faults = self.local_faults,
                        "handing the job back: it failed for a reason of this worker's own"
                    );
                    Report::Fail(FailJobRequest {
                        job_id,
                        lease_epoch,
                        error,
                        retryable: true,
                        local: true,
                    })
                } else {
                    // Handed back that often, the cause may be the job's after all (a bundle larger than any
                    // disk): its attempts count from now on, so it ends rather than circling forever.
                    tracing::warn!(%error, handed_back = *handed_back, "failed again for a local reason; counting the attempt");
                    fail(error, true)
                };
                self.back_off_after_local_fault();
                report
            }
            Err(JobError::Input(error)) => fail(format!("{error:#}"), false),
            Err(JobError::Runtime(error)) => fail(format!("{error:#}"), true),
        };
        if !self.handed_back.contains_key(&job_id) {
            self.local_faults = 0;
        }
        self.finished = Some(Finished {
            leased,
            report,
            artifact,
        });
    }

    /// Holds no job for a while after a job handed back for a local fault, so that healthy workers take the
    /// queue meanwhile.
    fn back_off_after_local_fault(&mut self) {
        let exponent = self.local_faults.saturating_sub(1).min(16);
        let wait = (FIRST_LOCAL_BACKOFF * 2u32.pow(exponent)).min(MAX_LOCAL_BACKOFF);
        tracing::warn!(
            worker_id = self.worker_id,
            local_faults = self.local_faults,
            wait = ?wait,
            "waiting before the next job: this worker's last jobs failed for a reason of its own"
        );
        self.local_backoff_until = Some(Instant::now() + wait);
    }

    /// Sends a report on its way in a task of its own (see [`deliver`]).
    fn deliver(&mut self, finished: Finished) {
        let span = finished.leased.span.clone();
        self.deliveries
            .spawn(deliver(self.client.clone(), self.interrupts.nth(2), finished).instrument(span));
    }
}

/// The span of everything `job` does on this worker (see the module docs).
fn job_span(job: &Job, worker_id: i64) -> Span {
    let kind = job.kind();
    let span = tracing::info_span!(
        "job",
        run_id = job.run_id,
        job_id = job.job_id,
        epoch = job.lease_epoch,
        worker_id,
        kind = %kind,
        group = tracing::field::Empty,
        ratio = tracing::field::Empty,
    );
    if kind == JobKind::Cell {
        span.record("group", job.group_key.as_str());
        span.record("ratio", job.ratio);
    }
    span
}

/// Waits for `task`, forever when there is none (a `select!` branch with nothing to wait for).
async fn join_task<T>(task: Option<&mut JoinHandle<T>>) -> Result<T, JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, forever when there is none.
async fn sleep_until_set(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Evaluates a job on the blocking thread once its inputs are fetched. The engine comes back with the result,
/// unless the evaluation panicked and took it down.
async fn compute(
    mut engine: Engine,
    inputs: JoinHandle<Result<Inputs, JobError>>,
    state: Arc<JobState>,
) -> (Option<Engine>, Result<Outcome, JobError>) {
    let mut inputs = match inputs.await {
        Ok(Ok(inputs)) => inputs,
        Ok(Err(error)) => return (Some(engine), Err(error)),
        Err(error) => {
            let error = anyhow!("fetching the artifacts ended abnormally: {error}");
            return (Some(engine), Err(JobError::Runtime(error)));
        }
    };
    let evaluated = tokio::task::spawn_blocking(move || {
        let result = engine.run(&mut inputs, &state);
        (engine, result)
    })
    .await;
    match evaluated {
        Ok((engine, result)) => (Some(engine), result),
        // The engine went down with the panic; the next job loads a new one.
        Err(panic) => (
            None,
            Err(JobError::Runtime(anyhow!("the evaluation panicked: {panic}"))),
        ),
    }
}

/// The job's artifacts in the cache: its inputs.
async fn fetch_inputs(
    mut client: WorkerClient,
    cache: Arc<ArtifactCache>,
    job: Job,
    state: Arc<JobState>,
    give_up: Interrupts,
) -> Result<Inputs, JobError> {
    let model = fetch(
        &mut client,
        &cache,
        Artifact::Model,
        &job.model_digest,
        &state,
        &give_up,
    )
    .await?;
    let bundle = fetch(
        &mut client,
        &cache,
        Artifact::Bundle,
        &job.dataset_digest,
        &state,
        &give_up,
    )
    .await?;
    let recovery = match job.kind() {
        JobKind::Recover => Some(recover_inputs(&mut client, &cache, &job, &state, &give_up).await?),
        _ => None,
    };
    Ok(Inputs {
        job,
        model,
        bundle,
        recovery,
    })
}

/// A recover job's inputs beside the run's: the exported model, the training set, and its directory in the
/// cache, emptied and holding the last checkpoint the coordinator kept for the job, if any.
async fn recover_inputs(
    client: &mut WorkerClient,
    cache: &ArtifactCache,
    job: &Job,
    state: &JobState,
    give_up: &Interrupts,
) -> Result<RecoverInputs, JobError> {
    let student = fetch(client, cache, Artifact::Model, &job.student_digest, state, give_up).await?;
    let train_set = fetch(client, cache, Artifact::Bundle, &job.train_set_digest, state, give_up).await?;
    let out_dir = cache.recovery_dir(job.job_id);
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("creating {}", out_dir.display()))
        .map_err(JobError::Runtime)?;
    if !job.checkpoint_digest.is_empty() {
        let into = out_dir.join(CHECKPOINT_FILE);
        fetch(
            client,
            cache,
            Artifact::Checkpoint(into),
            &job.checkpoint_digest,
            state,
            give_up,
        )
        .await?;
        tracing::info!(checkpoint = %job.checkpoint_digest, "resuming from the job's last checkpoint");
    }
    Ok(RecoverInputs {
        student,
        train_set,
        out_dir,
        checkpoint_sink: checkpoint_sink(client.clone(), job, give_up.clone()),
    })
}

/// The [`CheckpointSink`] of `job`: on the engine's thread, uploads the checkpoint (retrying while the
/// coordinator is away), notes its digest and heartbeats it at once; a lost lease stops the job.
fn checkpoint_sink(client: WorkerClient, job: &Job, give_up: Interrupts) -> CheckpointSink {
    let runtime = tokio::runtime::Handle::current();
    let lease = (job.job_id, job.lease_epoch);
    Box::new(move |path, state| {
        let mut client = client.clone();
        runtime.block_on(async {
            let digest = match upload(&mut client, path, "application/octet-stream", &give_up).await {
                Ok(digest) => digest,
                Err(JobError::Stopped) => bail!("interrupted while uploading the checkpoint"),
                Err(JobError::Input(error) | JobError::Runtime(error)) => {
                    return Err(error.context("uploading the checkpoint"));
                }
            };
            state.checkpoint_shipped(digest.clone());
            let report = recovery_report(lease, state).expect("a checkpoint follows a step's progress");
            match client.report_recovery(report).await {
                Ok(answer) if !answer.get_ref().keep_going => state.stop(Stop::LeaseLost),
                Ok(_) => tracing::info!(%digest, "checkpoint shipped"),
                Err(status) => tracing::warn!(
                    error = %describe(&status),
                    "reporting the checkpoint failed; the next heartbeat names it"
                ),
            }
            Ok(())
        })
    })
}

/// One artifact in the cache, retrying while the coordinator is away and the job not stopped.
async fn fetch(
    client: &mut WorkerClient,
    cache: &ArtifactCache,
    artifact: Artifact,
    digest: &str,
    state: &JobState,
    give_up: &Interrupts,
) -> Result<PathBuf, JobError> {
    let mut backoff = Backoff::default();
    loop {
        let fetched = match &artifact {
            Artifact::Model => cache.model(client, digest).await,
            Artifact::Bundle => cache.bundle(client, digest).await,
            Artifact::Checkpoint(into) => cache.download_to(client, digest, into).await.map(|()| into.clone()),
        };
        match fetched {
            Ok(path) => return Ok(path),
            Err(FetchError::Input(message)) => return Err(JobError::Input(anyhow!(message))),
            Err(FetchError::Rpc { status, .. }) if transient(&status) => {
                let waited = backoff.wait("downloading", &describe(&status), give_up).await;
                if !waited || state.stop_reason().is_some() {
                    return Err(JobError::Stopped);
                }
            }
            Err(error) => return Err(JobError::Runtime(error.into())),
        }
    }
}

/// Uploads an export's pruned model, a recover job's checkpoint or recovered model (retrying while the
/// coordinator is away): its digest.
async fn upload(
    client: &mut WorkerClient,
    path: &Path,
    media_type: &str,
    give_up: &Interrupts,
) -> Result<String, JobError> {
    let mut backoff = Backoff::default();
    loop {
        match client::upload_artifact_file(client, path, media_type).await {
            Ok(digest) => {
                tracing::info!(path = %path.display(), %digest, "uploaded");
                return Ok(digest);
            }
            Err(client::ClientError::Rpc { status, .. }) if transient(&status) => {
                if !backoff.wait("uploading", &describe(&status), give_up).await {
                    return Err(JobError::Stopped);
                }
            }
            Err(error) => return Err(JobError::Runtime(error.into())),
        }
    }
}

/// Delivers a finished job's report, an export's pruned model uploaded first, retrying while the coordinator is
/// away (a repeated delivery for the same lease is a no-op there). A refusal (stale lease, cancelled run) is
/// logged: nothing is left to do. The job's heartbeat goes on until then, so that an upload or a report that
/// waits out a coordinator restart keeps its lease (the restarted coordinator's first sweep waits one lease).
///
/// # Errors
/// The coordinator refusing the worker's token.
async fn deliver(mut client: WorkerClient, give_up: Interrupts, mut finished: Finished) -> Result<()> {
    if let Some(path) = finished.artifact.take() {
        match upload(&mut client, &path, "application/onnx", &give_up).await {
            Ok(digest) => {
                if let Report::Complete(request) = &mut finished.report {
                    request.artifact_digest = digest;
                }
            }
            Err(JobError::Stopped) => {
                log_undelivered();
                return Ok(());
            }
            Err(JobError::Input(error) | JobError::Runtime(error)) => {
                finished.report = Report::Fail(FailJobRequest {
                    job_id: finished.leased.job.job_id,
                    lease_epoch: finished.leased.job.lease_epoch,
                    error: format!("{error:#}"),
                    retryable: true,
                    local: false,
                });
            }
        }
    }
    let mut backoff = Backoff::default();
    loop {
        let call = async {
            match &finished.report {
                Report::Complete(request) => client.complete_job(request.clone()).await.map(drop),
                Report::Fail(request) => client.fail_job(request.clone()).await.map(drop),
            }
        };
        // A coordinator that accepted the connection and stopped answering would hold the call forever.
        let answer = tokio::select! {
            answer = call => answer,
            () = give_up.given_up() => {
                log_undelivered();
                return Ok(());
            }
        };
        match answer {
            Ok(()) => {
                finished.delivered();
                return Ok(());
            }
            Err(status) if forbidden(&status) => {
                bail!("reporting job {}: {}", finished.leased.job.job_id, describe(&status))
            }
            Err(status) if transient(&status) => {
                // A second interrupt gives up: the lease expires and the job is run again elsewhere.
                if !backoff.wait("reporting", &describe(&status), &give_up).await {
                    log_undelivered();
                    return Ok(());
                }
            }
            Err(status) => {
                finished.refused(&status);
                return Ok(());
            }
        }
    }
}

impl Finished {
    /// Whether its report can ride in a poll: a completion with nothing to upload first.
    fn carriable(&self) -> bool {
        self.artifact.is_none() && matches!(self.report, Report::Complete(_))
    }

    /// Logs the report the coordinator took; the job's heartbeat ends here.
    fn delivered(self) {
        let _entered = self.leased.span.enter();
        match &self.report {
            Report::Complete(request) => tracing::info!(
                metrics = %serde_json::to_string(
                    &request.metrics.iter().collect::<std::collections::BTreeMap<_, _>>()
                )
                .unwrap_or_default(),
                "completed"
            ),
            Report::Fail(request) if request.local => tracing::warn!(error = %request.error, "handed back"),
            Report::Fail(request) => tracing::warn!(
                retryable = request.retryable,
                error = %request.error,
                "failed"
            ),
        }
    }

    /// Logs the report the coordinator refused for good (a stale lease, a cancelled run): nothing is left to do.
    fn refused(self, status: &Status) {
        self.leased
            .span
            .in_scope(|| tracing::warn!(error = %describe(status), "report refused"));
    }
}

fn log_stopped() {
    tracing::info!("stopped: the lease was lost or the run cancelled");
}

fn log_undelivered() {
    tracing::warn!("report not delivered: interrupted first");
}

enum Artifact {
    Model,
    Bundle,
    /// A recover job's checkpoint, placed at this path.
    Checkpoint(PathBuf),
}

/// Why `error` is this worker's fault rather than the job's, if it is: its disk (or cache) full or read-only, out
/// of memory, an I/O or device error. Such a job is handed back without spending an attempt, and never counted
/// as bad input. Looks at the I/O errors in the chain, then at the message, since the cache and libtorch pass
/// their causes on as text.
fn local_cause(error: &anyhow::Error) -> Option<&'static str> {
    local_io_cause(error).or_else(|| local_cause_text(&format!("{error:#}")))
}

/// [`local_cause`] from the I/O errors in `error`'s chain.
fn local_io_cause(error: &anyhow::Error) -> Option<&'static str> {
    for cause in error.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.raw_os_error() {
                Some(libc::ENOSPC | libc::EDQUOT) => return Some("disk full"),
                Some(libc::ENOMEM) => return Some("out of memory"),
                Some(libc::EIO | libc::EROFS) => return Some("disk error"),
                _ => {}
            }
        }
    }
    None
}

/// [`local_cause`] from an error's message.
fn local_cause_text(message: &str) -> Option<&'static str> {
    let message = message.to_lowercase();
    const CAUSES: [(&str, &str); 8] = [
        ("no space left on device", "disk full"),
        ("disk quota exceeded", "disk full"),
        ("cannot allocate memory", "out of memory"),
        ("out of memory", "out of memory"),
        ("input/output error", "disk error"),
        ("read-only file system", "disk error"),
        ("cuda error", "device error"),
        ("cudnn_status", "device error"),
    ];
    CAUSES
        .iter()
        .find(|(text, _)| message.contains(text))
        .map(|(_, cause)| *cause)
}

enum Report {
    Complete(CompleteJobRequest),
    Fail(FailJobRequest),
}

/// Heartbeats `lease` every `interval` with the job's progress until aborted. Stops the job when the
/// coordinator says so (and says so on `lost`, where the worker drops a job still waiting its turn) or on a
/// second interrupt; a heartbeat the coordinator does not answer is only logged, as the lease may well outlast
/// a short outage.
async fn heartbeat(
    mut client: WorkerClient,
    (job_id, lease_epoch): (i64, i64),
    interval: Duration,
    state: Arc<JobState>,
    interrupts: Interrupts,
    lost: mpsc::UnboundedSender<i64>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = interrupts.reached(2) => {
                state.stop(Stop::Release);
                return;
            }
        }
        let (done, total) = state.progress();
        let request = HeartbeatRequest {
            job_id,
            lease_epoch,
            done,
            total,
        };
        let answer = match recovery_report((job_id, lease_epoch), &state) {
            // A recover job's progress goes with each heartbeat; a lost lease stops it as a heartbeat would.
            Some(report) => match client.heartbeat(request).await {
                Ok(answer) if answer.get_ref().keep_going => client.report_recovery(report).await,
                other => other,
            },
            None => client.heartbeat(request).await,
        };
        match answer {
            Ok(answer) if !answer.get_ref().keep_going => {
                state.stop(Stop::LeaseLost);
                // The worker is gone only when it is leaving: nobody is left to drop the job.
                let _ = lost.send(job_id);
                return;
            }
            Ok(_) => {}
            Err(status) => tracing::warn!(error = %describe(&status), "heartbeat failed"),
        }
    }
}

/// A recover job's progress and last shipped checkpoint, as `ReportRecovery` sends them;
/// `None` for other jobs and before a recover job's first step.
fn recovery_report((job_id, lease_epoch): (i64, i64), state: &JobState) -> Option<ReportRecoveryRequest> {
    let (progress, checkpoint_digest) = state.recovery()?;
    Some(ReportRecoveryRequest {
        job_id,
        lease_epoch,
        checkpoint_digest,
        progress: Some(progress),
    })
}

/// Whether a status means the coordinator (or its database) is away for now, so the call is worth repeating.
fn transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::ResourceExhausted
    )
}

/// Whether a status refuses the worker's token: nothing it sends will be taken.
fn forbidden(status: &Status) -> bool {
    matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied)
}

fn describe(status: &Status) -> String {
    format!("{}: {}", status.code(), status.message())
}

/// The default worker name: the host name and the process id.
pub fn default_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is what is passed.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let host = match std::str::from_utf8(&buf[..end]) {
        Ok(host) if ok && !host.is_empty() => host.to_owned(),
        _ => "worker".to_owned(),
    };
    format!("{host}-{}", std::process::id())
}

/// Exponential backoff between retries of a call the coordinator did not answer.
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_BACKOFF }
    }
}

impl Backoff {
    /// Logs why, then sleeps the next delay. False when `interrupts` fire first.
    async fn wait(&mut self, what: &str, why: &(dyn std::fmt::Display + Sync), interrupts: &Interrupts) -> bool {
        let delay = self.delay(what, why);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = interrupts.given_up() => false,
        }
    }

    /// Logs why, then answers the next delay.
    fn delay(&mut self, what: &str, why: &dyn std::fmt::Display) -> Duration {
        tracing::warn!(error = %why, retry_in = ?self.next, "{what} failed; retrying");
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        delay
    }
}

/// Counts Ctrl-C and SIGTERM. `threshold` is the count [`Backoff::wait`] gives up at (see
/// [`Interrupts::given_up`]).
#[derive(Clone)]
struct Interrupts {
    count: watch::Receiver<u32>,
    threshold: u32,
    /// When the first interrupt came.
    first_at: Arc<std::sync::OnceLock<Instant>>,
}

impl Interrupts {
    fn listen() -> Result<Interrupts> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let (tx, count) = watch::channel(0);
        let first_at = Arc::new(std::sync::OnceLock::new());
        let first = Arc::clone(&first_at);
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    _ = interrupt.recv() => libc::SIGINT,
                    _ = terminate.recv() => libc::SIGTERM,
                };
                tx.send_modify(|n| *n += 1);
                let count = *tx.borrow();
                if count == 1 {
                    let _ = first.set(Instant::now());
                    tracing::info!("interrupted: finishing the current job (interrupt again to hand it back now)");
                } else if count == 2 {
                    tracing::warn!(within = ?HAND_BACK_GRACE, "interrupted again: handing the current job back");
                    tokio::spawn(async move {
                        tokio::time::sleep(HAND_BACK_GRACE).await;
                        tracing::warn!("the hand-back did not finish in time: leaving; the lease will expire");
                        sensgrid_client::process::end_by_signal(signal);
                    });
                }
            }
        });
        Ok(Interrupts {
            count,
            threshold: 1,
            first_at,
        })
    }

    /// The same interrupts, with backoff giving up only at the `n`th (or [`REPORT_GRACE`] after the first).
    fn nth(&self, n: u32) -> Interrupts {
        Interrupts {
            count: self.count.clone(),
            threshold: n,
            first_at: Arc::clone(&self.first_at),
        }
    }

    /// Returns at the `threshold`th interrupt; with a threshold over 1, also [`REPORT_GRACE`] after the first,
    /// so that no wait the first interrupt lets go on outlasts it by more.
    async fn given_up(&self) {
        if self.threshold <= 1 {
            return self.reached(self.threshold).await;
        }
        let grace = async {
            self.reached(1).await;
            let first = self.first_at.get().copied().unwrap_or_else(Instant::now);
            tokio::time::sleep_until(first + REPORT_GRACE).await;
        };
        tokio::select! {
            () = self.reached(self.threshold) => {}
            () = grace => {}
        }
    }

    /// Returns once `n` interrupts have arrived.
    async fn reached(&self, n: u32) {
        let mut count = self.count.clone();
        if count.wait_for(|c| *c >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_no_memory_or_a_device_error_is_the_workers_fault_and_bad_input_is_not() {
        let full = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOSPC)).context("cache/models");
        assert_eq!(local_cause(&full), Some("disk full"));
        // The cache passes its causes on as text.
        let unpacked =
            anyhow!("artifact ab12: cache/downloads/x.d/images/1.png: No space left on device (os error 28)");
        assert_eq!(local_cause(&unpacked), Some("disk full"));
        assert_eq!(
            local_cause(&anyhow!("CUDA out of memory. Tried to allocate 2.00 GiB")),
            Some("out of memory")
        );
        assert_eq!(
            local_cause(&anyhow!("CUDA error: an illegal memory access")),
            Some("device error")
        );
        for input in [
            "eval bundle: not a tar archive (unexpected EOF)",
            "node 'p2o.LSTM.0' (LSTM): unsupported op",
            "artifact ab12: the coordinator has no such artifact",
        ] {
            assert_eq!(local_cause(&anyhow!(input)), None, "{input}");
        }
    }
}
