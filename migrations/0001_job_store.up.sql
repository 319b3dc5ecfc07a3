-- The job store: runs, their jobs, the workers that lease them, and the artifacts they exchange.
-- Tables are singular nouns. Rules between fields are CHECK constraints, so no code path can break them.
-- Timestamps have no defaults: the store binds every time from its clock (never the database's `now()`), so
-- tests can move time and a second implementation behaves the same.

-- What a job is. Baseline: the unpruned model's metrics; cell: one (group, ratio) of the grid;
-- export: the final structural prune and export.
CREATE TYPE job_kind AS ENUM ('baseline', 'cell', 'export');

-- Where a job is. Claiming moves queued -> leased; workers move leased -> done, or failed / back to queued
-- (with a backoff) when an attempt fails; the rescuer does the same with expired leases; cancelling a run moves
-- its queued and leased jobs to cancelled; the planner marks cells it no longer needs skipped.
-- done, failed, cancelled and skipped are final.
CREATE TYPE job_state AS ENUM ('queued', 'leased', 'done', 'failed', 'cancelled', 'skipped');

CREATE TYPE run_state AS ENUM ('running', 'done', 'failed', 'cancelled');

CREATE TABLE artifact (
    digest      text PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    media_type  text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE run (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state           run_state NOT NULL DEFAULT 'running',
    config_yaml     text NOT NULL,
    model_digest    text NOT NULL REFERENCES artifact (digest),
    dataset_digest  text NOT NULL REFERENCES artifact (digest),
    criterion       text NOT NULL,
    -- Attempts a job of this run gets: a failed or expired attempt number `max_attempts` fails the job.
    max_attempts    integer NOT NULL CHECK (max_attempts > 0),
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    CONSTRAINT run_finished_iff_final CHECK ((state = 'running') = (finished_at IS NULL))
);

CREATE TABLE worker (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL,
    device         text NOT NULL,
    registered_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL
);

CREATE TABLE job (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES run (id) ON DELETE CASCADE,
    kind            job_kind NOT NULL,
    group_key       text,
    -- float8, never real: a ratio of 0.1 must read back as 0.1.
    ratio           double precision,
    state           job_state NOT NULL DEFAULT 'queued',
    -- The number of the attempt in progress (leased) or last made: every claim adds one.
    attempt         integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- Bumped by every claim and never reset; heartbeat, complete and fail must name the current one. It stays
    -- on the row after the lease ends, so a late or repeated call of that attempt is recognised.
    lease_epoch     bigint NOT NULL DEFAULT 0 CHECK (lease_epoch >= 0),
    lease_owner     bigint REFERENCES worker (id),
    lease_deadline  timestamptz,
    -- Earliest time a queued job may be claimed: retries back off through it.
    available_at    timestamptz NOT NULL,
    result          jsonb,
    last_error      text,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    CONSTRAINT job_cell_has_group_and_ratio
        CHECK ((kind = 'cell') = (group_key IS NOT NULL) AND (group_key IS NULL) = (ratio IS NULL)),
    CONSTRAINT job_ratio_in_range CHECK (ratio IS NULL OR (ratio > 0 AND ratio < 1)),
    CONSTRAINT job_leased_iff_lease
        CHECK ((state = 'leased') = (lease_owner IS NOT NULL AND lease_deadline IS NOT NULL)
               AND (lease_owner IS NULL) = (lease_deadline IS NULL)),
    -- Every lease comes from a claim, which counts the attempt and bumps the epoch.
    CONSTRAINT job_leased_was_claimed CHECK (state <> 'leased' OR (attempt > 0 AND lease_epoch > 0)),
    CONSTRAINT job_done_iff_result CHECK ((state = 'done') = (result IS NOT NULL)),
    CONSTRAINT job_failed_has_error CHECK (state <> 'failed' OR last_error IS NOT NULL),
    CONSTRAINT job_finished_iff_final
        CHECK ((state IN ('done', 'failed', 'cancelled', 'skipped')) = (finished_at IS NOT NULL))
);

-- A run has at most one baseline and one export, and one cell per (group, ratio).
CREATE UNIQUE INDEX job_one_baseline ON job (run_id) WHERE kind = 'baseline';
CREATE UNIQUE INDEX job_one_export ON job (run_id) WHERE kind = 'export';
CREATE UNIQUE INDEX job_cell_key ON job (run_id, group_key, ratio) WHERE kind = 'cell';
-- Listing a run's jobs.
CREATE INDEX job_run ON job (run_id, id);
-- The claim walks queued jobs in dispatch order: runs oldest first; in a run the baseline, then the cells by
-- (group, ratio), then the export.
CREATE INDEX job_queued ON job (run_id, kind, group_key, ratio, id) WHERE state = 'queued';
-- The claim's export gate: does the run still have a job other than its export that is not done or skipped?
CREATE INDEX job_run_pending ON job (run_id) WHERE kind <> 'export' AND state NOT IN ('done', 'skipped');
-- The rescuer scans leases by deadline.
CREATE INDEX job_lease_deadline ON job (lease_deadline, id) WHERE state = 'leased';
