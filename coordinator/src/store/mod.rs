//! The job store: every database operation of the coordinator, behind the [`JobStore`] trait.
//!
//! The trait lists Noun+Verb operations on the four tables (`artifact`, `job`, `run`, `worker`), alphabetically,
//! each taking a params struct and answering a typed outcome. Services and RPC handlers depend on the trait,
//! never on a database library. [`pg::PgStore`] is the Postgres implementation (its queries live in
//! `store/queries/<table>.sql`), [`sqlite::SqliteStore`] the embedded one of a local run (in
//! `store/queries_sqlite/`); they are the only places with SQL, and both pass the same conformance suite
//! (`coordinator/tests/it/store.rs`).
//!
//! # Time
//!
//! No implementation reads a clock. Every operation that needs the time takes it as `now` (from a
//! [`Clock`](crate::clock::Clock)), so tests move time with a `ManualClock`.
//!
//! # Leases
//!
//! Claiming a job leases it to a worker: it bumps the job's `lease_epoch` and counts an attempt. Heartbeat,
//! complete and fail name the lease as ([`JobId`], epoch) and only act while the job is still `leased` under
//! that epoch; a call from a superseded attempt changes nothing. No transaction stays open while a worker
//! computes: every change an operation makes is atomic, one statement (a run with all its jobs included) in its
//! own implicit transaction on Postgres, one write transaction on SQLite.
//!
//! # Decisions
//!
//! - **Exactly once.** A job accepts one completion. Repeating the accepted (job, epoch) answers
//!   [`CompleteOutcome::AlreadyAccepted`] and changes nothing (the first result stays), so a worker that lost the
//!   reply can simply retry; any other epoch is [`CompleteOutcome::Stale`].
//! - **Cancel.** [`JobStore::run_cancel`] moves the run's queued *and* leased jobs to `cancelled` at once (done
//!   jobs keep their results). The lease epoch stays on the row, so the leased job's worker hears
//!   [`HeartbeatOutcome::Cancelled`] at its next heartbeat and stops, and a completion that arrives anyway is
//!   rejected with [`CompleteOutcome::Cancelled`]: its result is dropped, as Temporal drops the result of a
//!   cancelled activity. Cancelling is final; a cancelled run is never resumed, so the result has no use.
//! - **Retries.** A failed (retryable) or expired attempt goes back to `queued` with
//!   `available_at = now + backoff`, see [`Backoff`]; the attempt numbered `max_attempts` of the run fails the
//!   job instead, keeping its `last_error`. An expired lease records
//!   `lease expired (worker W, attempt A, epoch E)` as its error.
//! - **Hand-back and retry.** A worker that fails for a reason of its own (a full disk) gives the lease back
//!   with [`JobStore::job_release`]: queued at once, the claim's attempt taken back. A job failed for good stays
//!   failed until [`JobStore::run_retry`] queues it again with fresh attempts, reopening its run if it had
//!   ended done; a failed or cancelled run is never reopened.
//! - **Expiry is the rescuer's call.** A heartbeat or completion under the current epoch is accepted even past
//!   the deadline as long as [`JobStore::job_rescue_expired`] has not taken the job back: nobody else can hold
//!   it, since any new claim bumps the epoch.
//! - **Dispatch order.** Runs oldest first; inside a run the baseline, then cells by (group key, ratio), then
//!   the export. The export is only handed out once every other job of its run is `done` or `skipped` (a check
//!   in the claim query, no extra state). A group's ratios thus run in ascending order, which is what lets an
//!   early stop ([`JobStore::job_skip`]) save the larger ones.
//! - **Affinity.** A claim may say, per worker, the run and group of the job it held last
//!   ([`ClaimAffinity`]): that worker gets the next cell of the same group first, else the next job of the same
//!   run, else the next in dispatch order, so a worker keeps the model (and the group's cached work) it has
//!   loaded. See [`JobClaimParams`] for the exact rule, which both stores follow.
//! - **Early stop.** [`JobStore::job_skip`] skips a group's queued cells above a ratio with the reason as their
//!   `last_error`; leased and done cells are left as they are (a done cell keeps its real result).

pub mod pg;
mod query_files;
/// The store on an embedded SQLite file: writes serialised, the same guarantees.
pub mod sqlite;
mod stored;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

/// Every [`JobStore`] operation answers this.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a [`JobStore`] operation can fail with. Outcomes that callers handle in normal operation (a stale
/// lease, a cancelled run) are not errors: they are the operations' outcome enums.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused the statement (connection lost, constraint broken).
    #[error("{op}: {source}")]
    Backend {
        /// The store operation, e.g. `job_claim`.
        op: &'static str,
        /// The database library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A parameter breaks a rule of the schema; names the field.
    #[error("{op}: {field}: {reason}")]
    InvalidInput {
        /// The store operation.
        op: &'static str,
        /// The parameter, e.g. `cells[3].ratio`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A run or a recover job's report names an artifact that is not stored.
    #[error("{op}: {field}: artifact {digest} is not stored")]
    ArtifactNotFound {
        /// The store operation.
        op: &'static str,
        /// The parameter that names it (`model_digest`, `dataset_digest`, `checkpoint_digest`).
        field: &'static str,
        /// The missing digest.
        digest: String,
    },
    /// An artifact is stored already, with another size or media type.
    #[error(
        "artifact {digest} is stored with {stored_size} bytes of {stored_media_type}, not {size} bytes of {media_type}"
    )]
    ArtifactConflict {
        /// The digest.
        digest: String,
        /// What is stored.
        stored_size: u64,
        /// What is stored.
        stored_media_type: String,
        /// What the call said.
        size: u64,
        /// What the call said.
        media_type: String,
    },
    /// A claim names a worker that is not registered.
    #[error("{op}: worker {worker} is not registered")]
    WorkerNotFound {
        /// The store operation.
        op: &'static str,
        /// The first unknown worker.
        worker: WorkerId,
    },
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A job's id (`job.id`).
    JobId
);
id_type!(
    /// A run's id (`run.id`).
    RunId
);
id_type!(
    /// A registered worker's id (`worker.id`).
    WorkerId
);

