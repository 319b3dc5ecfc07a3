-- The job store: runs, their jobs, the workers that lease them, and the artifacts they exchange.
-- Tables are singular nouns. Rules between fields are CHECK constraints, so no code path can break them.

-- What a job is. Baseline: the unpruned model's metrics; cell: one (group, ratio) of the grid;
-- export: the final structural prune and export.
CREATE TYPE job_kind AS ENUM ('baseline', 'cell', 'export');

-- Where a job is. The dispatcher moves queued -> leased; workers move leased -> done or failed (or back to
-- queued on a retryable failure); the rescuer returns expired leases to queued; cancelling a run moves its
-- unfinished jobs to cancelled; the planner marks cells it no longer needs skipped.
CREATE TYPE job_state AS ENUM ('queued', 'leased', 'done', 'failed', 'cancelled', 'skipped');

CREATE TYPE run_state AS ENUM ('running', 'done', 'failed', 'cancelled');

CREATE TABLE artifact (
    digest      text PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    media_type  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE run (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state           run_state NOT NULL DEFAULT 'running',
    config_yaml     text NOT NULL,
    model_digest    text NOT NULL REFERENCES artifact (digest),
    dataset_digest  text NOT NULL REFERENCES artifact (digest),
    criterion       text NOT NULL,
    max_attempts    integer NOT NULL CHECK (max_attempts > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT run_finished_iff_final CHECK ((state = 'running') = (finished_at IS NULL))
);

CREATE TABLE worker (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL,
    device         text NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES run (id) ON DELETE CASCADE,
    kind            job_kind NOT NULL,
    group_key       text,
    -- float8, never real: a ratio of 0.1 must read back as 0.1.
    ratio           double precision,
    state           job_state NOT NULL DEFAULT 'queued',
    attempt         integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- Bumped by every claim; heartbeat, complete and fail must name the current one.
    lease_epoch     bigint NOT NULL DEFAULT 0 CHECK (lease_epoch >= 0),
    lease_owner     bigint REFERENCES worker (id),
    lease_deadline  timestamptz,
    -- Earliest time a queued job may be claimed: retries back off through it.
    available_at    timestamptz NOT NULL DEFAULT now(),
    result          jsonb,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT job_cell_has_group_and_ratio
        CHECK ((kind = 'cell') = (group_key IS NOT NULL AND ratio IS NOT NULL)),
    CONSTRAINT job_ratio_in_range CHECK (ratio IS NULL OR (ratio > 0 AND ratio < 1)),
    CONSTRAINT job_leased_iff_lease
        CHECK ((state = 'leased') = (lease_owner IS NOT NULL AND lease_deadline IS NOT NULL)),
    CONSTRAINT job_done_iff_result CHECK ((state = 'done') = (result IS NOT NULL)),
    CONSTRAINT job_finished_iff_final
        CHECK ((state IN ('done', 'failed', 'cancelled', 'skipped')) = (finished_at IS NOT NULL))
);

-- A grid has one job per (group, ratio).
CREATE UNIQUE INDEX job_cell_key ON job (run_id, group_key, ratio) WHERE kind = 'cell';
-- The claim scans queued jobs in order of availability.
CREATE INDEX job_queued ON job (available_at, id) WHERE state = 'queued';
-- The rescuer scans leases by deadline.
CREATE INDEX job_lease_deadline ON job (lease_deadline) WHERE state = 'leased';
