//! [`SqliteStore`]: the [`JobStore`] on an embedded SQLite file, for a local run that needs no database server.
//!
//! The SQL lives in `store/queries_sqlite/<table>.sql`, one named query (`-- name: job_lease`) per statement,
//! embedded at compile time; the schema is `migrations/sqlite/` ([`SQLITE_MIGRATOR`]). The file holds exactly
//! what the Postgres store holds, and the conformance suite (`coordinator/tests/it/store.rs`) runs on both.
//!
//! # Writers are serialised
//!
//! SQLite has one writer at a time per file, and its statements cannot nest changes the way the Postgres
//! store's single statements do (no data-changing CTEs, no row locks). So every operation that changes
//! anything runs its statements in one `BEGIN IMMEDIATE` transaction, which takes the file's write lock before
//! its first read:
//!
//! - In one process, every store opened on the file shares one write turn (a tokio mutex, FIFO): writers queue
//!   for it in order instead of polling the file lock, which SQLite's busy handler does with growing sleeps
//!   that let a busy writer starve the others. Each store writes through a pool of one connection; reads use a
//!   pool of their own, which WAL lets run beside a write.
//! - Across processes, the file lock makes the later writer wait (up to [`BUSY_TIMEOUT`]) for the earlier
//!   one's commit.
//!
//! A transaction thus sees the latest committed state from its first read to its commit, and nobody else
//! changes the file in between: the check that decides (is this lease current? which jobs are claimable?) and
//! the change it decides hold together, as the Postgres store's locks make them. That keeps every guarantee of
//! [`JobStore`]: a claim hands each job to one caller (a second claimer sees it leased), completion is fenced by
//! (job, epoch) and accepted once, the rescuer takes back only leases that are still current and expired, and a
//! run appears with all its jobs or not at all. Each lease write also names (id, epoch, state) in its own WHERE
//! clause, so it is fenced even on its own. No transaction stays open between calls or while a worker computes.
//!
//! # Durability
//!
//! The file is in WAL mode with `synchronous = FULL`: a commit returns once it is in the log and synced. A killed
//! coordinator (or a lost machine) loses nothing committed, and a transaction cut short is rolled back when the
//! file is next opened, so a local run resumes where it stopped when started again on the same file.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, Transaction};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::query_files::QueryFiles;
use super::stored::{Stored, StoredEnum};
use super::{
    Artifact, ArtifactPutOutcome, ArtifactPutParams, Backoff, ClaimAffinity, ClaimedJob, CompleteOutcome, Completed,
    FailOutcome, HeartbeatOutcome, Job, JobClaimParams, JobCompleteParams, JobCounts, JobFailParams,
    JobHeartbeatParams, JobId, JobKind, JobProbeAddParams, JobRecoverAddParams, JobRecoverProgressParams,
    JobRescueExpiredParams, JobSkipParams, JobState, JobStore, Lease, NamedJob, RecoverProgressOutcome, RescueOutcome,
    RescuedJob, Result, Run, RunCancelOutcome, RunCancelParams, RunCreateParams, RunFinishParams, RunId,
    RunPlanOutcome, RunPlanParams, RunRecoverOutcome, RunRecoverParams, RunReplanParams, RunState, RunSummary,
    StoreError, Worker, WorkerId, WorkerRegisterParams, WorkerSummary, WriteFailure,
};

/// Every migration in `migrations/sqlite/`, embedded at compile time; [`SqliteStore::open`] applies them.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a write waits for another handle's write on the same file before it fails. Writes take
/// milliseconds, so only a stuck process holds the lock this long.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections of the read pool: reads (status, listings, `job_get`) run beside the one writer.
const READERS: u32 = 4;

/// The query files, by name.
const QUERY_FILES: [(&str, &str); 5] = [
    ("artifact.sql", include_str!("queries_sqlite/artifact.sql")),
    ("health.sql", include_str!("queries_sqlite/health.sql")),
    ("job.sql", include_str!("queries_sqlite/job.sql")),
    ("run.sql", include_str!("queries_sqlite/run.sql")),
    ("worker.sql", include_str!("queries_sqlite/worker.sql")),
];

/// Every named query of [`QUERY_FILES`].
static QUERIES: LazyLock<QueryFiles> = LazyLock::new(|| QueryFiles::new("store/queries_sqlite", &QUERY_FILES));

/// The named query.
fn sql(name: &str) -> &'static str {
    QUERIES.sql(name)
}

/// The write turn of each database file some store in this process has open, by canonical path.
static WRITE_TURNS: LazyLock<std::sync::Mutex<HashMap<PathBuf, Weak<Mutex<()>>>>> = LazyLock::new(Default::default);

/// The write turn that every store on the file at `path` (which exists) takes for each write transaction.
fn write_turn(path: &Path) -> std::io::Result<Arc<Mutex<()>>> {
    let path = path.canonicalize()?;
    // Poisoned only by a panic inside this function's map operations, which leave the map whole.
    let mut turns = WRITE_TURNS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    turns.retain(|_, turn| turn.strong_count() > 0);
    if let Some(turn) = turns.get(&path).and_then(Weak::upgrade) {
        return Ok(turn);
    }
    let turn = Arc::new(Mutex::new(()));
    turns.insert(path, Arc::downgrade(&turn));
    Ok(turn)
}

/// The SQLite [`JobStore`]: handles onto one database file, cheap to clone. See the module docs for how writes
/// are serialised.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Taken by every write transaction on this file in this process, in order of arrival.
    turn: Arc<Mutex<()>>,
    /// One connection: every write transaction, in turn.
    writer: SqlitePool,
    /// Read-only statements.
    reader: SqlitePool,
    /// Whether the last write transaction committed: see [`WriteHealth`].
    health: Arc<WriteHealth>,
}