/// What a job computes, where a job is, where a run is: the contract's enums (their names and which job states
/// are final are defined once, in [`sensgrid_proto::names`]). The columns hold their names: Postgres enum types
/// `job_kind`, `job_state` and `run_state`, SQLite text (see [`stored`]). The operations below say which move a
/// job or run into and out of each state.
pub use sensgrid_proto::v1::{JobKind, JobState, RunState};

/// A stored artifact's metadata (the bytes live outside the database).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Lowercase hex sha256 of the bytes.
    pub digest: String,
    pub size_bytes: u64,
    /// E.g. `application/onnx`.
    pub media_type: String,
    pub created_at: OffsetDateTime,
}

/// A run: one sensitivity analysis of one model on one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub state: RunState,
    /// The PaddleOCR-style YAML config, overrides applied.
    pub config_yaml: String,
    pub model_digest: String,
    pub dataset_digest: String,
    /// The pruning criterion (`l1_norm`, `l1_norm_group`, `fpgm`).
    pub criterion: String,
    /// Attempts each job gets.
    pub max_attempts: u32,
    pub created_at: OffsetDateTime,
    /// Set when the run reaches a final state.
    pub finished_at: Option<OffsetDateTime>,
    /// What the submitting client described: name, metric, ratios, groups, the Prune target (see
    /// [`crate::spec::RunSpec`]).
    pub spec: Value,
    /// Why the run failed.
    pub error: Option<String>,
    /// The per-group ratios the planner chose, `{"<group key>": ratio}`.
    pub plan: Option<Value>,
}

/// A run with how many of its jobs are in each state.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub run: Run,
    pub jobs: JobCounts,
}

/// Jobs by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: u64,
    pub leased: u64,
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub skipped: u64,
}

impl JobCounts {
    /// Every job counted.
    pub fn total(&self) -> u64 {
        self.by_state().iter().map(|&(_, n)| n).sum()
    }

    /// Each state with its count, every state listed, in [`JobState::ALL`]'s order.
    pub fn by_state(&self) -> [(JobState, u64); 6] {
        [
            (JobState::Queued, self.queued),
            (JobState::Leased, self.leased),
            (JobState::Done, self.done),
            (JobState::Failed, self.failed),
            (JobState::Cancelled, self.cancelled),
            (JobState::Skipped, self.skipped),
        ]
    }

    /// Adds `n` jobs in `state`. No stored job is `Unspecified` (the store refuses to read one); it counts
    /// nowhere.
    pub fn add(&mut self, state: JobState, n: u64) {
        let count = match state {
            JobState::Queued => &mut self.queued,
            JobState::Leased => &mut self.leased,
            JobState::Done => &mut self.done,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
            JobState::Skipped => &mut self.skipped,
            JobState::Unspecified => return,
        };
        *count += n;
    }
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub run_id: RunId,
    pub kind: JobKind,
    /// Cells only: the channel group.
    pub group_key: Option<String>,
    /// Cells only: the share of the group's channels to remove, in (0, 1).
    pub ratio: Option<f64>,
    pub state: JobState,
    /// The attempt in progress (leased) or last made, from 1; 0 before the first claim.
    pub attempt: u32,
    /// The epoch of the current or last lease; 0 before the first claim.
    pub lease_epoch: i64,
    /// While leased: the worker holding it.
    pub lease_owner: Option<WorkerId>,
    /// While leased: when the rescuer may take it back.
    pub lease_deadline: Option<OffsetDateTime>,
    /// Earliest time a queued job may be claimed.
    pub available_at: OffsetDateTime,
    /// Done jobs: the accepted completion's result.
    pub result: Option<Value>,
    /// The last failed or expired attempt's error; for a cell an early stop skipped, why.
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    /// Set when the job reaches a final state.
    pub finished_at: Option<OffsetDateTime>,
    /// Done jobs: the worker whose completion was accepted.
    pub done_by: Option<WorkerId>,
    /// When the current or last lease began.
    pub leased_at: Option<OffsetDateTime>,
    /// Probes only: the candidate's place on the planner's chain (1 = the smallest cut).
    pub probe_step: Option<u32>,
    /// Probes only: the candidate plan, `{"<group key>": ratio}`.
    pub plan: Option<Value>,
    /// Recover jobs only: the last checkpoint a worker uploaded, where the next attempt resumes.
    pub checkpoint_digest: Option<String>,
    /// Recover jobs only: the last progress reported, `{"step": n, "steps": n, "loss": x, "metric": y, "best": z}`.
    pub progress: Option<Value>,
}

/// A registered worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    pub id: WorkerId,
    pub name: String,
    /// The device it evaluates on (`cpu`, `cuda:0`).
    pub device: String,
    pub registered_at: OffsetDateTime,
    /// Its registration or last heartbeat.
    pub last_seen_at: OffsetDateTime,
}

