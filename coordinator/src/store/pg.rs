//! [`PgStore`]: the [`JobStore`] on Postgres, the coordinator's only sqlx user besides the migrator.
//!
//! The SQL lives in `store/queries/<table>.sql`, one named query (`-- name: job_claim`) per operation, embedded
//! at compile time; this file binds parameters and maps rows and outcomes. Every change is one statement (a
//! read may follow only to name what went wrong), so no transaction stays open between calls, or while a
//! worker computes.

use std::sync::LazyLock;

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgRow};
use time::OffsetDateTime;

use super::query_files::QueryFiles;
use super::stored::{Stored, StoredEnum};
use super::{
    Artifact, ArtifactPutOutcome, ArtifactPutParams, ClaimedJob, CompleteOutcome, Completed, FailOutcome,
    HeartbeatOutcome, Job, JobClaimParams, JobCompleteParams, JobCounts, JobFailParams, JobHeartbeatParams, JobId,
    JobKind, JobProbeAddParams, JobRecoverAddParams, JobRecoverProgressParams, JobRescueExpiredParams, JobSkipParams,
    JobState, JobStore, Lease, NamedJob, RecoverProgressOutcome, RescueOutcome, RescuedJob, Result, Run,
    RunCancelOutcome, RunCancelParams, RunCreateParams, RunFinishParams, RunId, RunPlanOutcome, RunPlanParams,
    RunRecoverOutcome, RunRecoverParams, RunReplanParams, RunState, RunSummary, StoreError, Worker, WorkerId,
    WorkerRegisterParams, WorkerSummary,
};

/// The query files, by name.
const QUERY_FILES: [(&str, &str); 5] = [
    ("artifact.sql", include_str!("queries/artifact.sql")),
    ("health.sql", include_str!("queries/health.sql")),
    ("job.sql", include_str!("queries/job.sql")),
    ("run.sql", include_str!("queries/run.sql")),
    ("worker.sql", include_str!("queries/worker.sql")),
];

/// Every named query of [`QUERY_FILES`].
static QUERIES: LazyLock<QueryFiles> = LazyLock::new(|| QueryFiles::new("store/queries", &QUERY_FILES));

/// The named query.
fn sql(name: &str) -> &'static str {
    QUERIES.sql(name)
}

/// The Postgres [`JobStore`]: a handle onto a connection pool, cheap to clone.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

/// How the store's pool connects to the database at `url`: its options, with JIT compilation off.
///
/// The claim and the completion batch are planned before their arrays' sizes are known (or, in the custom
/// plans Postgres makes for a prepared statement's first runs, with them), and the estimates of a batch of
/// hundreds of jobs cross `jit_above_cost`: compiling the claim then took about 170 ms of a 250 ms claim of 256
/// polls on the 2-core AMD machine, and `run_list` over every run 330 ms. The store runs short statements
/// only, which JIT never pays back.
///
/// # Errors
///
/// `url` is not a Postgres URL.
pub fn connect_options(url: &str) -> std::result::Result<PgConnectOptions, sqlx::Error> {
    Ok(url.parse::<PgConnectOptions>()?.options([("jit", "off")]))
}