impl SqliteStore {
    /// Opens the store on the SQLite file at `path`, creating it when missing, and applies
    /// [`SQLITE_MIGRATOR`]'s migrations. Several stores (in one process or several) may open the same file;
    /// their writes take turns.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the file cannot be opened or created, or a migration fails (also when the
    /// file holds migrations this build does not know).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // A failed COMMIT (a full disk: SQLITE_FULL) may roll the transaction back inside SQLite, so the
            // rollback that follows fails and sqlx counts the connection as still in a transaction: every later
            // BEGIN on it would fail ("begin_with at non-zero transaction depth") and the store would never
            // write again. Such a connection is closed instead of reused; the pool opens a fresh one.
            .before_acquire(|connection, _| {
                Box::pin(async move {
                    if transaction_depth(connection) == 0 {
                        return Ok(true);
                    }
                    // A rollback queued by a dropped transaction may still be on its way: once a ping has
                    // gone through the connection's queue after it, the depth is settled.
                    connection.ping().await?;
                    let depth = transaction_depth(connection);
                    if depth != 0 {
                        tracing::warn!(
                            depth,
                            "closing the job store's write connection left inside a transaction"
                        );
                    }
                    Ok(depth == 0)
                })
            })
            .connect_with(
                options
                    .clone()
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full),
            )
            .await
            .map_err(backend("open"))?;
        SQLITE_MIGRATOR
            .run(&writer)
            .await
            .map_err(|source| StoreError::Backend {
                op: "migrate",
                source: Box::new(source),
            })?;
        // The file is in WAL mode by now (a setting of the file): readers do not block the writer, nor it them.
        // `query_only` keeps every change on the writer's connection, where it is serialised.
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .map_err(backend("open"))?;
        let turn = write_turn(path.as_ref()).map_err(|source| StoreError::Backend {
            op: "open",
            source: Box::new(source),
        })?;
        Ok(Self {
            turn,
            writer,
            reader,
            health: Arc::default(),
        })
    }

    /// Closes both pools, waiting for the statements in flight.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// A write transaction of the operation `op` with this process's write turn on the file: the file's write
    /// lock is held from here to the commit (or the rollback when the transaction is dropped), the turn until
    /// the guard is dropped. Callers keep both to the end of the operation.
    async fn write(&self, op: &'static str) -> Result<(OwnedMutexGuard<()>, WriteTx)> {
        let turn = Arc::clone(&self.turn).lock_owned().await;
        let begun = match self.writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(mut tx) => total_changes(&mut tx)
                .await
                .map(|changes_at_begin| (tx, changes_at_begin)),
            Err(error) => Err(error),
        };
        match begun {
            Ok((tx, changes_at_begin)) => Ok((
                turn,
                WriteTx {
                    tx,
                    changes_at_begin,
                    health: Arc::clone(&self.health),
                },
            )),
            Err(error) => {
                self.health.failed(&error);
                Err(backend(op)(error))
            }
        }
    }
}

/// A write transaction of [`SqliteStore::write`]: the statements run on it as on the connection it derefs to,
/// and [`WriteTx::commit`] tells the store's [`WriteHealth`] how the commit went. Dropped uncommitted, it rolls
/// back (an early answer such as "no such run" changes nothing and says nothing of the disk).
struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    /// The connection's `total_changes()` after BEGIN: a commit that changed no row writes nothing to the
    /// file, so it succeeds on a full disk too and must not count as a write that held.
    changes_at_begin: i64,
    health: Arc<WriteHealth>,
}

impl WriteTx {
    async fn commit(mut self) -> std::result::Result<(), sqlx::Error> {
        let wrote = match total_changes(&mut self.tx).await {
            Ok(changes) => changes != self.changes_at_begin,
            Err(error) => {
                self.health.failed(&error);
                return Err(error);
            }
        };
        match self.tx.commit().await {
            Ok(()) => {
                if wrote {
                    self.health.succeeded();
                }
                Ok(())
            }
            Err(error) => {
                self.health.failed(&error);
                Err(error)
            }
        }
    }
}

/// SQLite's count of rows changed on `connection` since it opened.
async fn total_changes(connection: &mut SqliteConnection) -> std::result::Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT total_changes()").fetch_one(connection).await
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// Whether the file takes writes: the first failure of a run of failed commits (or BEGINs), with the latest
/// error, until a commit succeeds. A full disk fails every commit that needs a new page, so this is how the
/// store says it cannot write (`/healthz`, `coordinator run`) while reads go on answering.
#[derive(Debug, Default)]
struct WriteHealth(std::sync::Mutex<Option<WriteFailure>>);

impl WriteHealth {
    fn failed(&self, error: &sqlx::Error) {
        let mut failure = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let since = failure.as_ref().map_or_else(std::time::Instant::now, |f| f.since);
        if failure.is_none() {
            tracing::error!(%error, "the job store cannot write");
        }
        *failure = Some(WriteFailure {
            error: error.to_string(),
            since,
        });
    }

    fn succeeded(&self) {
        let mut failure = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(failed) = failure.take() {
            tracing::info!(failed_for = ?failed.since.elapsed(), "the job store writes again");
        }
    }

    fn current(&self) -> Option<WriteFailure> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// The state of run `run` inside `tx`; `None` when there is no such run.
async fn run_state(tx: &mut SqliteConnection, op: &'static str, run: RunId) -> Result<Option<RunState>> {
    let state: Option<Stored<RunState>> = sqlx::query_scalar(sql("run_state"))
        .bind(run.0)
        .fetch_optional(tx)
        .await
        .map_err(backend(op))?;
    Ok(state.map(|s| s.0))
}

/// The state and plan of run `run` inside `tx`; `None` when there is no such run.
async fn run_state_plan(
    tx: &mut SqliteConnection,
    op: &'static str,
    run: RunId,
) -> Result<Option<(RunState, Option<Value>)>> {
    let row: Option<(Stored<RunState>, Option<Value>)> = sqlx::query_as(sql("run_state_plan"))
        .bind(run.0)
        .fetch_optional(tx)
        .await
        .map_err(backend(op))?;
    Ok(row.map(|(state, plan)| (state.0, plan)))
}

/// The state of run `run`'s export job inside `tx`; `None` when it has none.
async fn export_state(tx: &mut SqliteConnection, op: &'static str, run: RunId) -> Result<Option<JobState>> {
    let state: Option<Stored<JobState>> = sqlx::query_scalar(sql("job_export_state"))
        .bind(run.0)
        .fetch_optional(tx)
        .await
        .map_err(backend(op))?;
    Ok(state.map(|s| s.0))
}

/// Run `run`'s queued and leased jobs inside `tx`.
/// Fails with [`StoreError::ArtifactNotFound`] naming `field` unless the store holds `digest`.
async fn require_artifact(
    tx: &mut SqliteConnection,
    op: &'static str,
    field: &'static str,
    digest: &str,
) -> Result<()> {
    let stored = sqlx::query(sql("artifact_get"))
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend(op))?;
    match stored {
        Some(_) => Ok(()),
        None => Err(StoreError::ArtifactNotFound {
            op,
            field,
            digest: digest.to_owned(),
        }),
    }
}