/// A worker with the jobs it holds leases on.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSummary {
    pub worker: Worker,
    /// (job, its run), by job id.
    pub leases: Vec<(JobId, RunId)>,
}

/// Writes failing in a row ([`JobStore::write_failure`]): the latest error, and when the first failed.
#[derive(Clone, Debug)]
pub struct WriteFailure {
    pub error: String,
    pub since: std::time::Instant,
}

/// One lease of a job: the fence that heartbeat, complete and fail must name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    pub job_id: JobId,
    pub epoch: i64,
}

/// How long a failed or expired attempt waits before the job can be claimed again:
/// `min(base * 2^(attempt - 1), cap)` after attempt number `attempt` (1, 2, 3, …), without jitter, so the
/// same history always gives the same `available_at`. Workers poll, so there is no herd to spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first attempt.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Backoff {
    /// The wait after attempt number `attempt` failed (1 for the first attempt), truncated to whole
    /// microseconds.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_micros() as f64;
        let micros = (base * 2f64.powi(attempt.saturating_sub(1).min(1023) as i32)).min(self.cap_micros() as f64);
        Duration::from_micros(micros as u64)
    }

    /// `base` in whole microseconds, as the SQL binds it.
    pub fn base_micros(&self) -> i64 {
        i64::try_from(self.base.as_micros()).unwrap_or(i64::MAX)
    }

    /// `cap` in whole microseconds, as the SQL binds it.
    pub fn cap_micros(&self) -> i64 {
        i64::try_from(self.cap.as_micros()).unwrap_or(i64::MAX)
    }
}

impl Default for Backoff {
    /// 1 s, doubling, at most 5 min.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

/// [`JobStore::artifact_put`]'s parameters.
#[derive(Clone, Debug)]
pub struct ArtifactPutParams {
    pub now: OffsetDateTime,
    /// Lowercase hex sha256, 64 characters.
    pub digest: String,
    pub size_bytes: u64,
    pub media_type: String,
}

impl ArtifactPutParams {
    /// Checks what every implementation refuses alike, naming the field, and answers the size as the
    /// databases store it.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for a digest that is not 64 lowercase hex digits or a size past `i64`.
    pub fn validate(&self) -> Result<i64> {
        const OP: &str = "artifact_put";
        if !sensgrid_client::is_sha256_hex(&self.digest) {
            return Err(StoreError::InvalidInput {
                op: OP,
                field: "digest".into(),
                reason: format!("expected 64 lowercase hex digits, got '{}'", self.digest),
            });
        }
        i64::try_from(self.size_bytes).map_err(|_| StoreError::InvalidInput {
            op: OP,
            field: "size_bytes".into(),
            reason: format!("expected at most {}, got {}", i64::MAX, self.size_bytes),
        })
    }
}

/// What [`JobStore::artifact_put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactPutOutcome {
    /// The artifact is new.
    Created,
    /// The same digest, size and media type were stored already; nothing changed.
    AlreadyStored,
}

/// [`JobStore::job_claim`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobClaimParams {
    pub now: OffsetDateTime,
    /// Each lease ends at `now + lease_duration` unless a heartbeat extends it.
    pub lease_duration: Duration,
    /// The waiting workers, one entry per job wanted (a worker may appear more than once), longest waiting
    /// first.
    pub workers: Vec<WorkerId>,
    /// What some of those workers hold loaded: at most one per worker (a later one for the same worker is
    /// ignored), none for a worker that has held no job.
    ///
    /// The jobs are assigned in three passes over the entries, in order, each entry taking the first job of its
    /// pass that no earlier assignment took: (1) an entry whose worker has an affinity with a group takes the
    /// next claimable cell of that (run, group) by ratio; (2) an entry still without a job whose worker has an
    /// affinity takes the next claimable job of that run in dispatch order; (3) every entry still without a
    /// job takes the next claimable job in dispatch order. Without affinities this is the dispatch order, the
    /// i-th job to the i-th entry.
    pub affinity: Vec<ClaimAffinity>,
}

/// A worker's loaded session, as a claim's preference (see [`JobClaimParams::affinity`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimAffinity {
    pub worker: WorkerId,
    /// The run of the job it held last.
    pub run_id: RunId,
    /// That job's group, when it was a cell.
    pub group_key: Option<String>,
}

impl JobClaimParams {
    /// Each entry of `workers`' affinity, in order: the first [`ClaimAffinity`] naming its worker.
    pub fn entry_affinities(&self) -> Vec<Option<&ClaimAffinity>> {
        let mut by_worker = std::collections::HashMap::new();
        for affinity in &self.affinity {
            by_worker.entry(affinity.worker).or_insert(affinity);
        }
        self.workers.iter().map(|w| by_worker.get(w).copied()).collect()
    }
}

/// A job handed out by [`JobStore::job_claim`]. The run's fields (config, digests, criterion) come from
/// [`JobStore::run_get`]: runs do not change, so callers can cache them.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedJob {
    pub lease: Lease,
    pub run_id: RunId,
    pub kind: JobKind,
    pub group_key: Option<String>,
    pub ratio: Option<f64>,
    /// The attempt this lease is, from 1.
    pub attempt: u32,
    pub owner: WorkerId,
    pub deadline: OffsetDateTime,
}

/// One completion of a [`JobCompleteParams`] batch.
#[derive(Clone, Debug, PartialEq)]
pub struct JobCompletion {
    pub lease: Lease,
    /// The metrics (and, for exports, the pruned model's digest) as the worker reported them.
    pub result: Value,
}