impl PgStore {
    /// A store on `pool`, whose database has [`MIGRATOR`](crate::MIGRATOR)'s migrations applied; its
    /// connections made with [`connect_options`].
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Wraps a database error as [`StoreError::Backend`] of the operation `op`.
fn backend(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Backend {
        op,
        source: Box::new(source),
    }
}

/// The name of the constraint a database error broke, if any.
fn broken_constraint(error: &sqlx::Error) -> Option<&str> {
    error.as_database_error().and_then(|e| e.constraint())
}

/// A count or number read from the database that must fit the Rust type.
fn convert<T: TryFrom<i64>>(op: &'static str, what: &str, value: i64) -> Result<T> {
    T::try_from(value).map_err(|_| StoreError::Backend {
        op,
        source: format!("{what}: {value} is out of range").into(),
    })
}

/// The contract enum in `column` of `row` (see [`Stored`]).
fn enum_column<T: StoredEnum>(row: &PgRow, column: &str) -> sqlx::Result<T> {
    row.try_get::<Stored<T>, _>(column).map(|stored| stored.0)
}

/// The contract enum in `column` of `row`, `None` for NULL.
fn enum_column_opt<T: StoredEnum>(row: &PgRow, column: &str) -> sqlx::Result<Option<T>> {
    row.try_get::<Option<Stored<T>>, _>(column)
        .map(|stored| stored.map(|stored| stored.0))
}

fn job_from_row(op: &'static str, row: &PgRow) -> Result<Job> {
    let get = |e| backend(op)(e);
    Ok(Job {
        id: JobId(row.try_get("id").map_err(get)?),
        run_id: RunId(row.try_get("run_id").map_err(get)?),
        kind: enum_column::<JobKind>(row, "kind").map_err(get)?,
        group_key: row.try_get("group_key").map_err(get)?,
        ratio: row.try_get("ratio").map_err(get)?,
        state: enum_column::<JobState>(row, "state").map_err(get)?,
        attempt: convert(
            op,
            "job.attempt",
            i64::from(row.try_get::<i32, _>("attempt").map_err(get)?),
        )?,
        lease_epoch: row.try_get("lease_epoch").map_err(get)?,
        lease_owner: row.try_get::<Option<i64>, _>("lease_owner").map_err(get)?.map(WorkerId),
        lease_deadline: row.try_get("lease_deadline").map_err(get)?,
        available_at: row.try_get("available_at").map_err(get)?,
        result: row.try_get("result").map_err(get)?,
        last_error: row.try_get("last_error").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        finished_at: row.try_get("finished_at").map_err(get)?,
        done_by: row.try_get::<Option<i64>, _>("done_by").map_err(get)?.map(WorkerId),
        leased_at: row.try_get("leased_at").map_err(get)?,
        probe_step: row
            .try_get::<Option<i32>, _>("probe_step")
            .map_err(get)?
            .map(|step| convert(op, "job.probe_step", i64::from(step)))
            .transpose()?,
        plan: row.try_get("plan").map_err(get)?,
        checkpoint_digest: row.try_get("checkpoint_digest").map_err(get)?,
        progress: row.try_get("progress").map_err(get)?,
    })
}

/// What `run_plan` answers from its one row: the run's state before (none: no such run), whether it had a plan,
/// its export's state before, and how many runs it planned. A refusal is explained by the rule the statement
/// decided by ([`RunPlanParams::refusal`]).
fn plan_outcome(op: &'static str, params: &RunPlanParams, row: &PgRow) -> Result<RunPlanOutcome> {
    let get = |e| backend(op)(e);
    let Some(prior) = enum_column_opt::<RunState>(row, "prior_state").map_err(get)? else {
        return Ok(RunPlanOutcome::NotFound);
    };
    if row.try_get::<i64, _>("planned").map_err(get)? == 1 {
        return Ok(RunPlanOutcome::Planned);
    }
    let had_plan: bool = row.try_get("had_plan").map_err(get)?;
    let export = enum_column_opt::<JobState>(row, "export_state").map_err(get)?;
    Ok(params
        .refusal(prior, had_plan, export)
        .unwrap_or(RunPlanOutcome::NotPlannable(prior)))
}

/// What `run_replan` answers from its one row: the run's state before (none: no such run), its export's state
/// before, and how many runs it changed.
fn replan_outcome(op: &'static str, row: &PgRow) -> Result<RunPlanOutcome> {
    let get = |e| backend(op)(e);
    let Some(prior) = enum_column_opt::<RunState>(row, "prior_state").map_err(get)? else {
        return Ok(RunPlanOutcome::NotFound);
    };
    let export = enum_column_opt::<JobState>(row, "export_state").map_err(get)?;
    Ok(if row.try_get::<i64, _>("planned").map_err(get)? == 1 {
        RunPlanOutcome::Planned
    } else if export == Some(JobState::Leased) && matches!(prior, RunState::Running | RunState::Done) {
        RunPlanOutcome::ExportLeased
    } else {
        RunPlanOutcome::NotPlannable(prior)
    })
}

fn run_from_row(op: &'static str, row: &PgRow) -> Result<Run> {
    let get = |e| backend(op)(e);
    Ok(Run {
        id: RunId(row.try_get("id").map_err(get)?),
        state: enum_column::<RunState>(row, "state").map_err(get)?,
        config_yaml: row.try_get("config_yaml").map_err(get)?,
        model_digest: row.try_get("model_digest").map_err(get)?,
        dataset_digest: row.try_get("dataset_digest").map_err(get)?,
        criterion: row.try_get("criterion").map_err(get)?,
        max_attempts: convert(
            op,
            "run.max_attempts",
            i64::from(row.try_get::<i32, _>("max_attempts").map_err(get)?),
        )?,
        created_at: row.try_get("created_at").map_err(get)?,
        finished_at: row.try_get("finished_at").map_err(get)?,
        spec: row.try_get("spec").map_err(get)?,
        error: row.try_get("error").map_err(get)?,
        plan: row.try_get("plan").map_err(get)?,
    })
}

fn worker_from_row(op: &'static str, row: &PgRow) -> Result<Worker> {
    let get = |e| backend(op)(e);
    Ok(Worker {
        id: WorkerId(row.try_get("id").map_err(get)?),
        name: row.try_get("name").map_err(get)?,
        device: row.try_get("device").map_err(get)?,
        registered_at: row.try_get("registered_at").map_err(get)?,
        last_seen_at: row.try_get("last_seen_at").map_err(get)?,
    })
}

fn artifact_from_row(op: &'static str, row: &PgRow) -> Result<Artifact> {
    let get = |e| backend(op)(e);
    Ok(Artifact {
        digest: row.try_get("digest").map_err(get)?,
        size_bytes: convert(op, "artifact.size_bytes", row.try_get("size_bytes").map_err(get)?)?,
        media_type: row.try_get("media_type").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
    })
}

/// `now + duration`, refusing a time past the calendar's end.
fn after(op: &'static str, now: OffsetDateTime, duration: std::time::Duration) -> Result<OffsetDateTime> {
    now.checked_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
        .ok_or_else(|| StoreError::InvalidInput {
            op,
            field: "lease_duration".into(),
            reason: format!("{duration:?} after {now} is past the end of the calendar"),
        })
}

impl JobStore for PgStore {
    async fn artifact_get(&self, digest: &str) -> Result<Option<Artifact>> {
        const OP: &str = "artifact_get";
        let row = sqlx::query(sql(OP))
            .bind(digest)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        row.map(|row| artifact_from_row(OP, &row)).transpose()
    }

