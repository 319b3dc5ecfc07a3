-- The job store on SQLite (`store::sqlite`, the embedded store of a local run): the schema that
-- migrations/0001_job_store and 0002_run_pipeline give Postgres, in one step, with the same tables, columns,
-- rules (CHECK constraints, by the same names) and indexes. Where SQLite differs:
-- - STRICT tables refuse a value of another type, as Postgres does.
-- - Enums are TEXT with a CHECK on their labels. The labels of job.kind sort alphabetically in dispatch order
--   (baseline, cell, export), as the Postgres enum's declaration order does, so the claim orders by the column.
-- - Times are INTEGER microseconds since the Unix epoch (UTC): Postgres' precision, and they compare and sort as
--   the instants do (RFC 3339 text does not once fractions of a second vary in length). The store converts them
--   and does the arithmetic (deadlines, backoffs) in Rust; no default reads a clock.
-- - JSON (spec, plan, result) is TEXT that json_valid() accepts, stored as the store wrote it.
-- - Ids are AUTOINCREMENT, never reused, as Postgres' identity columns: a job id with its lease epoch fences a
--   worker, so a deleted run's ids must not come back with epochs from 0.

CREATE TABLE artifact (
    digest      TEXT NOT NULL PRIMARY KEY CHECK (length(digest) = 64 AND digest NOT GLOB '*[^0-9a-f]*'),
    size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),
    media_type  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE run (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    state           TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed', 'cancelled')),
    config_yaml     TEXT NOT NULL,
    model_digest    TEXT NOT NULL REFERENCES artifact (digest),
    dataset_digest  TEXT NOT NULL REFERENCES artifact (digest),
    criterion       TEXT NOT NULL,
    -- Attempts a job of this run gets: a failed or expired attempt number `max_attempts` fails the job.
    max_attempts    INTEGER NOT NULL CHECK (max_attempts > 0 AND max_attempts <= 2147483647),
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    -- The submission's own description; see migrations/0002_run_pipeline.up.sql.
    spec            TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec)),
    -- Why a run failed.
    error           TEXT,
    -- The per-group ratios the planner chose (`{"<group key>": ratio}`).
    plan            TEXT CHECK (plan IS NULL OR json_valid(plan)),
    CONSTRAINT run_finished_iff_final CHECK ((state = 'running') = (finished_at IS NULL)),
    CONSTRAINT run_failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL)
) STRICT;

CREATE TABLE worker (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL,
    device         TEXT NOT NULL,
    registered_at  INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE job (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          INTEGER NOT NULL REFERENCES run (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('baseline', 'cell', 'export')),
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
-- The pipeline walks the running runs.
CREATE INDEX run_running ON run (id) WHERE state = 'running';