/// [`JobStore::job_complete`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobCompleteParams {
    pub now: OffsetDateTime,
    /// Accepted independently, each fenced by its lease; the same lease may appear more than once.
    pub completions: Vec<JobCompletion>,
}

/// [`JobStore::job_complete`]'s answer to one completion: what it did, and the job the completion named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completed {
    pub outcome: CompleteOutcome,
    /// `None` when no job has the completion's id ([`CompleteOutcome::NotFound`]).
    pub job: Option<NamedJob>,
}

/// The run and kind of the job a completion named: what the caller acts on next (an early stop) without
/// reading the job again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedJob {
    pub run_id: RunId,
    pub kind: JobKind,
}

/// What [`JobStore::job_complete`] did with one completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// The job is done with this result.
    Accepted,
    /// This lease's completion was accepted before (or earlier in the same batch): nothing changed, the first
    /// result stays. The worker should treat it as success.
    AlreadyAccepted,
    /// The lease is not current: superseded by a newer claim, expired and taken back, or failed. Nothing
    /// changed.
    Stale,
    /// The job's run was cancelled: the result is dropped.
    Cancelled,
    /// No job has this id.
    NotFound,
}

/// [`JobStore::job_fail`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobFailParams {
    pub now: OffsetDateTime,
    pub lease: Lease,
    /// Kept as the job's `last_error`.
    pub error: String,
    /// False for errors that will not go away on retry: the job fails at once.
    pub retryable: bool,
    pub backoff: Backoff,
}

/// What [`JobStore::job_fail`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    /// The job is queued again, claimable from `available_at`.
    Retrying { attempt: u32, available_at: OffsetDateTime },
    /// The job failed for good: attempts used up, or the error was not retryable.
    Failed { attempt: u32 },
    /// The lease is not current (superseded, expired and taken back, already completed or failed).
    Stale,
    /// The job's run was cancelled.
    Cancelled,
    /// No job has this id.
    NotFound,
}

/// [`JobStore::job_release`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobReleaseParams {
    pub now: OffsetDateTime,
    pub lease: Lease,
    /// Why the worker gave the job back (a full disk, out of memory, a device error): kept as the job's
    /// `last_error`.
    pub error: String,
}

/// What [`JobStore::job_release`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The job is queued again, claimable at once, its attempt not spent.
    Released,
    /// The lease is not current (superseded, expired and taken back, already completed or failed).
    Stale,
    /// The job's run was cancelled.
    Cancelled,
    /// No job has this id.
    NotFound,
}

/// [`JobStore::job_heartbeat`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobHeartbeatParams {
    pub now: OffsetDateTime,
    pub lease: Lease,
    /// The lease is extended to `now + lease_duration`.
    pub lease_duration: Duration,
}

/// What [`JobStore::job_heartbeat`] answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// Keep going: the lease now ends at `deadline`.
    Extended { deadline: OffsetDateTime },
    /// The run was cancelled: stop.
    Cancelled,
    /// The lease is not current (superseded, expired and taken back, completed, failed): stop.
    Lost,
    /// No job has this id: stop.
    NotFound,
}

/// [`JobStore::job_rescue_expired`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobRescueExpiredParams {
    pub now: OffsetDateTime,
    /// At most this many leases per call (the oldest deadlines first).
    pub limit: u32,
    pub backoff: Backoff,
}

/// A lease that [`JobStore::job_rescue_expired`] took back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RescuedJob {
    /// The expired lease.
    pub lease: Lease,
    /// The attempt that expired.
    pub attempt: u32,
    pub outcome: RescueOutcome,
}

/// Where a rescued job went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RescueOutcome {
    /// Queued again, claimable from `available_at`.
    Requeued { available_at: OffsetDateTime },
    /// That was the last attempt: the job failed.
    Failed,
}

/// [`JobStore::job_skip`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobSkipParams {
    pub now: OffsetDateTime,
    pub run_id: RunId,
    /// The group whose cells are skipped.
    pub group_key: String,
    /// Only cells with a larger ratio are skipped.
    pub above_ratio: f64,
    /// Kept as each skipped cell's `last_error`.
    pub reason: String,
}

/// [`JobStore::run_recover`]'s parameters.
#[derive(Clone, Debug)]
pub struct RunRecoverParams {
    pub now: OffsetDateTime,
    pub run_id: RunId,
    /// The run's config from now on: with the `Recover` section the recovery runs by.
    pub config_yaml: String,
    /// The run's spec from now on: with [`crate::spec::RunSpec::recover`] naming the training set.
    pub spec: Value,
}

/// What [`JobStore::run_recover`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunRecoverOutcome {
    /// The run runs again, its recover job queued.
    Queued,
    /// The run's recovery is queued or leased (the recover job's state): a second one is refused, not put in
    /// its place, as that would throw away the steps its worker has trained. Cancelling the run ends it, and a
    /// cancelled run whose export is done is recovered again.
    Recovering(JobState),
    /// The run is still running towards its export: there is no pruned model to recover yet.
    NotDone(RunState),
    /// The run ended (in this state) without a done export: there is no pruned model to recover.
    NotExported(RunState),
    NotFound,
}