    async fn artifact_put(&self, params: ArtifactPutParams) -> Result<ArtifactPutOutcome> {
        const OP: &str = "artifact_put";
        let size = params.validate()?;
        let inserted = sqlx::query(sql("artifact_insert"))
            .bind(&params.digest)
            .bind(size)
            .bind(&params.media_type)
            .bind(params.now)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        if inserted.is_some() {
            return Ok(ArtifactPutOutcome::Created);
        }
        let stored = self
            .artifact_get(&params.digest)
            .await?
            .ok_or_else(|| StoreError::Backend {
                op: OP,
                source: format!("artifact {} conflicted on insert but is not stored", params.digest).into(),
            })?;
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
        let deadline = after(OP, params.now, params.lease_duration)?;
        let workers: Vec<i64> = params.workers.iter().map(|w| w.0).collect();
        let affinities = params.entry_affinities();
        let affinity_runs: Vec<Option<i64>> = affinities.iter().map(|a| a.map(|a| a.run_id.0)).collect();
        let affinity_groups: Vec<Option<&str>> = affinities
            .iter()
            .map(|a| a.and_then(|a| a.group_key.as_deref()))
            .collect();
        let rows = match sqlx::query(sql(OP))
            .bind(params.now)
            .bind(&workers)
            .bind(deadline)
            .bind(&affinity_runs)
            .bind(&affinity_groups)
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            Err(error) if broken_constraint(&error) == Some("job_lease_owner_fkey") => {
                let worker: i64 = sqlx::query_scalar(sql("worker_first_unknown"))
                    .bind(&workers)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(backend(OP))?;
                return Err(StoreError::WorkerNotFound {
                    op: OP,
                    worker: WorkerId(worker),
                });
            }
            Err(error) => return Err(backend(OP)(error)),
        };
        rows.iter()
            .map(|row| {
                let get = |e| backend(OP)(e);
                Ok(ClaimedJob {
                    lease: Lease {
                        job_id: JobId(row.try_get("id").map_err(get)?),
                        epoch: row.try_get("lease_epoch").map_err(get)?,
                    },
                    run_id: RunId(row.try_get("run_id").map_err(get)?),
                    kind: enum_column::<JobKind>(row, "kind").map_err(get)?,
                    group_key: row.try_get("group_key").map_err(get)?,
                    ratio: row.try_get("ratio").map_err(get)?,
                    attempt: convert(
                        OP,
                        "job.attempt",
                        i64::from(row.try_get::<i32, _>("attempt").map_err(get)?),
                    )?,
                    owner: WorkerId(row.try_get("lease_owner").map_err(get)?),
                    deadline: row.try_get("lease_deadline").map_err(get)?,
                })
            })
            .collect()
    }