async fn unfinished_jobs(tx: &mut SqliteConnection, op: &'static str, run: RunId) -> Result<(u64, u64)> {
    let counts = sqlx::query(sql("job_count_unfinished"))
        .bind(run.0)
        .fetch_one(tx)
        .await
        .map_err(backend(op))?;
    let c = Columns { op, row: &counts };
    Ok((
        c.number(JobState::Queued.as_str())?,
        c.number(JobState::Leased.as_str())?,
    ))
}

/// How many transactions sqlx counts open on `connection`.
fn transaction_depth(connection: &SqliteConnection) -> usize {
    <<Sqlite as sqlx::Database>::TransactionManager as sqlx::TransactionManager>::get_transaction_depth(connection)
}

/// Wraps a database error as [`StoreError::Backend`] of the operation `op`.
fn backend(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Backend {
        op,
        source: Box::new(source),
    }
}

/// A count or number read from the database that must fit the Rust type.
fn convert<T: TryFrom<i64>>(op: &'static str, what: &str, value: i64) -> Result<T> {
    T::try_from(value).map_err(|_| StoreError::Backend {
        op,
        source: format!("{what}: {value} is out of range").into(),
    })
}

/// A time as the schema stores it: whole microseconds since the Unix epoch, truncated as Postgres' timestamptz
/// is (an `OffsetDateTime` spans ±9999 years, well inside `i64` microseconds).
fn micros(time: OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos().div_euclid(1000)) as i64
}

/// A stored time (see [`micros`]), in UTC.
fn from_micros(op: &'static str, what: &str, micros: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).map_err(|_| StoreError::Backend {
        op,
        source: format!("{what}: {micros} µs is out of range").into(),
    })
}

/// `now + duration` as stored, refusing a time past the calendar's end; `field` names the parameter.
fn after(op: &'static str, field: &str, now: OffsetDateTime, duration: Duration) -> Result<i64> {
    now.checked_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
        .map(micros)
        .ok_or_else(|| StoreError::InvalidInput {
            op,
            field: field.into(),
            reason: format!("{duration:?} after {now} is past the end of the calendar"),
        })
}

/// Reads the columns of one row for the operation `op`.
struct Columns<'r> {
    op: &'static str,
    row: &'r SqliteRow,
}

impl Columns<'_> {
    fn get<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(&'r self, column: &str) -> Result<T> {
        self.row.try_get(column).map_err(backend(self.op))
    }

    fn time(&self, column: &str) -> Result<OffsetDateTime> {
        from_micros(self.op, column, self.get(column)?)
    }

    fn time_opt(&self, column: &str) -> Result<Option<OffsetDateTime>> {
        self.get::<Option<i64>>(column)?
            .map(|t| from_micros(self.op, column, t))
            .transpose()
    }

    fn number<T: TryFrom<i64>>(&self, column: &str) -> Result<T> {
        convert(self.op, column, self.get(column)?)
    }

    fn stored<T: StoredEnum>(&self, column: &str) -> Result<T> {
        Ok(self.get::<Stored<T>>(column)?.0)
    }
}

fn job_from_row(op: &'static str, row: &SqliteRow) -> Result<Job> {
    let c = Columns { op, row };
    Ok(Job {
        id: JobId(c.get("id")?),
        run_id: RunId(c.get("run_id")?),
        kind: c.stored("kind")?,
        group_key: c.get("group_key")?,
        ratio: c.get("ratio")?,
        state: c.stored("state")?,
        attempt: c.number("attempt")?,
        lease_epoch: c.get("lease_epoch")?,
        lease_owner: c.get::<Option<i64>>("lease_owner")?.map(WorkerId),
        lease_deadline: c.time_opt("lease_deadline")?,
        available_at: c.time("available_at")?,
        result: c.get("result")?,
        last_error: c.get("last_error")?,
        created_at: c.time("created_at")?,
        finished_at: c.time_opt("finished_at")?,
        done_by: c.get::<Option<i64>>("done_by")?.map(WorkerId),
        leased_at: c.time_opt("leased_at")?,
        probe_step: c
            .get::<Option<i64>>("probe_step")?
            .map(|step| convert(op, "probe_step", step))
            .transpose()?,
        plan: c.get("plan")?,
        checkpoint_digest: c.get("checkpoint_digest")?,
        progress: c.get("progress")?,
    })
}

fn run_from_row(op: &'static str, row: &SqliteRow) -> Result<Run> {
    let c = Columns { op, row };
    Ok(Run {
        id: RunId(c.get("id")?),
        state: c.stored("state")?,
        config_yaml: c.get("config_yaml")?,
        model_digest: c.get("model_digest")?,
        dataset_digest: c.get("dataset_digest")?,
        criterion: c.get("criterion")?,
        max_attempts: c.number("max_attempts")?,
        created_at: c.time("created_at")?,
        finished_at: c.time_opt("finished_at")?,
        spec: c.get("spec")?,
        error: c.get("error")?,
        plan: c.get("plan")?,
    })
}

fn worker_from_row(op: &'static str, row: &SqliteRow) -> Result<Worker> {
    let c = Columns { op, row };
    Ok(Worker {
        id: WorkerId(c.get("id")?),
        name: c.get("name")?,
        device: c.get("device")?,
        registered_at: c.time("registered_at")?,
        last_seen_at: c.time("last_seen_at")?,
    })
}

fn artifact_from_row(op: &'static str, row: &SqliteRow) -> Result<Artifact> {
    let c = Columns { op, row };
    Ok(Artifact {
        digest: c.get("digest")?,
        size_bytes: c.number("size_bytes")?,
        media_type: c.get("media_type")?,
        created_at: c.time("created_at")?,
    })
}

/// A job's lease as `job_fence` reads it, with what its run allows.
struct Fence {
    job: NamedJob,
    state: JobState,
    epoch: i64,
    attempt: u32,
    max_attempts: u32,
}

