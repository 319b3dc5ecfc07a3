//! `worker join`: a worker of a coordinator. It registers, long-polls for jobs, downloads and caches their
//! artifacts, evaluates baselines and cells with the engine (and runs the export: prune, score, time, upload
//! the pruned model), heartbeats with progress while it does, and reports the metric dict, until it is
//! interrupted.
//!
//! Faults it rides out:
//! - **The coordinator is away** (restarting, unreachable, its database restarting): every call is retried
//!   with exponential backoff (0.2 s doubling to 10 s) on `UNAVAILABLE`-like statuses. A job's evaluation goes
//!   on meanwhile, and its completion is retried until it is answered: a completion repeated for the same
//!   lease is a no-op on the coordinator, so a reply lost in the outage costs nothing. The job's heartbeat
//!   goes on until then too, so the restarted coordinator sees the lease renewed within a heartbeat, before
//!   its first sweep.
//! - **The lease is lost** (the run cancelled, or the job expired and went to another worker): the heartbeat
//!   answers `keep_going = false` and the evaluation stops after its batch; nothing is reported.
//! - **A local fault** (its disk or cache full, out of memory, a device error; see [`local_cause`]): the job is
//!   not at fault, so it is handed back (`FailJob` with `local`) without spending an attempt and another worker
//!   takes it at once, while this one waits before its next poll, longer after each local fault in a row (2 s
//!   doubling to [`MAX_LOCAL_BACKOFF`]), until a job goes through: a worker whose disk is full does not burn a
//!   run's attempts, and picks up again by itself once space is freed. A job it has handed back
//!   [`MAX_HAND_BACKS`] times spends its attempts again, so one whose failure only looks local still ends.
//! - **Interrupts** (Ctrl-C, SIGTERM): the first one finishes and reports the current job, then leaves; a
//!   second one stops it and hands it back (`FailJob`, retryable) so another worker takes it now rather than
//!   after the lease. Both are bounded in time, as `docker stop` and Kubernetes expect of a process they
//!   signal: a report or upload still undelivered [`REPORT_GRACE`] after the first interrupt is given up, and
//!   [`HAND_BACK_GRACE`] after the second the worker leaves by that signal whatever it waits on (a coordinator
//!   that stopped answering mid-call). The lease then expires and the job runs elsewhere.
//!
//! It logs through `tracing` (the binary's `--log-format` and `--log-level`). Everything a job does happens in a
//! `job` span carrying `run_id`, `job_id`, `epoch`, `worker_id`, `kind`, and for cells `group` and `ratio`, so
//! its events need no ids of their own: `started`, then `completed` (with `metrics`, once the coordinator has
//! taken the completion; the fault tests count them), `failed`, `stopped`, or a report refused or not delivered.

mod cache;
mod engine;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sensgrid_client::{self as client, Tls, WorkerClient};
use sensgrid_proto::v1::{
    CompleteJobRequest, FailJobRequest, HeartbeatRequest, Job, JobKind, PollJobRequest, RegisterRequest,
};
use tch::Device;
use tokio::sync::watch;
use tonic::{Code, Status};
use tracing::Instrument;

use cache::{ArtifactCache, FetchError};
use engine::{Engine, Inputs, JobError, JobState, Outcome, Stop};

use crate::exec::device_name;

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
    let mut worker = Worker {
        client: client::worker_client(channel, &options.token)?,
        cache,
        engine: Some(Engine::new(options.device, options.incremental)),
        device: options.device,
        incremental: options.incremental,
        name: options.name,
        interrupts,
        worker_id: 0,
        heartbeat: Duration::from_secs(5),
        local_faults: 0,
        handed_back: std::collections::HashMap::new(),
    };
    if !worker.register().await? {
        return Ok(());
    }
    worker.work().await
}

struct Worker {
    client: WorkerClient,
    cache: ArtifactCache,
    /// `None` only while a job evaluates on the blocking thread.
    engine: Option<Engine>,
    device: Device,
    incremental: bool,
    name: String,
    interrupts: Interrupts,
    worker_id: i64,
    heartbeat: Duration,
    /// Jobs that failed for a local fault in a row (see [`local_cause`]); 0 once a job ends otherwise.
    local_faults: u32,
    /// How often each job failed here for a local fault (see [`MAX_HAND_BACKS`]).
    handed_back: std::collections::HashMap<i64, u32>,
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