    async fn job_complete(&self, params: JobCompleteParams) -> Result<Vec<Completed>> {
        const OP: &str = "job_complete";
        if params.completions.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = params.completions.iter().map(|c| c.lease.job_id.0).collect();
        let epochs: Vec<i64> = params.completions.iter().map(|c| c.lease.epoch).collect();
        let results: Vec<Value> = params.completions.into_iter().map(|c| c.result).collect();
        let rows = sqlx::query(sql(OP))
            .bind(params.now)
            .bind(&ids)
            .bind(&epochs)
            .bind(&results)
            .fetch_all(&self.pool)
            .await
            .map_err(backend(OP))?;
        if rows.len() != ids.len() {
            return Err(StoreError::Backend {
                op: OP,
                source: format!("{} outcomes for {} completions", rows.len(), ids.len()).into(),
            });
        }
        rows.iter()
            .map(|row| {
                let get = |e| backend(OP)(e);
                let outcome = match row.try_get::<&str, _>("outcome").map_err(get)? {
                    "accepted" => CompleteOutcome::Accepted,
                    "already_accepted" => CompleteOutcome::AlreadyAccepted,
                    "stale" => CompleteOutcome::Stale,
                    "cancelled" => CompleteOutcome::Cancelled,
                    "not_found" => CompleteOutcome::NotFound,
                    other => {
                        return Err(StoreError::Backend {
                            op: OP,
                            source: format!("unknown outcome '{other}'").into(),
                        });
                    }
                };
                let run_id: Option<i64> = row.try_get("run_id").map_err(get)?;
                let kind = enum_column_opt::<JobKind>(row, "kind").map_err(get)?;
                let job = run_id.zip(kind).map(|(run_id, kind)| NamedJob {
                    run_id: RunId(run_id),
                    kind,
                });
                Ok(Completed { outcome, job })
            })
            .collect()
    }

    async fn job_fail(&self, params: JobFailParams) -> Result<FailOutcome> {
        const OP: &str = "job_fail";
        let row = sqlx::query(sql(OP))
            .bind(params.now)
            .bind(params.lease.job_id.0)
            .bind(params.lease.epoch)
            .bind(&params.error)
            .bind(params.retryable)
            .bind(params.backoff.base_micros())
            .bind(params.backoff.cap_micros())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        let Some(row) = row else {
            return Ok(FailOutcome::NotFound);
        };
        let get = |e| backend(OP)(e);
        let prior = enum_column::<JobState>(&row, "prior_state").map_err(get)?;
        let epoch: i64 = row.try_get("lease_epoch").map_err(get)?;
        let Some(state) = enum_column_opt::<JobState>(&row, "state").map_err(get)? else {
            return Ok(if prior == JobState::Cancelled && epoch == params.lease.epoch {
                FailOutcome::Cancelled
            } else {
                FailOutcome::Stale
            });
        };
        let attempt = convert(
            OP,
            "job.attempt",
            i64::from(row.try_get::<i32, _>("attempt").map_err(get)?),
        )?;
        match state {
            JobState::Queued => Ok(FailOutcome::Retrying {
                attempt,
                available_at: row.try_get("available_at").map_err(get)?,
            }),
            JobState::Failed => Ok(FailOutcome::Failed { attempt }),
            other => Err(StoreError::Backend {
                op: OP,
                source: format!("job_fail left the job {other:?}").into(),
            }),
        }
    }