impl Fence {
    /// Reads the fence of job `id` inside the transaction `tx`; `None` when there is no such job.
    async fn read(tx: &mut SqliteConnection, op: &'static str, id: JobId) -> Result<Option<Self>> {
        let row = sqlx::query(sql("job_fence"))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend(op))?;
        row.map(|row| {
            let c = Columns { op, row: &row };
            Ok(Self {
                job: NamedJob {
                    run_id: RunId(c.get("run_id")?),
                    kind: c.stored("kind")?,
                },
                state: c.stored("state")?,
                epoch: c.get("lease_epoch")?,
                attempt: c.number("attempt")?,
                max_attempts: c.number("max_attempts")?,
            })
        })
        .transpose()
    }

    /// Whether `lease` is the job's current lease.
    fn is_current(&self, lease: Lease) -> bool {
        self.state == JobState::Leased && self.epoch == lease.epoch
    }

    /// Whether `lease` was current when the job's run was cancelled.
    fn cancelled_under(&self, lease: Lease) -> bool {
        self.state == JobState::Cancelled && self.epoch == lease.epoch
    }
}

/// How a lease that ended with an error (a failed attempt, an expiry) leaves its job, as `job_end_attempt`
/// binds it: queued again at `now + backoff` while `retry`, failed at `now` otherwise.
struct EndAttempt<'a> {
    job: JobId,
    epoch: i64,
    attempt: u32,
    retry: bool,
    error: &'a str,
}

impl EndAttempt<'_> {
    /// Applies it inside `tx`; answers where the job went.
    async fn apply(
        &self,
        tx: &mut SqliteConnection,
        op: &'static str,
        now: OffsetDateTime,
        backoff: Backoff,
    ) -> Result<RescueOutcome> {
        let (state, available_at, finished_at, outcome) = if self.retry {
            let available_at = after(op, "backoff", now, backoff.delay(self.attempt))?;
            let outcome = RescueOutcome::Requeued {
                available_at: from_micros(op, "available_at", available_at)?,
            };
            (JobState::Queued, Some(available_at), None, outcome)
        } else {
            (JobState::Failed, None, Some(micros(now)), RescueOutcome::Failed)
        };
        let ended = sqlx::query(sql("job_end_attempt"))
            .bind(self.job.0)
            .bind(self.epoch)
            .bind(Stored(state))
            .bind(available_at)
            .bind(finished_at)
            .bind(self.error)
            .execute(&mut *tx)
            .await
            .map_err(backend(op))?;
        if ended.rows_affected() != 1 {
            return Err(StoreError::Backend {
                op,
                source: format!("job {} lease {} changed under the write lock", self.job, self.epoch).into(),
            });
        }
        Ok(outcome)
    }
}

