-- Recover jobs (issue 25) on SQLite: what migrations/0005_recover_kind and 0006_recover_jobs give Postgres. The
-- job table is rebuilt as 0002 rebuilt it, with the 'recover' kind and the checkpoint and progress columns, its
-- rows copied with their ids and its indexes made again. 'recover' sorts after every other kind, so the claim
-- dispatches it last.

CREATE TABLE job_recover (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          INTEGER NOT NULL REFERENCES run (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('baseline', 'cell', 'export', 'probe', 'recover')),
    group_key       TEXT,
    -- REAL is an 8-byte IEEE float: a ratio of 0.1 reads back as 0.1.
    ratio           REAL,
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'leased', 'done', 'failed', 'cancelled', 'skipped')),
    -- The number of the attempt in progress (leased) or last made: every claim adds one.
    attempt         INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0 AND attempt <= 2147483647),
    -- Bumped by every claim and never reset; heartbeat, complete and fail must name the current one.
    lease_epoch     INTEGER NOT NULL DEFAULT 0 CHECK (lease_epoch >= 0),
    lease_owner     INTEGER REFERENCES worker (id),
    lease_deadline  INTEGER,
    -- Earliest time a queued job may be claimed: retries back off through it.
    available_at    INTEGER NOT NULL,
    result          TEXT CHECK (result IS NULL OR json_valid(result)),
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    -- The worker whose completion was accepted: the lease owner at that moment.
    done_by         INTEGER REFERENCES worker (id),
    -- When the current or last lease began.
    leased_at       INTEGER,
    -- Probes: their place on the planner's chain and their plan (migrations/0004_probe_jobs.up.sql).
    probe_step      INTEGER,
    plan            TEXT CHECK (plan IS NULL OR json_valid(plan)),
    -- Recover jobs: the last checkpoint uploaded and the last progress reported
    -- (migrations/0006_recover_jobs.up.sql).
    checkpoint_digest TEXT REFERENCES artifact (digest),
    progress        TEXT CHECK (progress IS NULL OR json_valid(progress)),
    CONSTRAINT job_recover_state_only_on_recover
        CHECK (kind = 'recover' OR (checkpoint_digest IS NULL AND progress IS NULL)),
    CONSTRAINT job_probe_has_step_and_plan
        CHECK ((kind = 'probe') = (probe_step IS NOT NULL) AND (probe_step IS NULL) = (plan IS NULL)
               AND (probe_step IS NULL OR probe_step > 0)),
    CONSTRAINT job_cell_has_group_and_ratio
        CHECK ((kind = 'cell') = (group_key IS NOT NULL) AND (group_key IS NULL) = (ratio IS NULL)),
    CONSTRAINT job_ratio_in_range CHECK (ratio IS NULL OR (ratio > 0 AND ratio < 1)),
    CONSTRAINT job_leased_iff_lease
        CHECK ((state = 'leased') = (lease_owner IS NOT NULL AND lease_deadline IS NOT NULL)
               AND (lease_owner IS NULL) = (lease_deadline IS NULL)),
    CONSTRAINT job_leased_was_claimed CHECK (state <> 'leased' OR (attempt > 0 AND lease_epoch > 0)),
    CONSTRAINT job_done_iff_result CHECK ((state = 'done') = (result IS NOT NULL)),
    CONSTRAINT job_failed_has_error CHECK (state <> 'failed' OR last_error IS NOT NULL),
    CONSTRAINT job_finished_iff_final
        CHECK ((state IN ('done', 'failed', 'cancelled', 'skipped')) = (finished_at IS NOT NULL))
) STRICT;

INSERT INTO job_recover (id, run_id, kind, group_key, ratio, state, attempt, lease_epoch, lease_owner, lease_deadline, available_at, result, last_error, created_at, finished_at, done_by, leased_at, probe_step, plan)
SELECT id, run_id, kind, group_key, ratio, state, attempt, lease_epoch, lease_owner, lease_deadline, available_at, result, last_error, created_at, finished_at, done_by, leased_at, probe_step, plan FROM job;
DROP TABLE job;
ALTER TABLE job_recover RENAME TO job;

-- A run has at most one baseline and one export, and one cell per (group, ratio).
CREATE UNIQUE INDEX job_one_baseline ON job (run_id) WHERE kind = 'baseline';
CREATE UNIQUE INDEX job_one_export ON job (run_id) WHERE kind = 'export';
CREATE UNIQUE INDEX job_cell_key ON job (run_id, group_key, ratio) WHERE kind = 'cell';
-- Listing a run's jobs.
CREATE INDEX job_run ON job (run_id, id);
-- The claim walks queued jobs in dispatch order.
CREATE INDEX job_queued ON job (run_id, kind, group_key, ratio, id) WHERE state = 'queued';
-- The claim's export gate: does the run still have a job other than its export that is not done or skipped?
CREATE INDEX job_run_pending ON job (run_id) WHERE kind <> 'export' AND state NOT IN ('done', 'skipped');
-- The rescuer scans leases by deadline.
CREATE INDEX job_lease_deadline ON job (lease_deadline, id) WHERE state = 'leased';
-- Only here: `worker_list` joins workers to their leases, which SQLite does as a loop over workers probing job.
CREATE INDEX job_lease_owner ON job (lease_owner, id) WHERE state = 'leased';
-- A run probes each step at most once.
CREATE UNIQUE INDEX job_probe_step ON job (run_id, probe_step) WHERE kind = 'probe';
-- A run recovers once at a time.
CREATE UNIQUE INDEX job_one_recover ON job (run_id) WHERE kind = 'recover';