    async fn job_get(&self, id: JobId) -> Result<Option<Job>> {
        const OP: &str = "job_get";
        let row = sqlx::query(sql(OP))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        row.map(|row| job_from_row(OP, &row)).transpose()
    }

    async fn job_heartbeat(&self, params: JobHeartbeatParams) -> Result<HeartbeatOutcome> {
        const OP: &str = "job_heartbeat";
        let deadline = after(OP, params.now, params.lease_duration)?;
        let row = sqlx::query(sql(OP))
            .bind(params.lease.job_id.0)
            .bind(params.lease.epoch)
            .bind(deadline)
            .bind(params.now)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        let Some(row) = row else {
            return Ok(HeartbeatOutcome::NotFound);
        };
        let get = |e| backend(OP)(e);
        if let Some(deadline) = row
            .try_get::<Option<OffsetDateTime>, _>("lease_deadline")
            .map_err(get)?
        {
            return Ok(HeartbeatOutcome::Extended { deadline });
        }
        let state = enum_column::<JobState>(&row, "state").map_err(get)?;
        let epoch: i64 = row.try_get("lease_epoch").map_err(get)?;
        Ok(if state == JobState::Cancelled && epoch == params.lease.epoch {
            HeartbeatOutcome::Cancelled
        } else {
            HeartbeatOutcome::Lost
        })
    }