impl JobStore for SqliteStore {
    async fn artifact_get(&self, digest: &str) -> Result<Option<Artifact>> {
        const OP: &str = "artifact_get";
        let row = sqlx::query(sql(OP))
            .bind(digest)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend(OP))?;
        row.map(|row| artifact_from_row(OP, &row)).transpose()
    }

    async fn artifact_put(&self, params: ArtifactPutParams) -> Result<ArtifactPutOutcome> {
        const OP: &str = "artifact_put";
        let size = params.validate()?;
        let (_turn, mut tx) = self.write(OP).await?;
        let inserted = sqlx::query(sql("artifact_insert"))
            .bind(&params.digest)
            .bind(size)
            .bind(&params.media_type)
            .bind(micros(params.now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend(OP))?;
        if inserted.is_some() {
            tx.commit().await.map_err(backend(OP))?;
            return Ok(ArtifactPutOutcome::Created);
        }
        let stored = sqlx::query(sql("artifact_get"))
            .bind(&params.digest)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend(OP))?;
        let stored = artifact_from_row(OP, &stored)?;
        if stored.size_bytes == params.size_bytes && stored.media_type == params.media_type {
            Ok(ArtifactPutOutcome::AlreadyStored)
        } else {
            Err(StoreError::ArtifactConflict {
                digest: params.digest,
                stored_size: stored.size_bytes,
                stored_media_type: stored.media_type,
                size: params.size_bytes,
                media_type: params.media_type,
            })
        }
    }

    async fn job_claim(&self, params: JobClaimParams) -> Result<Vec<ClaimedJob>> {
        const OP: &str = "job_claim";
        if params.workers.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = after(OP, "lease_duration", params.now, params.lease_duration)?;
        let workers: Vec<i64> = params.workers.iter().map(|w| w.0).collect();
        let (_turn, mut tx) = self.write(OP).await?;
        let unknown: Option<i64> = sqlx::query_scalar(sql("worker_first_unknown"))
            .bind(Value::from(workers.as_slice()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend(OP))?;
        if let Some(worker) = unknown {
            return Err(StoreError::WorkerNotFound {
                op: OP,
                worker: WorkerId(worker),
            });
        }
        let assigned = assign_claims(&mut tx, OP, &params).await?;
        let mut claimed = Vec::with_capacity(assigned.len());
        for (job, worker) in assigned.into_iter().zip(workers) {
            let Some(job) = job else {
                continue;
            };
            let row = sqlx::query(sql("job_lease"))
                .bind(job)
                .bind(worker)
                .bind(deadline)
                .bind(micros(params.now))
                .fetch_one(&mut *tx)
                .await
                .map_err(backend(OP))?;
            let c = Columns { op: OP, row: &row };
            claimed.push(ClaimedJob {
                lease: Lease {
                    job_id: JobId(c.get("id")?),
                    epoch: c.get("lease_epoch")?,
                },
                run_id: RunId(c.get("run_id")?),
                kind: c.stored("kind")?,
                group_key: c.get("group_key")?,
                ratio: c.get("ratio")?,
                attempt: c.number("attempt")?,
                owner: WorkerId(c.get("lease_owner")?),
                deadline: c.time("lease_deadline")?,
            });
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(claimed)
    }

    async fn job_complete(&self, params: JobCompleteParams) -> Result<Vec<Completed>> {
        const OP: &str = "job_complete";
        if params.completions.is_empty() {
            return Ok(Vec::new());
        }
        let (_turn, mut tx) = self.write(OP).await?;
        let mut answers = Vec::with_capacity(params.completions.len());
        // In order: a lease repeated later in the batch finds its job done by the first, as a retry would.
        for completion in &params.completions {
            let lease = completion.lease;
            let accepted = sqlx::query(sql("job_accept"))
                .bind(lease.job_id.0)
                .bind(lease.epoch)
                .bind(&completion.result)
                .bind(micros(params.now))
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend(OP))?;
            let answer = match accepted {
                Some(row) => {
                    let c = Columns { op: OP, row: &row };
                    Completed {
                        outcome: CompleteOutcome::Accepted,
                        job: Some(NamedJob {
                            run_id: RunId(c.get("run_id")?),
                            kind: c.stored("kind")?,
                        }),
                    }
                }
                None => match Fence::read(&mut tx, OP, lease.job_id).await? {
                    None => Completed {
                        outcome: CompleteOutcome::NotFound,
                        job: None,
                    },
                    Some(fence) => Completed {
                        outcome: if fence.epoch != lease.epoch {
                            CompleteOutcome::Stale
                        } else if fence.state == JobState::Done {
                            CompleteOutcome::AlreadyAccepted
                        } else if fence.state == JobState::Cancelled {
                            CompleteOutcome::Cancelled
                        } else {
                            CompleteOutcome::Stale
                        },
                        job: Some(fence.job),
                    },
                },
            };
            answers.push(answer);
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(answers)
    }

    async fn job_fail(&self, params: JobFailParams) -> Result<FailOutcome> {
        const OP: &str = "job_fail";
        let lease = params.lease;
        let (_turn, mut tx) = self.write(OP).await?;
        let Some(fence) = Fence::read(&mut tx, OP, lease.job_id).await? else {
            return Ok(FailOutcome::NotFound);
        };
        if !fence.is_current(lease) {
            return Ok(if fence.cancelled_under(lease) {
                FailOutcome::Cancelled
            } else {
                FailOutcome::Stale
            });
        }
        let end = EndAttempt {
            job: lease.job_id,
            epoch: lease.epoch,
            attempt: fence.attempt,
            retry: params.retryable && fence.attempt < fence.max_attempts,
            error: &params.error,
        };
        let outcome = end.apply(&mut tx, OP, params.now, params.backoff).await?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(match outcome {
            RescueOutcome::Requeued { available_at } => FailOutcome::Retrying {
                attempt: fence.attempt,
                available_at,
            },
            RescueOutcome::Failed => FailOutcome::Failed { attempt: fence.attempt },
        })
    }

    async fn job_get(&self, id: JobId) -> Result<Option<Job>> {
        const OP: &str = "job_get";
        let row = sqlx::query(sql(OP))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend(OP))?;
        row.map(|row| job_from_row(OP, &row)).transpose()
    }

    async fn job_heartbeat(&self, params: JobHeartbeatParams) -> Result<HeartbeatOutcome> {
        const OP: &str = "job_heartbeat";
        let lease = params.lease;
        let deadline = after(OP, "lease_duration", params.now, params.lease_duration)?;
        let (_turn, mut tx) = self.write(OP).await?;
        let extended = sqlx::query(sql("job_extend"))
            .bind(lease.job_id.0)
            .bind(lease.epoch)
            .bind(deadline)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend(OP))?;
        let outcome = if let Some(row) = extended {
            let c = Columns { op: OP, row: &row };
            let (deadline, owner) = (c.time("lease_deadline")?, c.get::<i64>("lease_owner")?);
            sqlx::query(sql("worker_seen"))
                .bind(owner)
                .bind(micros(params.now))
                .execute(&mut *tx)
                .await
                .map_err(backend(OP))?;
            HeartbeatOutcome::Extended { deadline }
        } else {
            match Fence::read(&mut tx, OP, lease.job_id).await? {
                None => HeartbeatOutcome::NotFound,
                Some(fence) if fence.cancelled_under(lease) => HeartbeatOutcome::Cancelled,
                Some(_) => HeartbeatOutcome::Lost,
            }
        };
        tx.commit().await.map_err(backend(OP))?;
        Ok(outcome)
    }

    async fn job_list_by_run(&self, run_id: RunId) -> Result<Vec<Job>> {
        const OP: &str = "job_list_by_run";
        let rows = sqlx::query(sql(OP))
            .bind(run_id.0)
            .fetch_all(&self.reader)
            .await
            .map_err(backend(OP))?;
        rows.iter().map(|row| job_from_row(OP, row)).collect()
    }

    async fn job_release(&self, params: super::JobReleaseParams) -> Result<super::ReleaseOutcome> {
        const OP: &str = "job_release";
        let lease = params.lease;
        let (_turn, mut tx) = self.write(OP).await?;
        let Some(fence) = Fence::read(&mut tx, OP, lease.job_id).await? else {
            return Ok(super::ReleaseOutcome::NotFound);
        };
        if !fence.is_current(lease) {
            return Ok(if fence.cancelled_under(lease) {
                super::ReleaseOutcome::Cancelled
            } else {
                super::ReleaseOutcome::Stale
            });
        }
        sqlx::query(sql(OP))
            .bind(lease.job_id.0)
            .bind(lease.epoch)
            .bind(micros(params.now))
            .bind(&params.error)
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(super::ReleaseOutcome::Released)
    }

    async fn job_rescue_expired(&self, params: JobRescueExpiredParams) -> Result<Vec<RescuedJob>> {
        const OP: &str = "job_rescue_expired";
        let (_turn, mut tx) = self.write(OP).await?;
        let rows = sqlx::query(sql("job_expired"))
            .bind(micros(params.now))
            .bind(i64::from(params.limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend(OP))?;
        let mut rescued = Vec::with_capacity(rows.len());
        for row in &rows {
            let c = Columns { op: OP, row };
            let lease = Lease {
                job_id: JobId(c.get("id")?),
                epoch: c.get("lease_epoch")?,
            };
            let attempt: u32 = c.number("attempt")?;
            let owner: i64 = c.get("lease_owner")?;
            let error = format!(
                "lease expired (worker {owner}, attempt {attempt}, epoch {})",
                lease.epoch
            );
            let end = EndAttempt {
                job: lease.job_id,
                epoch: lease.epoch,
                attempt,
                retry: attempt < c.number::<u32>("max_attempts")?,
                error: &error,
            };
            let outcome = end.apply(&mut tx, OP, params.now, params.backoff).await?;
            rescued.push(RescuedJob {
                lease,
                attempt,
                outcome,
            });
        }
        tx.commit().await.map_err(backend(OP))?;
        rescued.sort_by_key(|r| r.lease.job_id);
        Ok(rescued)
    }

    async fn job_skip(&self, params: JobSkipParams) -> Result<u64> {
        const OP: &str = "job_skip";
        let (_turn, mut tx) = self.write(OP).await?;
        let skipped = sqlx::query(sql(OP))
            .bind(micros(params.now))
            .bind(params.run_id.0)
            .bind(&params.group_key)
            .bind(params.above_ratio)
            .bind(&params.reason)
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(skipped.rows_affected())
    }

    async fn job_recover_add(&self, params: JobRecoverAddParams) -> Result<bool> {
        const OP: &str = "job_recover_add";
        let (_turn, mut tx) = self.write(OP).await?;
        let added = sqlx::query(sql(OP))
            .bind(params.run_id.0)
            .bind(micros(params.now))
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(added.rows_affected() > 0)
    }

    async fn run_recover(&self, params: RunRecoverParams) -> Result<RunRecoverOutcome> {
        const OP: &str = "run_recover";
        let (_turn, mut tx) = self.write(OP).await?;
        let Some(prior) = run_state(&mut tx, OP, params.run_id).await? else {
            return Ok(RunRecoverOutcome::NotFound);
        };
        let exported = export_state(&mut tx, OP, params.run_id).await? == Some(JobState::Done);
        let recover: Option<Stored<JobState>> = sqlx::query_scalar(sql("job_recover_state"))
            .bind(params.run_id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend(OP))?;
        let outcome = RunRecoverOutcome::of(prior, exported, recover.map(|s| s.0));
        if outcome != RunRecoverOutcome::Queued {
            return Ok(outcome);
        }
        sqlx::query(sql("run_reopen_recover"))
            .bind(params.run_id.0)
            .bind(&params.config_yaml)
            .bind(&params.spec)
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        sqlx::query(sql("job_reset_recover"))
            .bind(params.run_id.0)
            .bind(micros(params.now))
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        sqlx::query(sql("job_recover_add"))
            .bind(params.run_id.0)
            .bind(micros(params.now))
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(RunRecoverOutcome::Queued)
    }

    async fn job_recover_progress(&self, params: JobRecoverProgressParams) -> Result<RecoverProgressOutcome> {
        const OP: &str = "job_recover_progress";
        let lease = params.lease;
        let (_turn, mut tx) = self.write(OP).await?;
        let outcome = match Fence::read(&mut tx, OP, lease.job_id).await? {
            None => RecoverProgressOutcome::NotFound,
            Some(fence) if fence.job.kind != JobKind::Recover => RecoverProgressOutcome::NotRecover(fence.job.kind),
            Some(fence) if !fence.is_current(lease) => RecoverProgressOutcome::Stale,
            Some(_) => {
                if let Some(digest) = &params.checkpoint_digest {
                    require_artifact(&mut tx, OP, "checkpoint_digest", digest).await?;
                }
                sqlx::query(sql(OP))
                    .bind(lease.job_id.0)
                    .bind(lease.epoch)
                    .bind(&params.checkpoint_digest)
                    .bind(&params.progress)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend(OP))?;
                RecoverProgressOutcome::Kept
            }
        };
        tx.commit().await.map_err(backend(OP))?;
        Ok(outcome)
    }

    async fn job_probe_add(&self, params: JobProbeAddParams) -> Result<u64> {
        const OP: &str = "job_probe_add";
        let steps = params.validate()?;
        let (_turn, mut tx) = self.write(OP).await?;
        let run = run_state_plan(&mut tx, OP, params.run_id).await?;
        if !matches!(run, Some((RunState::Running, None))) {
            return Ok(0);
        }
        let mut added = 0;
        for (step, (_, plan)) in steps.iter().zip(&params.probes) {
            added += sqlx::query(sql(OP))
                .bind(params.run_id.0)
                .bind(micros(params.now))
                .bind(step)
                .bind(plan)
                .execute(&mut *tx)
                .await
                .map_err(backend(OP))?
                .rows_affected();
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(added)
    }

    async fn ping(&self) -> Result<()> {
        const OP: &str = "ping";
        sqlx::query(sql(OP)).execute(&self.reader).await.map_err(backend(OP))?;
        Ok(())
    }

    fn write_failure(&self) -> Option<WriteFailure> {
        self.health.current()
    }

    async fn run_cancel(&self, params: RunCancelParams) -> Result<RunCancelOutcome> {
        const OP: &str = "run_cancel";
        let (_turn, mut tx) = self.write(OP).await?;
        let prior = run_state(&mut tx, OP, params.run_id).await?;
        match prior {
            None => return Ok(RunCancelOutcome::NotFound),
            Some(RunState::Running) => {}
            Some(state) => return Ok(RunCancelOutcome::AlreadyFinal(state)),
        }
        let (queued, leased) = unfinished_jobs(&mut tx, OP, params.run_id).await?;
        end_run(&mut tx, OP, params.run_id, params.now, RunState::Cancelled, None).await?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(RunCancelOutcome::Cancelled { queued, leased })
    }

    async fn run_create(&self, params: RunCreateParams) -> Result<RunId> {
        const OP: &str = "run_create";
        params.validate()?;
        let now = micros(params.now);
        let (_turn, mut tx) = self.write(OP).await?;
        for (field, digest) in [
            ("model_digest", &params.model_digest),
            ("dataset_digest", &params.dataset_digest),
        ] {
            require_artifact(&mut tx, OP, field, digest).await?;
        }
        let id: i64 = sqlx::query_scalar(sql("run_insert"))
            .bind(now)
            .bind(&params.config_yaml)
            .bind(&params.model_digest)
            .bind(&params.dataset_digest)
            .bind(&params.criterion)
            .bind(i64::from(params.max_attempts))
            .bind(&params.spec)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend(OP))?;
        // Ids in creation order: the baseline, the cells as given, the export.
        let baseline = [(JobKind::Baseline, None, None, None)];
        let cells = params.cells.iter().map(|c| {
            (
                JobKind::Cell,
                Some(c.group_key.as_str()),
                Some(c.ratio),
                c.result.as_ref(),
            )
        });
        let export = params.export.then_some((JobKind::Export, None, None, None));
        for (kind, group_key, ratio, result) in baseline.into_iter().chain(cells).chain(export) {
            sqlx::query(sql("job_insert"))
                .bind(id)
                .bind(Stored(kind))
                .bind(group_key)
                .bind(ratio)
                .bind(result)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend(OP))?;
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(RunId(id))
    }

    async fn run_finish(&self, params: RunFinishParams) -> Result<bool> {
        const OP: &str = "run_finish";
        params.validate()?;
        let (_turn, mut tx) = self.write(OP).await?;
        if params.state == RunState::Done {
            // Done only while nothing of the run is left to run: the caller decided from jobs it read earlier,
            // and a job queued since (an export queued anew, a retried cell) is work a done run would drop.
            let (queued, leased) = unfinished_jobs(&mut tx, OP, params.run_id).await?;
            if queued + leased > 0 {
                return Ok(false);
            }
        }
        let moved = end_run(
            &mut tx,
            OP,
            params.run_id,
            params.now,
            params.state,
            params.error.as_deref(),
        )
        .await?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(moved)
    }

    async fn run_get(&self, id: RunId) -> Result<Option<Run>> {
        const OP: &str = "run_get";
        let row = sqlx::query(sql(OP))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend(OP))?;
        row.map(|row| run_from_row(OP, &row)).transpose()
    }

    async fn run_list(&self, state: Option<RunState>) -> Result<Vec<RunSummary>> {
        const OP: &str = "run_list";
        let rows = sqlx::query(sql(OP))
            .bind(state.map(Stored))
            .fetch_all(&self.reader)
            .await
            .map_err(backend(OP))?;
        rows.iter()
            .map(|row| {
                let c = Columns { op: OP, row };
                let mut jobs = JobCounts::default();
                for &state in JobState::ALL {
                    jobs.add(state, c.number(state.as_str())?);
                }
                Ok(RunSummary {
                    run: run_from_row(OP, row)?,
                    jobs,
                })
            })
            .collect()
    }

    async fn run_plan(&self, params: RunPlanParams) -> Result<RunPlanOutcome> {
        const OP: &str = "run_plan";
        let (_turn, mut tx) = self.write(OP).await?;
        let run = run_state_plan(&mut tx, OP, params.run_id).await?;
        let Some((prior, plan)) = run else {
            return Ok(RunPlanOutcome::NotFound);
        };
        let export = export_state(&mut tx, OP, params.run_id).await?;
        if let Some(refused) = params.refusal(prior, plan.is_some(), export) {
            return Ok(refused);
        }
        sqlx::query(sql("run_set_plan"))
            .bind(params.run_id.0)
            .bind(&params.plan)
            .bind(params.export)
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        match (params.export, export) {
            (false, _) => {}
            // A replacing plan queues the export anew, reset in place (its epoch kept, fencing off a worker that
            // ran the old plan); the pipeline's keeps it as it is.
            (true, Some(_)) => {
                if params.mode == super::PlanMode::Replace {
                    sqlx::query(sql("job_reset_export"))
                        .bind(params.run_id.0)
                        .bind(micros(params.now))
                        .execute(&mut *tx)
                        .await
                        .map_err(backend(OP))?;
                }
            }
            (true, None) => {
                sqlx::query(sql("job_insert"))
                    .bind(params.run_id.0)
                    .bind(Stored(JobKind::Export))
                    .bind(None::<&str>)
                    .bind(None::<f64>)
                    .bind(None::<&Value>)
                    .bind(micros(params.now))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend(OP))?;
            }
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(RunPlanOutcome::Planned)
    }

    async fn run_replan(&self, params: RunReplanParams) -> Result<RunPlanOutcome> {
        const OP: &str = "run_replan";
        let (_turn, mut tx) = self.write(OP).await?;
        let run = run_state_plan(&mut tx, OP, params.run_id).await?;
        let prior = match run {
            None => return Ok(RunPlanOutcome::NotFound),
            Some((state, _)) => state,
        };
        if !matches!(prior, RunState::Running | RunState::Done) {
            return Ok(RunPlanOutcome::NotPlannable(prior));
        }
        let export = export_state(&mut tx, OP, params.run_id).await?;
        if export == Some(JobState::Leased) {
            return Ok(RunPlanOutcome::ExportLeased);
        }
        sqlx::query(sql("job_delete_export"))
            .bind(params.run_id.0)
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        sqlx::query(sql(OP))
            .bind(params.run_id.0)
            .bind(&params.spec)
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(RunPlanOutcome::Planned)
    }

    async fn run_retry(&self, params: super::RunRetryParams) -> Result<super::RunRetryOutcome> {
        const OP: &str = "run_retry";
        let (_turn, mut tx) = self.write(OP).await?;
        let prior = run_state(&mut tx, OP, params.run_id).await?;
        match prior {
            None => return Ok(super::RunRetryOutcome::NotFound),
            Some(RunState::Running | RunState::Done) => {}
            Some(state) => return Ok(super::RunRetryOutcome::NotRetryable(state)),
        }
        let requeued = sqlx::query(sql("job_requeue_failed"))
            .bind(params.run_id.0)
            .bind(micros(params.now))
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?
            .rows_affected();
        let reopened = requeued > 0
            && sqlx::query(sql("run_reopen"))
                .bind(params.run_id.0)
                .execute(&mut *tx)
                .await
                .map_err(backend(OP))?
                .rows_affected()
                == 1;
        tx.commit().await.map_err(backend(OP))?;
        Ok(super::RunRetryOutcome::Requeued { requeued, reopened })
    }

    async fn worker_get(&self, id: WorkerId) -> Result<Option<Worker>> {
        const OP: &str = "worker_get";
        let row = sqlx::query(sql(OP))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend(OP))?;
        row.map(|row| worker_from_row(OP, &row)).transpose()
    }

    async fn worker_list(&self) -> Result<Vec<WorkerSummary>> {
        const OP: &str = "worker_list";
        let rows = sqlx::query(sql(OP))
            .fetch_all(&self.reader)
            .await
            .map_err(backend(OP))?;
        let mut workers: Vec<WorkerSummary> = Vec::new();
        // Rows come by worker, then job: a new worker id starts a summary, each lease adds to the last one.
        for row in &rows {
            let c = Columns { op: OP, row };
            let id = WorkerId(c.get("id")?);
            if workers.last().is_none_or(|w| w.worker.id != id) {
                workers.push(WorkerSummary {
                    worker: worker_from_row(OP, row)?,
                    leases: Vec::new(),
                });
            }
            if let Some(job) = c.get::<Option<i64>>("lease_job")? {
                let run = RunId(c.get("lease_run")?);
                if let Some(summary) = workers.last_mut() {
                    summary.leases.push((JobId(job), run));
                }
            }
        }
        Ok(workers)
    }

    async fn worker_register(&self, params: WorkerRegisterParams) -> Result<Worker> {
        const OP: &str = "worker_register";
        let (_turn, mut tx) = self.write(OP).await?;
        let row = sqlx::query(sql(OP))
            .bind(&params.name)
            .bind(&params.device)
            .bind(micros(params.now))
            .fetch_one(&mut *tx)
            .await
            .map_err(backend(OP))?;
        let worker = worker_from_row(OP, &row)?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(worker)
    }
}