    /// Polls and runs jobs until the first interrupt.
    async fn work(&mut self) -> Result<()> {
        let mut backoff = Backoff::default();
        while self.interrupts.count() == 0 {
            let request = PollJobRequest {
                worker_id: self.worker_id,
                wait_ms: POLL_WAIT.as_millis() as u32,
                complete: None,
            };
            let answer = tokio::select! {
                answer = self.client.poll_job(request) => answer,
                () = self.interrupts.reached(1) => break,
            };
            match answer {
                Ok(answer) => {
                    backoff = Backoff::default();
                    if let Some(job) = answer.into_inner().job {
                        self.run_job(job).await?;
                        if self.local_faults > 0 && !self.wait_after_local_fault().await {
                            break;
                        }
                    }
                }
                // The coordinator's database no longer knows this worker (it was recreated): register anew.
                Err(status) if status.code() == Code::NotFound => {
                    tracing::warn!(
                        worker_id = self.worker_id,
                        error = %describe(&status),
                        "the coordinator does not know this worker; registering again"
                    );
                    if !self.register().await? {
                        break;
                    }
                }
                Err(status) if transient(&status) => {
                    if !backoff.wait("polling", &describe(&status), &self.interrupts).await {
                        break;
                    }
                }
                Err(status) => bail!("polling for a job: {}", describe(&status)),
            }
        }
        tracing::info!(worker_id = self.worker_id, "interrupted: leaving");
        Ok(())
    }

    /// Sleeps before the next poll after a job handed back for a local fault, so that healthy workers take the
    /// queue meanwhile. False when interrupted first.
    async fn wait_after_local_fault(&self) -> bool {
        let exponent = self.local_faults.saturating_sub(1).min(16);
        let wait = (FIRST_LOCAL_BACKOFF * 2u32.pow(exponent)).min(MAX_LOCAL_BACKOFF);
        tracing::warn!(
            worker_id = self.worker_id,
            local_faults = self.local_faults,
            wait = ?wait,
            "waiting before the next job: this worker's last jobs failed for a reason of its own"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.interrupts.reached(1) => false,
        }
    }

    /// Runs one job in its span (see the module's docs).
    async fn run_job(&mut self, job: Job) -> Result<()> {
        let kind = job.kind();
        let span = tracing::info_span!(
            "job",
            run_id = job.run_id,
            job_id = job.job_id,
            epoch = job.lease_epoch,
            worker_id = self.worker_id,
            kind = %kind,
            group = tracing::field::Empty,
            ratio = tracing::field::Empty,
        );
        if kind == JobKind::Cell {
            span.record("group", job.group_key.as_str());
            span.record("ratio", job.ratio);
        }
        self.run_job_in_span(job).instrument(span).await
    }