    async fn job_list_by_run(&self, run_id: RunId) -> Result<Vec<Job>> {
        const OP: &str = "job_list_by_run";
        let rows = sqlx::query(sql(OP))
            .bind(run_id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(backend(OP))?;
        rows.iter().map(|row| job_from_row(OP, row)).collect()
    }

    async fn job_release(&self, params: super::JobReleaseParams) -> Result<super::ReleaseOutcome> {
        const OP: &str = "job_release";
        let row = sqlx::query(sql(OP))
            .bind(params.now)
            .bind(params.lease.job_id.0)
            .bind(params.lease.epoch)
            .bind(&params.error)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        let Some(row) = row else {
            return Ok(super::ReleaseOutcome::NotFound);
        };
        let get = |e| backend(OP)(e);
        if row.try_get::<i64, _>("released").map_err(get)? == 1 {
            return Ok(super::ReleaseOutcome::Released);
        }
        let prior = enum_column::<JobState>(&row, "prior_state").map_err(get)?;
        let epoch: i64 = row.try_get("lease_epoch").map_err(get)?;
        Ok(if prior == JobState::Cancelled && epoch == params.lease.epoch {
            super::ReleaseOutcome::Cancelled
        } else {
            super::ReleaseOutcome::Stale
        })
    }

    async fn job_rescue_expired(&self, params: JobRescueExpiredParams) -> Result<Vec<RescuedJob>> {
        const OP: &str = "job_rescue_expired";
        let rows = sqlx::query(sql(OP))
            .bind(params.now)
            .bind(i64::from(params.limit))
            .bind(params.backoff.base_micros())
            .bind(params.backoff.cap_micros())
            .fetch_all(&self.pool)
            .await
            .map_err(backend(OP))?;
        let mut rescued = rows
            .iter()
            .map(|row| {
                let get = |e| backend(OP)(e);
                let state = enum_column::<JobState>(row, "state").map_err(get)?;
                let outcome = match state {
                    JobState::Queued => RescueOutcome::Requeued {
                        available_at: row.try_get("available_at").map_err(get)?,
                    },
                    JobState::Failed => RescueOutcome::Failed,
                    other => {
                        return Err(StoreError::Backend {
                            op: OP,
                            source: format!("rescue left a job {other:?}").into(),
                        });
                    }
                };
                Ok(RescuedJob {
                    lease: Lease {
                        job_id: JobId(row.try_get("id").map_err(get)?),
                        epoch: row.try_get("lease_epoch").map_err(get)?,
                    },
                    attempt: convert(
                        OP,
                        "job.attempt",
                        i64::from(row.try_get::<i32, _>("attempt").map_err(get)?),
                    )?,
                    outcome,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        rescued.sort_by_key(|r| r.lease.job_id);
        Ok(rescued)
    }

    async fn job_skip(&self, params: JobSkipParams) -> Result<u64> {
        const OP: &str = "job_skip";
        let skipped: i64 = sqlx::query_scalar(sql(OP))
            .bind(params.now)
            .bind(params.run_id.0)
            .bind(&params.group_key)
            .bind(params.above_ratio)
            .bind(&params.reason)
            .fetch_one(&self.pool)
            .await
            .map_err(backend(OP))?;
        convert(OP, "skipped", skipped)
    }

    async fn job_recover_add(&self, params: JobRecoverAddParams) -> Result<bool> {
        const OP: &str = "job_recover_add";
        let added: i64 = sqlx::query_scalar(sql(OP))
            .bind(params.run_id.0)
            .bind(params.now)
            .fetch_one(&self.pool)
            .await
            .map_err(backend(OP))?;
        Ok(added > 0)
    }

    async fn run_recover(&self, params: RunRecoverParams) -> Result<RunRecoverOutcome> {
        const OP: &str = "run_recover";
        let row = sqlx::query(sql(OP))
            .bind(params.run_id.0)
            .bind(&params.config_yaml)
            .bind(&params.spec)
            .bind(params.now)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        let Some(row) = row else {
            return Ok(RunRecoverOutcome::NotFound);
        };
        let get = |e| backend(OP)(e);
        let prior = enum_column::<RunState>(&row, "prior_state").map_err(get)?;
        let exported = row.try_get::<bool, _>("exported").map_err(get)?;
        let recover = enum_column_opt::<JobState>(&row, "recover_state").map_err(get)?;
        Ok(RunRecoverOutcome::of(prior, exported, recover))
    }

    async fn job_recover_progress(&self, params: JobRecoverProgressParams) -> Result<RecoverProgressOutcome> {
        const OP: &str = "job_recover_progress";
        let row = sqlx::query(sql(OP))
            .bind(params.lease.job_id.0)
            .bind(params.lease.epoch)
            .bind(&params.checkpoint_digest)
            .bind(&params.progress)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| match (broken_constraint(&error), &params.checkpoint_digest) {
                (Some("job_checkpoint_digest_fkey"), Some(digest)) => StoreError::ArtifactNotFound {
                    op: OP,
                    field: "checkpoint_digest",
                    digest: digest.clone(),
                },
                _ => backend(OP)(error),
            })?;
        let Some(row) = row else {
            return Ok(RecoverProgressOutcome::NotFound);
        };
        let get = |e| backend(OP)(e);
        let kind = enum_column::<JobKind>(&row, "kind").map_err(get)?;
        Ok(if kind != JobKind::Recover {
            RecoverProgressOutcome::NotRecover(kind)
        } else if row.try_get::<bool, _>("kept").map_err(get)? {
            RecoverProgressOutcome::Kept
        } else {
            RecoverProgressOutcome::Stale
        })
    }

    async fn job_probe_add(&self, params: JobProbeAddParams) -> Result<u64> {
        const OP: &str = "job_probe_add";
        let steps = params.validate()?;
        let plans: Vec<&Value> = params.probes.iter().map(|(_, plan)| plan).collect();
        let added: i64 = sqlx::query_scalar(sql(OP))
            .bind(params.run_id.0)
            .bind(params.now)
            .bind(&steps)
            .bind(&plans)
            .fetch_one(&self.pool)
            .await
            .map_err(backend(OP))?;
        convert(OP, "added", added)
    }

    async fn ping(&self) -> Result<()> {
        const OP: &str = "ping";
        sqlx::query(sql(OP)).execute(&self.pool).await.map_err(backend(OP))?;
        Ok(())
    }

    async fn run_cancel(&self, params: RunCancelParams) -> Result<RunCancelOutcome> {
        const OP: &str = "run_cancel";
        let row = sqlx::query(sql(OP))
            .bind(params.run_id.0)
            .bind(params.now)
            .fetch_one(&self.pool)
            .await
            .map_err(backend(OP))?;
        let get = |e| backend(OP)(e);
        let Some(prior) = enum_column_opt::<RunState>(&row, "prior_state").map_err(get)? else {
            return Ok(RunCancelOutcome::NotFound);
        };
        if row.try_get::<i64, _>("run_cancelled").map_err(get)? == 1 {
            let count = |state: JobState| -> Result<u64> {
                convert(OP, state.as_str(), row.try_get(state.as_str()).map_err(get)?)
            };
            return Ok(RunCancelOutcome::Cancelled {
                queued: count(JobState::Queued)?,
                leased: count(JobState::Leased)?,
            });
        }
        if prior != RunState::Running {
            return Ok(RunCancelOutcome::AlreadyFinal(prior));
        }
        // Running when the statement began, final by the time it took the row's lock: a concurrent call
        // finished it. Report where it went.
        match self.run_get(params.run_id).await? {
            Some(run) => Ok(RunCancelOutcome::AlreadyFinal(run.state)),
            None => Ok(RunCancelOutcome::NotFound),
        }
    }

    async fn run_create(&self, params: RunCreateParams) -> Result<RunId> {
        const OP: &str = "run_create";
        params.validate()?;
        let (keys, ratios): (Vec<&str>, Vec<f64>) =
            params.cells.iter().map(|c| (c.group_key.as_str(), c.ratio)).unzip();
        let results: Vec<Option<&Value>> = params.cells.iter().map(|c| c.result.as_ref()).collect();
        let id = sqlx::query_scalar(sql(OP))
            .bind(params.now)
            .bind(&params.config_yaml)
            .bind(&params.model_digest)
            .bind(&params.dataset_digest)
            .bind(&params.criterion)
            .bind(i32::try_from(params.max_attempts).unwrap_or(i32::MAX))
            .bind(&keys)
            .bind(&ratios)
            .bind(params.export)
            .bind(&params.spec)
            .bind(&results)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| match broken_constraint(&error) {
                Some("run_model_digest_fkey") => StoreError::ArtifactNotFound {
                    op: OP,
                    field: "model_digest",
                    digest: params.model_digest.clone(),
                },
                Some("run_dataset_digest_fkey") => StoreError::ArtifactNotFound {
                    op: OP,
                    field: "dataset_digest",
                    digest: params.dataset_digest.clone(),
                },
                _ => backend(OP)(error),
            })?;
        // The run is created whatever happens here: statistics only steer the claim's plan.
        if let Err(error) = sqlx::query(sql("job_analyze")).execute(&self.pool).await {
            tracing::warn!(run_id = id, %error, "refreshing the planner's statistics on job failed");
        }
        Ok(RunId(id))
    }

    async fn run_get(&self, id: RunId) -> Result<Option<Run>> {
        const OP: &str = "run_get";
        let row = sqlx::query(sql(OP))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        row.map(|row| run_from_row(OP, &row)).transpose()
    }

    async fn run_finish(&self, params: RunFinishParams) -> Result<bool> {
        const OP: &str = "run_finish";
        params.validate()?;
        let moved: i64 = sqlx::query_scalar(sql(OP))
            .bind(params.run_id.0)
            .bind(params.now)
            .bind(Stored(params.state))
            .bind(&params.error)
            .fetch_one(&self.pool)
            .await
            .map_err(backend(OP))?;
        Ok(moved == 1)
    }

    async fn run_list(&self, state: Option<RunState>) -> Result<Vec<RunSummary>> {
        const OP: &str = "run_list";
        let rows = sqlx::query(sql(OP))
            .bind(state.map(Stored))
            .fetch_all(&self.pool)
            .await
            .map_err(backend(OP))?;
        rows.iter()
            .map(|row| {
                let mut jobs = JobCounts::default();
                for &state in JobState::ALL {
                    let column = state.as_str();
                    jobs.add(state, convert(OP, column, row.try_get(column).map_err(backend(OP))?)?);
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
        let row = sqlx::query(sql(OP))
            .bind(params.run_id.0)
            .bind(params.now)
            .bind(&params.plan)
            .bind(params.export)
            .bind(params.mode == super::PlanMode::Replace)
            .fetch_one(&self.pool)
            .await
            .map_err(backend(OP))?;
        plan_outcome(OP, &params, &row)
    }

    async fn run_replan(&self, params: RunReplanParams) -> Result<RunPlanOutcome> {
        const OP: &str = "run_replan";
        let row = sqlx::query(sql(OP))
            .bind(params.run_id.0)
            .bind(&params.spec)
            .fetch_one(&self.pool)
            .await
            .map_err(backend(OP))?;
        replan_outcome(OP, &row)
    }

    async fn run_retry(&self, params: super::RunRetryParams) -> Result<super::RunRetryOutcome> {
        const OP: &str = "run_retry";
        let row = sqlx::query(sql(OP))
            .bind(params.run_id.0)
            .bind(params.now)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        let Some(row) = row else {
            return Ok(super::RunRetryOutcome::NotFound);
        };
        let get = |e| backend(OP)(e);
        let prior = enum_column::<RunState>(&row, "prior_state").map_err(get)?;
        if !matches!(prior, RunState::Running | RunState::Done) {
            return Ok(super::RunRetryOutcome::NotRetryable(prior));
        }
        Ok(super::RunRetryOutcome::Requeued {
            requeued: convert(OP, "requeued", row.try_get("requeued").map_err(get)?)?,
            reopened: row.try_get::<i64, _>("reopened").map_err(get)? == 1,
        })
    }

    async fn worker_get(&self, id: WorkerId) -> Result<Option<Worker>> {
        const OP: &str = "worker_get";
        let row = sqlx::query(sql(OP))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(OP))?;
        row.map(|row| worker_from_row(OP, &row)).transpose()
    }

    async fn worker_register(&self, params: WorkerRegisterParams) -> Result<Worker> {
        const OP: &str = "worker_register";
        let row = sqlx::query(sql(OP))
            .bind(&params.name)
            .bind(&params.device)
            .bind(params.now)
            .fetch_one(&self.pool)
            .await
            .map_err(backend(OP))?;
        worker_from_row(OP, &row)
    }

    async fn worker_list(&self) -> Result<Vec<WorkerSummary>> {
        const OP: &str = "worker_list";
        let rows = sqlx::query(sql(OP)).fetch_all(&self.pool).await.map_err(backend(OP))?;
        rows.iter()
            .map(|row| {
                let get = |e| backend(OP)(e);
                let jobs: Vec<i64> = row.try_get("lease_jobs").map_err(get)?;
                let runs: Vec<i64> = row.try_get("lease_runs").map_err(get)?;
                Ok(WorkerSummary {
                    worker: worker_from_row(OP, row)?,
                    leases: jobs.into_iter().zip(runs).map(|(j, r)| (JobId(j), RunId(r))).collect(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every query the store runs, by name.
    const USED: [&str; 29] = [
        "artifact_get",
        "artifact_insert",
        "job_analyze",
        "job_claim",
        "job_complete",
        "job_fail",
        "job_get",
        "job_heartbeat",
        "job_list_by_run",
        "job_probe_add",
        "job_recover_add",
        "job_recover_progress",
        "job_release",
        "job_rescue_expired",
        "job_skip",
        "ping",
        "run_cancel",
        "run_create",
        "run_finish",
        "run_get",
        "run_list",
        "run_plan",
        "run_recover",
        "run_replan",
        "run_retry",
        "worker_first_unknown",
        "worker_get",
        "worker_list",
        "worker_register",
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
            "now()",
            "current_timestamp",
            "clock_timestamp",
            "statement_timestamp",
            "localtimestamp",
        ]);
    }
}