/// The job each entry of `params.workers` gets inside `tx`, by [`JobClaimParams::affinity`]'s three passes
/// (the Postgres store's `job_claim` does the same in one statement): `None` for an entry left without one.
async fn assign_claims(
    tx: &mut SqliteConnection,
    op: &'static str,
    params: &JobClaimParams,
) -> Result<Vec<Option<i64>>> {
    let now = micros(params.now);
    let affinities = params.entry_affinities();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let mut assigned: Vec<Option<i64>> = vec![None; affinities.len()];
    let mut taken = HashSet::new();
    // Each pass reads, per key, as many candidates as it has entries for that key, in the pass's order.
    let mut group_want: BTreeMap<(i64, &str), usize> = BTreeMap::new();
    let mut run_want: BTreeMap<i64, usize> = BTreeMap::new();
    for affinity in affinities.iter().flatten() {
        if let Some(group) = &affinity.group_key {
            *group_want.entry((affinity.run_id.0, group)).or_default() += 1;
        }
        *run_want.entry(affinity.run_id.0).or_default() += 1;
    }
    let mut group_jobs: HashMap<(i64, &str), VecDeque<i64>> = HashMap::new();
    for (&(run, group), &n) in &group_want {
        let ids: Vec<i64> = sqlx::query_scalar(sql("job_claimable_group"))
            .bind(now)
            .bind(run)
            .bind(group)
            .bind(count(n))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend(op))?;
        group_jobs.insert((run, group), ids.into());
    }
    for (slot, affinity) in assigned.iter_mut().zip(&affinities) {
        let Some(ClaimAffinity {
            run_id,
            group_key: Some(group),
            ..
        }) = affinity
        else {
            continue;
        };
        if let Some(job) = group_jobs
            .get_mut(&(run_id.0, group.as_str()))
            .and_then(VecDeque::pop_front)
        {
            taken.insert(job);
            *slot = Some(job);
        }
    }
    let mut run_jobs: HashMap<i64, VecDeque<i64>> = HashMap::new();
    for (&run, &n) in &run_want {
        let ids: Vec<i64> = sqlx::query_scalar(sql("job_claimable_run"))
            .bind(now)
            .bind(run)
            .bind(count(n))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend(op))?;
        run_jobs.insert(run, ids.into());
    }
    for (slot, affinity) in assigned.iter_mut().zip(&affinities) {
        let (None, Some(affinity)) = (*slot, affinity) else {
            continue;
        };
        let queue = run_jobs.entry(affinity.run_id.0).or_default();
        while let Some(job) = queue.pop_front() {
            if taken.insert(job) {
                *slot = Some(job);
                break;
            }
        }
    }
    let mut rest: VecDeque<i64> = sqlx::query_scalar(sql("job_claimable"))
        .bind(now)
        .bind(count(assigned.len()))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend(op))?
        .into();
    for slot in assigned.iter_mut().filter(|slot| slot.is_none()) {
        while let Some(job) = rest.pop_front() {
            if taken.insert(job) {
                *slot = Some(job);
                break;
            }
        }
    }
    Ok(assigned)
}