    /// Runs one job with a heartbeat beside it, then reports how it ended. The heartbeat goes on until the
    /// report is delivered: an upload or a report that waits out a coordinator restart keeps its lease, so
    /// the restarted coordinator (whose first sweep waits one lease) accepts it.
    async fn run_job_in_span(&mut self, job: Job) -> Result<()> {
        tracing::info!("started");
        let state = Arc::new(JobState::default());
        let heartbeat = tokio::spawn(
            heartbeat(
                self.client.clone(),
                (job.job_id, job.lease_epoch),
                self.heartbeat,
                state.clone(),
                self.interrupts.clone(),
            )
            .in_current_span(),
        );
        let outcome = self.execute(&job, &state).await;
        let (job_id, lease_epoch) = (job.job_id, job.lease_epoch);
        let fail = |error: String, retryable: bool| {
            Report::Fail(FailJobRequest {
                job_id,
                lease_epoch,
                error,
                retryable,
                local: false,
            })
        };
        let outcome = match outcome {
            Ok(outcome) => self.upload_artifact(outcome).await,
            Err(error) => Err(error),
        };
        let report = match outcome {
            Ok((outcome, artifact_digest)) => Report::Complete(CompleteJobRequest {
                job_id,
                lease_epoch,
                metrics: outcome.metrics.into_map().into_iter().collect(),
                artifact_digest,
                seconds: outcome.seconds,
                device: device_name(self.device),
                report: outcome.report,
            }),
            Err(JobError::Stopped) if state.stop_reason() == Some(Stop::Release) => {
                fail("released: the worker was interrupted".into(), true)
            }
            Err(JobError::Stopped) => {
                heartbeat.abort();
                tracing::info!("stopped: the lease was lost or the run cancelled");
                return Ok(());
            }
            Err(JobError::Input(error) | JobError::Runtime(error)) if local_cause(&error).is_some() => {
                self.local_faults += 1;
                let handed_back = self.handed_back.entry(job_id).or_default();
                *handed_back += 1;
                let error = format!("worker {} ({}): {error:#}", self.worker_id, self.name);
                if *handed_back <= MAX_HAND_BACKS {
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
                }
            }
            Err(JobError::Input(error)) => fail(format!("{error:#}"), false),
            Err(JobError::Runtime(error)) => fail(format!("{error:#}"), true),
        };
        if !self.handed_back.contains_key(&job_id) {
            self.local_faults = 0;
        }
        let reported = self.report(report).await;
        heartbeat.abort();
        reported
    }

    /// Uploads an export's pruned model (retrying while the coordinator is away) and answers its digest; other
    /// jobs have none.
    async fn upload_artifact(&mut self, outcome: Outcome) -> Result<(Outcome, String), JobError> {
        let Some(path) = &outcome.artifact else {
            return Ok((outcome, String::new()));
        };
        let mut backoff = Backoff::default();
        loop {
            match client::upload_artifact_file(&mut self.client, path, "application/onnx").await {
                Ok(digest) => {
                    tracing::info!(path = %path.display(), %digest, "uploaded the pruned model");
                    return Ok((outcome, digest));
                }
                Err(client::ClientError::Rpc { status, .. }) if transient(&status) => {
                    if !backoff
                        .wait("uploading", &describe(&status), &self.interrupts.nth(2))
                        .await
                    {
                        return Err(JobError::Stopped);
                    }
                }
                Err(error) => return Err(JobError::Runtime(error.into())),
            }
        }
    }

    /// Fetches the job's artifacts and evaluates it on the blocking thread.
    async fn execute(&mut self, job: &Job, state: &Arc<JobState>) -> Result<Outcome, JobError> {
        let model = self.fetch(Artifact::Model, &job.model_digest, state).await?;
        let bundle = self.fetch(Artifact::Bundle, &job.dataset_digest, state).await?;
        let mut engine = self
            .engine
            .take()
            .unwrap_or_else(|| Engine::new(self.device, self.incremental));
        let inputs = Inputs {
            job: job.clone(),
            model,
            bundle,
        };
        let state = state.clone();
        let evaluated = tokio::task::spawn_blocking(move || {
            let result = engine.run(&inputs, &state);
            (engine, result)
        })
        .await;
        match evaluated {
            Ok((engine, result)) => {
                self.engine = Some(engine);
                result
            }
            // The engine went down with the panic; the next job loads a new one.
            Err(panic) => Err(JobError::Runtime(anyhow!("the evaluation panicked: {panic}"))),
        }
    }

    /// One artifact in the cache, retrying while the coordinator is away and the job not stopped.
    async fn fetch(&mut self, artifact: Artifact, digest: &str, state: &JobState) -> Result<PathBuf, JobError> {
        let mut backoff = Backoff::default();
        loop {
            let fetched = match artifact {
                Artifact::Model => self.cache.model(&mut self.client, digest).await,
                Artifact::Bundle => self.cache.bundle(&mut self.client, digest).await,
            };
            match fetched {
                Ok(path) => return Ok(path),
                Err(FetchError::Input(message)) => return Err(JobError::Input(anyhow!(message))),
                Err(FetchError::Rpc { status, .. }) if transient(&status) => {
                    let waited = backoff
                        .wait("downloading", &describe(&status), &self.interrupts.nth(2))
                        .await;
                    if !waited || state.stop_reason().is_some() {
                        return Err(JobError::Stopped);
                    }
                }
                Err(error) => return Err(JobError::Runtime(error.into())),
            }
        }
    }