impl RunRecoverOutcome {
    /// What a recovery request does to a run that was in state `prior`, with its export done or not
    /// (`exported`) and its recover job in state `recover` (`None`: it has none): the rule both stores apply.
    pub fn of(prior: RunState, exported: bool, recover: Option<JobState>) -> Self {
        match (prior, recover) {
            (RunState::Running, Some(recover @ (JobState::Queued | JobState::Leased))) => Self::Recovering(recover),
            (RunState::Done | RunState::Failed | RunState::Cancelled, _) if exported => Self::Queued,
            (RunState::Done | RunState::Failed | RunState::Cancelled, _) => Self::NotExported(prior),
            (RunState::Running | RunState::Unspecified, _) => Self::NotDone(prior),
        }
    }
}

/// [`JobStore::job_recover_add`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobRecoverAddParams {
    pub now: OffsetDateTime,
    pub run_id: RunId,
}

/// [`JobStore::job_recover_progress`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobRecoverProgressParams {
    pub lease: Lease,
    /// A checkpoint just uploaded, kept on the job for the next attempt; `None` keeps the last one. Its artifact
    /// must be stored.
    pub checkpoint_digest: Option<String>,
    /// `{"step": n, "steps": n, "loss": x, "metric": y, "best": z}`.
    pub progress: Value,
}

/// What [`JobStore::job_recover_progress`] did with a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoverProgressOutcome {
    /// Kept: the lease is current.
    Kept,
    /// Dropped: the lease is not current (superseded, expired and taken back, ended, its run cancelled).
    Stale,
    /// Dropped: the job is of this other kind, which has no recovery to report.
    NotRecover(JobKind),
    /// Dropped: no job has this id.
    NotFound,
}

/// [`JobStore::job_probe_add`]'s parameters.
#[derive(Clone, Debug)]
pub struct JobProbeAddParams {
    pub now: OffsetDateTime,
    pub run_id: RunId,
    /// (chain step, at least 1; plan `{"<group key>": ratio}`), each step at most once.
    pub probes: Vec<(u32, Value)>,
}

impl JobProbeAddParams {
    /// Checks what every implementation refuses alike, naming the field; answers the steps as the databases
    /// store them.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for a step of 0 or past `i32`, or a step given twice.
    pub fn validate(&self) -> Result<Vec<i32>> {
        let mut steps: Vec<i32> = Vec::with_capacity(self.probes.len());
        for (i, (step, _)) in self.probes.iter().enumerate() {
            let stored = i32::try_from(*step)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| StoreError::InvalidInput {
                    op: "job_probe_add",
                    field: format!("probes[{i}].step"),
                    reason: format!("expected a step in 1..={}, got {step}", i32::MAX),
                })?;
            if steps.contains(&stored) {
                return Err(StoreError::InvalidInput {
                    op: "job_probe_add",
                    field: format!("probes[{i}].step"),
                    reason: format!("step {step} is given twice"),
                });
            }
            steps.push(stored);
        }
        Ok(steps)
    }
}

/// One cell of [`RunCreateParams`].
#[derive(Clone, Debug, PartialEq)]
pub struct CellSpec {
    pub group_key: String,
    /// In (0, 1).
    pub ratio: f64,
    /// A result known already (imported from an earlier run or a `sen.pickle`): the cell is created done with
    /// it and never dispatched.
    pub result: Option<Value>,
}

/// [`JobStore::run_create`]'s parameters.
#[derive(Clone, Debug)]
pub struct RunCreateParams {
    pub now: OffsetDateTime,
    pub config_yaml: String,
    /// A stored artifact.
    pub model_digest: String,
    /// A stored artifact.
    pub dataset_digest: String,
    pub criterion: String,
    /// At least 1.
    pub max_attempts: u32,
    /// The grid; each (group key, ratio) at most once.
    pub cells: Vec<CellSpec>,
    /// Whether the run ends with an export job.
    pub export: bool,
    /// The submission's description, stored as given (see [`Run::spec`]).
    pub spec: Value,
}

impl RunCreateParams {
    /// Checks what the schema would refuse, naming the field, so every implementation reports it alike.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for `max_attempts` of 0, an empty group key, a ratio outside (0, 1) or a
    /// repeated (group key, ratio).
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: String, reason: String| StoreError::InvalidInput {
            op: "run_create",
            field,
            reason,
        };
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts".into(), "expected at least 1, got 0".into()));
        }
        if self.max_attempts > i32::MAX as u32 {
            return Err(invalid(
                "max_attempts".into(),
                format!("expected at most {}, got {}", i32::MAX, self.max_attempts),
            ));
        }
        let mut seen = std::collections::HashMap::new();
        for (i, cell) in self.cells.iter().enumerate() {
            if cell.group_key.is_empty() {
                return Err(invalid(
                    format!("cells[{i}].group_key"),
                    "expected a group key, got ''".into(),
                ));
            }
            if !(cell.ratio > 0.0 && cell.ratio < 1.0) {
                return Err(invalid(
                    format!("cells[{i}].ratio"),
                    format!("expected a ratio in (0, 1), got {}", cell.ratio),
                ));
            }
            if let Some(first) = seen.insert((cell.group_key.as_str(), cell.ratio.to_bits()), i) {
                return Err(invalid(
                    format!("cells[{i}]"),
                    format!("repeats cells[{first}] ({} at {})", cell.group_key, cell.ratio),
                ));
            }
        }
        Ok(())
    }
}

/// [`JobStore::run_cancel`]'s parameters.
#[derive(Clone, Debug)]
pub struct RunCancelParams {
    pub now: OffsetDateTime,
    pub run_id: RunId,
}