/// Ends the running run `run` in `state` inside `tx`, with its queued and leased jobs: cancelled with a
/// cancelled run, skipped otherwise. Answers false (nothing changed) when the run was not running.
async fn end_run(
    tx: &mut SqliteConnection,
    op: &'static str,
    run: RunId,
    now: OffsetDateTime,
    state: RunState,
    error: Option<&str>,
) -> Result<bool> {
    let ended = sqlx::query(sql("run_end"))
        .bind(run.0)
        .bind(micros(now))
        .bind(Stored(state))
        .bind(error)
        .execute(&mut *tx)
        .await
        .map_err(backend(op))?;
    if ended.rows_affected() == 0 {
        return Ok(false);
    }
    let jobs_end = if state == RunState::Cancelled {
        JobState::Cancelled
    } else {
        JobState::Skipped
    };
    sqlx::query(sql("job_end_unfinished"))
        .bind(run.0)
        .bind(micros(now))
        .bind(Stored(jobs_end))
        .execute(&mut *tx)
        .await
        .map_err(backend(op))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every query the store runs, by name.
    const USED: [&str; 43] = [
        "artifact_get",
        "artifact_insert",
        "job_accept",
        "job_claimable",
        "job_claimable_group",
        "job_claimable_run",
        "job_count_unfinished",
        "job_delete_export",
        "job_end_attempt",
        "job_end_unfinished",
        "job_expired",
        "job_export_state",
        "job_extend",
        "job_fence",
        "job_get",
        "job_insert",
        "job_lease",
        "job_list_by_run",
        "job_probe_add",
        "job_recover_add",
        "job_recover_progress",
        "job_recover_state",
        "job_release",
        "job_requeue_failed",
        "job_reset_export",
        "job_reset_recover",
        "job_skip",
        "ping",
        "run_end",
        "run_get",
        "run_insert",
        "run_list",
        "run_reopen",
        "run_reopen_recover",
        "run_replan",
        "run_set_plan",
        "run_state",
        "run_state_plan",
        "worker_first_unknown",
        "worker_get",
        "worker_list",
        "worker_register",
        "worker_seen",
    ];

    #[test]
    fn every_query_is_named_once_and_used() {
        QUERIES.check_used(&USED);
    }

    #[test]
    fn queries_spell_states_and_kinds_as_the_enums_do() {
        QUERIES.check_state_names();
    }

    #[test]
    fn no_query_reads_the_database_clock() {
        QUERIES.check_no_clock(&[
            "'now'",
            "current_timestamp",
            "current_date",
            "current_time",
            "unixepoch()",
        ]);
    }

    #[test]
    fn times_are_whole_microseconds_in_utc() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_750_000_000_123_456_789).unwrap();
        assert_eq!(micros(t), 1_750_000_000_123_456);
        assert_eq!(
            from_micros("test", "t", micros(t)).unwrap(),
            OffsetDateTime::from_unix_timestamp_nanos(1_750_000_000_123_456_000).unwrap()
        );
        let before_epoch = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(micros(before_epoch), -1, "truncated towards the past, so order is kept");
        assert_eq!(micros(OffsetDateTime::UNIX_EPOCH), 0);
    }
}