    /// Delivers a completion or failure, retrying while the coordinator is away (a repeated delivery for the
    /// same lease is a no-op there). A refusal (stale lease, cancelled run) is logged: nothing is left to do.
    async fn report(&mut self, report: Report) -> Result<()> {
        let job_id = report.job_id();
        let mut backoff = Backoff::default();
        let give_up = self.interrupts.nth(2);
        loop {
            let call = async {
                match &report {
                    Report::Complete(request) => self.client.complete_job(request.clone()).await.map(drop),
                    Report::Fail(request) => self.client.fail_job(request.clone()).await.map(drop),
                }
            };
            // A coordinator that accepted the connection and stopped answering would hold the call forever.
            let answer = tokio::select! {
                answer = call => answer,
                () = give_up.given_up() => {
                    tracing::warn!("report not delivered: interrupted first");
                    return Ok(());
                }
            };
            match answer {
                Ok(()) => {
                    match &report {
                        Report::Complete(request) => tracing::info!(
                            metrics = %serde_json::to_string(
                                &request.metrics.iter().collect::<std::collections::BTreeMap<_, _>>()
                            )
                            .unwrap_or_default(),
                            "completed"
                        ),
                        Report::Fail(request) if request.local => tracing::warn!(
                            error = %request.error,
                            "handed back"
                        ),
                        Report::Fail(request) => tracing::warn!(
                            retryable = request.retryable,
                            error = %request.error,
                            "failed"
                        ),
                    }
                    return Ok(());
                }
                Err(status) if matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied) => {
                    bail!("reporting job {job_id}: {}", describe(&status))
                }
                Err(status) if transient(&status) => {
                    // A second interrupt gives up: the lease expires and the job is run again elsewhere.
                    if !backoff.wait("reporting", &describe(&status), &give_up).await {
                        tracing::warn!("report not delivered: interrupted first");
                        return Ok(());
                    }
                }
                Err(status) => {
                    tracing::warn!(error = %describe(&status), "report refused");
                    return Ok(());
                }
            }
        }
    }
}

enum Artifact {
    Model,
    Bundle,
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

impl Report {
    fn job_id(&self) -> i64 {
        match self {
            Report::Complete(r) => r.job_id,
            Report::Fail(r) => r.job_id,
        }
    }
}

/// Heartbeats `lease` every `interval` with the job's progress until aborted. Stops the job when the
/// coordinator says so or on a second interrupt; a heartbeat the coordinator does not answer is only
/// logged, as the lease may well outlast a short outage.
async fn heartbeat(
    mut client: WorkerClient,
    (job_id, lease_epoch): (i64, i64),
    interval: Duration,
    state: Arc<JobState>,
    interrupts: Interrupts,
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
        match client.heartbeat(request).await {
            Ok(answer) if !answer.get_ref().keep_going => {
                state.stop(Stop::LeaseLost);
                return;
            }
            Ok(_) => {}
            Err(status) => tracing::warn!(error = %describe(&status), "heartbeat failed"),
        }
    }
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
    async fn wait(&mut self, what: &str, why: &dyn std::fmt::Display, interrupts: &Interrupts) -> bool {
        tracing::warn!(error = %why, retry_in = ?self.next, "{what} failed; retrying");
        let slept = tokio::select! {
            () = tokio::time::sleep(self.next) => true,
            () = interrupts.given_up() => false,
        };
        self.next = (self.next * 2).min(MAX_BACKOFF);
        slept
    }
}

/// Counts Ctrl-C and SIGTERM. `threshold` is the count [`Backoff::wait`] gives up at (see
/// [`Interrupts::given_up`]).
#[derive(Clone)]
struct Interrupts {
    count: watch::Receiver<u32>,
    threshold: u32,
    /// When the first interrupt came.
    first_at: Arc<std::sync::OnceLock<tokio::time::Instant>>,
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
                    let _ = first.set(tokio::time::Instant::now());
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

    fn count(&self) -> u32 {
        *self.count.borrow()
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
            let first = self.first_at.get().copied().unwrap_or_else(tokio::time::Instant::now);
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