/// What [`JobStore::run_cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunCancelOutcome {
    /// The run is cancelled, and so are the jobs it had queued and leased.
    Cancelled { queued: u64, leased: u64 },
    /// The run had already finished in this state; nothing changed.
    AlreadyFinal(RunState),
    /// No run has this id.
    NotFound,
}

/// [`JobStore::run_retry`]'s parameters.
#[derive(Clone, Debug)]
pub struct RunRetryParams {
    pub now: OffsetDateTime,
    pub run_id: RunId,
}

/// What [`JobStore::run_retry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunRetryOutcome {
    /// `requeued` failed jobs are queued again with fresh attempts; `reopened` when the run had ended done
    /// (with those failures) and is running again.
    Requeued { requeued: u64, reopened: bool },
    /// The run failed or was cancelled: nothing changed.
    NotRetryable(RunState),
    /// No run has this id.
    NotFound,
}

/// [`JobStore::run_finish`]'s parameters.
#[derive(Clone, Debug)]
pub struct RunFinishParams {
    pub now: OffsetDateTime,
    pub run_id: RunId,
    /// [`RunState::Done`] or [`RunState::Failed`].
    pub state: RunState,
    /// Required with [`RunState::Failed`].
    pub error: Option<String>,
}

impl RunFinishParams {
    /// Checks what every implementation refuses alike: a final state other than done or failed, or a failure
    /// without its error.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] naming `state`.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| StoreError::InvalidInput {
            op: "run_finish",
            field: "state".into(),
            reason: reason.into(),
        };
        match (self.state, &self.error) {
            (RunState::Done, _) | (RunState::Failed, Some(_)) => Ok(()),
            (RunState::Failed, None) => Err(invalid("a failed run needs its error")),
            _ => Err(invalid("a run finishes as done or failed")),
        }
    }
}

/// [`JobStore::run_plan`]'s parameters.
#[derive(Clone, Debug)]
pub struct RunPlanParams {
    pub now: OffsetDateTime,
    pub run_id: RunId,
    /// `{"<group key>": ratio}`.
    pub plan: Value,
    /// Queue an export job by this plan; the run runs until it ends. [`PlanMode`] says whether an earlier
    /// export is queued anew.
    pub export: bool,
    pub mode: PlanMode,
}

/// Whose plan [`JobStore::run_plan`] stores, and so what an earlier plan or export means to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanMode {
    /// The pipeline's plan, made once per plan-less running run. Another pipeline (a second coordinator on the
    /// same database) or a late round may plan the same run from what it read before: it finds the run
    /// planned, or no longer running, and changes nothing, so the export is queued once and a finished run
    /// stays finished. An export the run has already is kept as it is, never queued anew.
    Initial,
    /// A plan someone asked for (`coordinator plan`): it replaces the run's plan, on a running or a done run.
    /// With `export`, the export is queued anew (reset in place, or added) and a done run runs again: a
    /// deliberate new export. Refused while the export is leased (a worker is computing it); without
    /// `export`, refused once the run has an export, whose plan it would contradict.
    Replace,
}

impl RunPlanParams {
    /// Why this plan is not stored on a run in `state`, planned already or not, whose export is in `export`
    /// (`None`: it has none); `None` when it is stored. Both stores decide by this rule, on the run and export
    /// as locked by the plan's own transaction.
    pub fn refusal(&self, state: RunState, planned: bool, export: Option<JobState>) -> Option<RunPlanOutcome> {
        match self.mode {
            PlanMode::Initial => match state {
                RunState::Running if !planned => None,
                RunState::Running | RunState::Done => Some(RunPlanOutcome::AlreadyPlanned),
                RunState::Cancelled | RunState::Failed | RunState::Unspecified => {
                    Some(RunPlanOutcome::NotPlannable(state))
                }
            },
            PlanMode::Replace => match (state, self.export, export) {
                (RunState::Cancelled | RunState::Failed | RunState::Unspecified, _, _) => {
                    Some(RunPlanOutcome::NotPlannable(state))
                }
                (_, true, Some(JobState::Leased)) => Some(RunPlanOutcome::ExportLeased),
                (_, false, Some(_)) => Some(RunPlanOutcome::Exported),
                _ => None,
            },
        }
    }
}

/// [`JobStore::run_replan`]'s parameters.
#[derive(Clone, Debug)]
pub struct RunReplanParams {
    pub run_id: RunId,
    /// The run's spec with its new `Prune` target.
    pub spec: Value,
}

/// What [`JobStore::run_plan`] (and [`JobStore::run_replan`]) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPlanOutcome {
    /// The plan is stored (and the export queued, when asked).
    Planned,
    /// [`PlanMode::Initial`]: the run has a plan already, or has ended done; nothing changed.
    AlreadyPlanned,
    /// The run's export is leased: a worker is computing it by the current plan; nothing changed.
    ExportLeased,
    /// [`PlanMode::Replace`] without `export`: the run has an export, made or to be made by its current plan;
    /// nothing changed.
    Exported,
    /// The run was cancelled or failed; nothing changed.
    NotPlannable(RunState),
    /// No run has this id.
    NotFound,
}

/// [`JobStore::worker_register`]'s parameters.
#[derive(Clone, Debug)]
pub struct WorkerRegisterParams {
    pub now: OffsetDateTime,
    pub name: String,
    pub device: String,
}

/// Every database operation of the coordinator. Implementations are cheap to clone handles onto a shared
/// connection pool; operations are independent statements, safe to call concurrently from many tasks.
///
/// The futures are `Send`, so services can run them on spawned tasks.
pub trait JobStore: Clone + Send + Sync + 'static {
    /// The artifact with this digest, if stored.
    fn artifact_get(&self, digest: &str) -> impl Future<Output = Result<Option<Artifact>>> + Send;

    /// Records an artifact's metadata. Idempotent: the same digest, size and media type again answers
    /// [`ArtifactPutOutcome::AlreadyStored`].
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for a digest that is not 64 lowercase hex digits;
    /// [`StoreError::ArtifactConflict`] when the digest is stored with another size or media type.
    fn artifact_put(&self, params: ArtifactPutParams) -> impl Future<Output = Result<ArtifactPutOutcome>> + Send;

    /// Leases up to `params.workers.len()` claimable jobs in one statement, in dispatch order (runs oldest
    /// first; baseline, cells by (group, ratio), export once the rest of its run is done or skipped), each
    /// worker's affinity first (the rule is [`JobClaimParams::affinity`]'s). Each claim bumps the job's epoch
    /// and attempt. Answers the jobs in the order of the entries they went to ([`ClaimedJob::owner`] says
    /// whose), fewer when fewer are claimable; never the same job to two concurrent callers.
    ///
    /// # Errors
    ///
    /// [`StoreError::WorkerNotFound`] when a worker is not registered (nothing is claimed).
    fn job_claim(&self, params: JobClaimParams) -> impl Future<Output = Result<Vec<ClaimedJob>>> + Send;

    /// Accepts a batch of completions in one statement, each fenced by its lease; answers one [`Completed`] per
    /// completion, in order. See [`CompleteOutcome`].
    fn job_complete(&self, params: JobCompleteParams) -> impl Future<Output = Result<Vec<Completed>>> + Send;

    /// Records a failed attempt: queued again after a backoff, or failed when it was the last attempt or the
    /// error is not retryable. See [`FailOutcome`].
    fn job_fail(&self, params: JobFailParams) -> impl Future<Output = Result<FailOutcome>> + Send;

    /// The job with this id, if any.
    fn job_get(&self, id: JobId) -> impl Future<Output = Result<Option<Job>>> + Send;

    /// Extends a current lease to `now + lease_duration`; tells the worker to stop otherwise. See
    /// [`HeartbeatOutcome`].
    fn job_heartbeat(&self, params: JobHeartbeatParams) -> impl Future<Output = Result<HeartbeatOutcome>> + Send;

    /// Every job of a run, by id.
    fn job_list_by_run(&self, run_id: RunId) -> impl Future<Output = Result<Vec<Job>>> + Send;

    /// Gives a current lease back without spending its attempt: the worker failed for a reason of its own (a
    /// full disk, out of memory, a device error), not the job's. The job is queued again, claimable at once by
    /// any worker, with the attempt the claim counted taken back and the lease epoch kept (the releasing
    /// worker's later calls are stale). See [`ReleaseOutcome`].
    fn job_release(&self, params: JobReleaseParams) -> impl Future<Output = Result<ReleaseOutcome>> + Send;

    /// Takes back up to `limit` leases whose deadline is at or before `now` (oldest first): queued again after a
    /// backoff, or failed when that was the run's last attempt. Concurrent rescuers skip each other's rows.
    fn job_rescue_expired(
        &self,
        params: JobRescueExpiredParams,
    ) -> impl Future<Output = Result<Vec<RescuedJob>>> + Send;

    /// Skips the queued cells of `params.group_key` in `params.run_id` whose ratio is above
    /// `params.above_ratio` (an early stop), with `params.reason` as their `last_error`; leased and finished
    /// cells are left as they are. Answers how many were skipped.
    fn job_skip(&self, params: JobSkipParams) -> impl Future<Output = Result<u64>> + Send;

    /// Queues the run's recover job, claimable at `now`, when the run is running, its export is done and it has
    /// no recover job yet (in any state), so a restarted pipeline adds nothing. Answers whether one was queued.
    fn job_recover_add(&self, params: JobRecoverAddParams) -> impl Future<Output = Result<bool>> + Send;

    /// Reopens an ended run (done, failed or cancelled) whose export is done for a recovery: its config and
    /// spec replaced by `params`', its recover job queued anew (in place, its epoch kept, its checkpoint and
    /// progress dropped) or added. A running run, a run without a done export and a missing one are left as
    /// they are (see [`RunRecoverOutcome`]).
    fn run_recover(&self, params: RunRecoverParams) -> impl Future<Output = Result<RunRecoverOutcome>> + Send;

    /// Keeps what a recover job's worker reported beside its heartbeats (its progress, and a checkpoint it
    /// uploaded) while its lease is current; any other report changes nothing (see [`RecoverProgressOutcome`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::ArtifactNotFound`] naming `checkpoint_digest` when a current lease's report names a
    /// checkpoint that is not stored (nothing is kept: a resumed attempt would download it).
    fn job_recover_progress(
        &self,
        params: JobRecoverProgressParams,
    ) -> impl Future<Output = Result<RecoverProgressOutcome>> + Send;

    /// Queues a probe job per (step, plan) of `params.probes` for a running run that has no plan yet, claimable
    /// at `now`; a step the run already has (in any state) is left as it is, so a restarted pipeline that
    /// queues a round again adds nothing. Answers how many were queued (0 for a run that is not running, is
    /// planned, or does not exist).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for a step of 0 or past `i32`, or a repeated step.
    fn job_probe_add(&self, params: JobProbeAddParams) -> impl Future<Output = Result<u64>> + Send;

    /// Answers once the database has answered a trivial query (`/healthz`); the backend's error otherwise.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// Since when, and why, the store's writes fail while its reads still answer (a full disk under the
    /// SQLite file); `None` while writes commit. The Postgres store keeps no such state: a server that cannot
    /// write fails each call, which its caller sees.
    fn write_failure(&self) -> Option<WriteFailure> {
        None
    }

    /// Cancels a running run: its queued and leased jobs become cancelled in the same statement, so none is
    /// handed out afterwards. See [`RunCancelOutcome`].
    fn run_cancel(&self, params: RunCancelParams) -> impl Future<Output = Result<RunCancelOutcome>> + Send;

    /// Creates a run with its baseline job, one cell job per [`CellSpec`] and, if asked, the export job, all
    /// queued and claimable at `now`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] as [`RunCreateParams::validate`] says; [`StoreError::ArtifactNotFound`]
    /// when a digest is not stored.
    fn run_create(&self, params: RunCreateParams) -> impl Future<Output = Result<RunId>> + Send;

    /// Ends a running run as done or failed, skipping its queued and leased jobs in the same statement (a
    /// failed baseline leaves its cells nothing to measure against). Answers false when the run was not
    /// running (nothing changed), and for done while a job of the run is queued or leased: the caller decided
    /// from jobs read before someone (another coordinator's `coordinator plan --export`, a retry) queued more.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for a state other than done or failed, or a failure without an error.
    fn run_finish(&self, params: RunFinishParams) -> impl Future<Output = Result<bool>> + Send;

    /// The run with this id, if any.
    fn run_get(&self, id: RunId) -> impl Future<Output = Result<Option<Run>>> + Send;

    /// Every run (newest first), or those in `state`, with their jobs counted by state.
    fn run_list(&self, state: Option<RunState>) -> impl Future<Output = Result<Vec<RunSummary>>> + Send;

    /// Stores a run's plan and, when asked, queues its export job, the run running until that export ends.
    /// Decided on the run and its export as they are under the statement's lock, by
    /// [`RunPlanParams::refusal`]: the pipeline's plan ([`PlanMode::Initial`]) is stored once and never
    /// reopens a finished run or queues an export twice; a requested one ([`PlanMode::Replace`]) replaces the
    /// plan and queues the export anew unless a worker holds it. See [`RunPlanOutcome`].
    fn run_plan(&self, params: RunPlanParams) -> impl Future<Output = Result<RunPlanOutcome>> + Send;

    /// Gives a running or done run a new spec (a new `Prune` target) and hands it back to the pipeline to plan
    /// again: its plan is cleared, its export job (unless leased) removed, and it runs until it ends anew; its
    /// cells and probes stay. A leased export ([`RunPlanOutcome::ExportLeased`]), or a cancelled or failed run
    /// ([`RunPlanOutcome::NotPlannable`]), leaves everything as it is.
    fn run_replan(&self, params: RunReplanParams) -> impl Future<Output = Result<RunPlanOutcome>> + Send;

    /// Puts a running or done run's failed jobs back in the queue, claimable at `now` with fresh attempts
    /// (attempt 0, their last error kept until the next attempt ends), and makes a done run that had any running
    /// again until it ends anew. A failed or cancelled run is left as it is. See [`RunRetryOutcome`].
    fn run_retry(&self, params: RunRetryParams) -> impl Future<Output = Result<RunRetryOutcome>> + Send;

    /// The worker with this id, if any.
    fn worker_get(&self, id: WorkerId) -> impl Future<Output = Result<Option<Worker>>> + Send;

    /// Every registered worker with the leases it holds, by id.
    fn worker_list(&self) -> impl Future<Output = Result<Vec<WorkerSummary>>> + Send;

    /// Registers a worker under a new id.
    fn worker_register(&self, params: WorkerRegisterParams) -> impl Future<Output = Result<Worker>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(3),
        };
        let delays: Vec<_> = (1..=5).map(|a| backoff.delay(a)).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 3000, 3000].map(Duration::from_millis),
            "attempts 1..=5 after a 500 ms base capped at 3 s"
        );
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(3));
    }

    #[test]
    fn run_create_params_name_the_bad_field() {
        let params = |cells: Vec<(&str, f64)>, max_attempts| RunCreateParams {
            now: OffsetDateTime::UNIX_EPOCH,
            config_yaml: String::new(),
            model_digest: String::new(),
            dataset_digest: String::new(),
            criterion: "l1_norm".into(),
            max_attempts,
            cells: cells
                .into_iter()
                .map(|(g, r)| CellSpec {
                    group_key: g.into(),
                    ratio: r,
                    result: None,
                })
                .collect(),
            export: false,
            spec: Value::Null,
        };
        let message = |p: RunCreateParams| p.validate().unwrap_err().to_string();
        assert_eq!(
            message(params(vec![], 0)),
            "run_create: max_attempts: expected at least 1, got 0"
        );
        assert_eq!(
            message(params(vec![("a", 0.1), ("a", 1.0)], 1)),
            "run_create: cells[1].ratio: expected a ratio in (0, 1), got 1"
        );
        assert_eq!(
            message(params(vec![("a", 0.1), ("b", 0.1), ("a", 0.1)], 1)),
            "run_create: cells[2]: repeats cells[0] (a at 0.1)"
        );
        assert_eq!(
            message(params(vec![("", 0.5)], 1)),
            "run_create: cells[0].group_key: expected a group key, got ''"
        );
        assert!(params(vec![("a", 0.1), ("a", 0.2)], 3).validate().is_ok());
    }
}
