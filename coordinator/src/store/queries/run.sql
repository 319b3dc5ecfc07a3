-- Runs. Every query names its parameters; times are bound by the caller, never `now()`.

-- name: run_create
-- $1 now, $2 config_yaml, $3 model_digest, $4 dataset_digest, $5 criterion, $6 max_attempts,
-- $7 cell group keys (text[]), $8 cell ratios (float8[], same length), $9 whether to add the export job,
-- $10 spec (jsonb), $11 cell results (jsonb[], same length; NULL for a cell to compute, a result for one known
-- already, created done).
-- One statement: the run, its baseline, its cells and its export appear together or not at all.
WITH new_run AS (
    INSERT INTO run (config_yaml, model_digest, dataset_digest, criterion, max_attempts, created_at, spec)
    VALUES ($2, $3, $4, $5, $6, $1, $10)
    RETURNING id
),
new_job AS (
    INSERT INTO job (run_id, kind, group_key, ratio, state, result, finished_at, available_at, created_at)
    SELECT r.id, j.kind, j.group_key, j.ratio,
           CASE WHEN j.result IS NULL THEN 'queued' ELSE 'done' END::job_state,
           j.result, CASE WHEN j.result IS NULL THEN NULL ELSE $1 END, $1, $1
    FROM new_run r,
    LATERAL (
        SELECT 'baseline'::job_kind AS kind, NULL::text AS group_key, NULL::float8 AS ratio, NULL::jsonb AS result,
               0::bigint AS ord
        UNION ALL
        SELECT 'cell', c.group_key, c.ratio, c.result, c.ord
        FROM unnest($7::text[], $8::float8[], $11::jsonb[]) WITH ORDINALITY AS c(group_key, ratio, result, ord)
        UNION ALL
        SELECT 'export', NULL, NULL, NULL, 9223372036854775807
        WHERE $9
    ) j
    ORDER BY j.ord
    RETURNING id
)
SELECT id FROM new_run;

-- name: run_get
-- $1 id
SELECT id, state, config_yaml, model_digest, dataset_digest, criterion, max_attempts, created_at, finished_at,
       spec, error, plan
FROM run
WHERE id = $1;

-- name: run_list
-- $1 state (NULL for every run).
-- Runs newest first, each with its jobs counted by state.
-- The pipeline runs this several times a second while a run's jobs complete. Each run's jobs are counted on
-- their own (one walk of job_run per run): grouping the join of runs and jobs instead sorted every job row
-- with its run's columns (config, spec), tens of milliseconds for a run of 20,000 jobs.
SELECT r.id, r.state, r.config_yaml, r.model_digest, r.dataset_digest, r.criterion, r.max_attempts, r.created_at,
       r.finished_at, r.spec, r.error, r.plan, c.queued, c.leased, c.done, c.failed, c.cancelled, c.skipped
FROM run r
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE j.state = 'queued') AS queued,
           count(*) FILTER (WHERE j.state = 'leased') AS leased,
           count(*) FILTER (WHERE j.state = 'done') AS done,
           count(*) FILTER (WHERE j.state = 'failed') AS failed,
           count(*) FILTER (WHERE j.state = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE j.state = 'skipped') AS skipped
    FROM job j
    WHERE j.run_id = r.id
) c
WHERE $1::run_state IS NULL OR r.state = $1::run_state
ORDER BY r.id DESC;

-- name: run_finish
-- $1 run id, $2 now, $3 final state ('done' or 'failed'), $4 error.
-- Ends a running run and, in the same statement, skips its queued and leased jobs (locked in id order). A
-- skipped leased job's worker hears "lost" at its next heartbeat; its completion is stale. A run ends done
-- only while none of its jobs is queued or leased: the caller decided from jobs it read earlier, and a queued
-- job since (an export queued anew, a retried cell) is work a done run would throw away. One row: whether the
-- run moved.
WITH finished_run AS (
    UPDATE run r
    SET state = $3::run_state, error = $4, finished_at = $2
    WHERE r.id = $1 AND r.state = 'running'
      AND ($3::run_state <> 'done'
           OR NOT EXISTS (SELECT 1 FROM job j WHERE j.run_id = r.id AND j.state IN ('queued', 'leased')))
    RETURNING r.id
),
unfinished AS MATERIALIZED (
    SELECT j.id
    FROM job j
    WHERE j.run_id = (SELECT id FROM finished_run) AND j.state IN ('queued', 'leased')
    ORDER BY j.id
    FOR UPDATE
),
skipped AS (
    UPDATE job j
    SET state = 'skipped', finished_at = $2, lease_owner = NULL, lease_deadline = NULL
    FROM unfinished u
    WHERE j.id = u.id AND j.state IN ('queued', 'leased')
    RETURNING j.id
)
SELECT count(*) AS moved FROM finished_run;

-- name: run_plan
-- $1 run id, $2 now, $3 plan (jsonb), $4 whether to queue an export job, $5 whether the plan replaces an earlier
-- one (PlanMode::Replace) rather than being the pipeline's first (PlanMode::Initial).
-- The run, then its export, are locked (run first, as run_cancel and run_finish lock them) and the decision
-- is RunPlanParams::refusal's, on their latest state: of two coordinators planning the same run, the second
-- finds it planned and changes nothing; a claim (which skips locked rows) cannot lease the export between the
-- decision and its reset. Initial: a running run without a plan is planned, and gets an export when it has
-- none (one it has is kept as it is). Replace: a running or done run is planned; with $4 its export, unless
-- leased, is queued anew and the run runs again; without, only a run with no export is planned.
-- One row: the run's state before (NULL when there is no such run), whether it had a plan, its export's state
-- before (NULL for none), and whether the plan was stored.
WITH target AS MATERIALIZED (
    SELECT id, state, plan IS NOT NULL AS had_plan FROM run WHERE id = $1 FOR UPDATE
),
export AS MATERIALIZED (
    SELECT j.id, j.state
    FROM job j
    WHERE j.run_id = (SELECT id FROM target) AND j.kind = 'export'
    FOR UPDATE
),
decision AS MATERIALIZED (
    SELECT t.id
    FROM target t
    WHERE CASE
        WHEN NOT $5 THEN t.state = 'running' AND NOT t.had_plan
        WHEN $4 THEN t.state IN ('running', 'done') AND NOT EXISTS (SELECT 1 FROM export e WHERE e.state = 'leased')
        ELSE t.state IN ('running', 'done') AND NOT EXISTS (SELECT 1 FROM export)
    END
),
planned AS (
    UPDATE run r
    SET plan = $3,
        state = CASE WHEN $4 THEN 'running' ELSE r.state END::run_state,
        finished_at = CASE WHEN $4 THEN NULL ELSE r.finished_at END
    FROM decision d
    WHERE r.id = d.id
    RETURNING r.id
),
-- Replace only: an export that exists is reset in place (its epoch stays, so a worker that ran the old plan is
-- fenced off).
reset_export AS (
    UPDATE job j
    SET state = 'queued', result = NULL, last_error = NULL, finished_at = NULL, done_by = NULL, attempt = 0,
        lease_owner = NULL, lease_deadline = NULL, available_at = $2
    FROM decision d, export e
    WHERE j.id = e.id AND e.state <> 'leased' AND $4 AND $5
),
new_export AS (
    INSERT INTO job (run_id, kind, available_at, created_at)
    SELECT d.id, 'export', $2, $2
    FROM decision d
    WHERE $4 AND NOT EXISTS (SELECT 1 FROM export)
)
SELECT (SELECT state FROM target) AS prior_state,
       (SELECT had_plan FROM target) AS had_plan,
       (SELECT state FROM export) AS export_state,
       (SELECT count(*) FROM planned) AS planned;

-- name: run_cancel
-- $1 run id, $2 now.
-- Cancels a running run and, in the same statement, its queued and leased jobs, so no claim hands them out
-- afterwards. The jobs are locked in id order first (a claim holding one finishes before; later claims skip
-- them), and their latest state counts as the state they left. Leased jobs keep their lease epoch: the
-- worker's next heartbeat or completion under it answers "cancelled".
-- One row: the run's state before (NULL when there is no such run), and how many queued and leased jobs were
-- cancelled.
WITH cancelled_run AS (
    UPDATE run
    SET state = 'cancelled', finished_at = $2
    WHERE id = $1 AND state = 'running'
    RETURNING id
),
unfinished AS MATERIALIZED (
    SELECT j.id, j.state
    FROM job j
    WHERE j.run_id = (SELECT id FROM cancelled_run) AND j.state IN ('queued', 'leased')
    ORDER BY j.id
    FOR UPDATE
),
cancelled_job AS (
    UPDATE job j
    SET state = 'cancelled', finished_at = $2, lease_owner = NULL, lease_deadline = NULL
    FROM unfinished u
    WHERE j.id = u.id AND j.state IN ('queued', 'leased')
    RETURNING j.id
)
SELECT
    (SELECT state FROM run WHERE id = $1) AS prior_state,
    (SELECT count(*) FROM cancelled_run) AS run_cancelled,
    (SELECT count(*) FROM unfinished u JOIN cancelled_job c USING (id) WHERE u.state = 'queued') AS queued,
    (SELECT count(*) FROM unfinished u JOIN cancelled_job c USING (id) WHERE u.state = 'leased') AS leased;

-- name: run_replan
-- $1 run id, $2 spec (jsonb).
-- A new Prune target for a running or done run whose export is not leased: the spec replaced, the plan
-- cleared, the export job removed, the run running again. The run, then its export, are locked first (as in
-- run_plan), so a claim cannot lease the export in between. One row: the run's state before (NULL when there
-- is no such run), its export's state before (NULL for none) and whether it was planned anew.
WITH target AS MATERIALIZED (
    SELECT id, state FROM run WHERE id = $1 FOR UPDATE
),
export AS MATERIALIZED (
    SELECT j.id, j.state
    FROM job j
    WHERE j.run_id = (SELECT id FROM target) AND j.kind = 'export'
    FOR UPDATE
),
open AS (
    SELECT t.id FROM target t
    WHERE t.state IN ('running', 'done') AND NOT EXISTS (SELECT 1 FROM export e WHERE e.state = 'leased')
),
dropped AS (
    DELETE FROM job j USING open o WHERE j.run_id = o.id AND j.kind = 'export'
),
replanned AS (
    UPDATE run r
    SET spec = $2, plan = NULL, state = 'running', finished_at = NULL, error = NULL
    FROM open o
    WHERE r.id = o.id
    RETURNING r.id
)
SELECT (SELECT state FROM target) AS prior_state, (SELECT state FROM export) AS export_state,
       (SELECT count(*) FROM replanned) AS planned;

-- name: run_retry
-- $1 run id, $2 now.
-- Queues a running or done run's failed jobs again with fresh attempts (attempt 0, claimable at $2, their last
-- error kept), and makes a done run that had any running again. A failed or cancelled run is left as it is.
-- The run is locked first, then its failed jobs in id order. One row unless the run does not exist: its state
-- before, how many jobs were queued again, and whether the run was reopened.
WITH target AS MATERIALIZED (
    SELECT r.id, r.state
    FROM run r
    WHERE r.id = $1
    FOR UPDATE
),
failed AS MATERIALIZED (
    SELECT j.id
    FROM job j
    WHERE j.run_id = (SELECT id FROM target WHERE state IN ('running', 'done')) AND j.state = 'failed'
    ORDER BY j.id
    FOR UPDATE
),
requeued AS (
    UPDATE job j
    SET state = 'queued', attempt = 0, available_at = $2, finished_at = NULL, lease_owner = NULL,
        lease_deadline = NULL
    FROM failed f
    WHERE j.id = f.id AND j.state = 'failed'
    RETURNING j.id
),
reopened AS (
    UPDATE run r
    SET state = 'running', finished_at = NULL
    FROM target t
    WHERE r.id = t.id AND t.state = 'done' AND EXISTS (SELECT 1 FROM failed)
    RETURNING r.id
)
SELECT t.state AS prior_state, (SELECT count(*) FROM requeued) AS requeued,
       (SELECT count(*) FROM reopened) AS reopened
FROM target t;

-- name: run_recover
-- $1 run id, $2 config yaml, $3 spec, $4 now.
-- Reopens an ended run (done, failed or cancelled) whose export is done for a recovery (`coordinator
-- recover`): its config and spec are replaced, its recover job queued anew in place (its epoch kept, fencing
-- off a worker of an earlier recovery, its checkpoint and progress dropped) or added. The run is locked first,
-- so of two calls the second sees it running. One row unless the run does not exist: its state before,
-- whether its export is done, and its recover job's state (NULL for none).
WITH target AS MATERIALIZED (
    SELECT r.id, r.state
    FROM run r
    WHERE r.id = $1
    FOR UPDATE
),
exported AS (
    SELECT EXISTS (SELECT 1 FROM job e WHERE e.run_id = $1 AND e.kind = 'export' AND e.state = 'done') AS done
),
reopened AS (
    UPDATE run r
    SET state = 'running', finished_at = NULL, error = NULL, config_yaml = $2, spec = $3
    FROM target t
    WHERE r.id = t.id AND t.state IN ('done', 'failed', 'cancelled') AND (SELECT done FROM exported)
    RETURNING r.id
),
requeued AS (
    UPDATE job j
    SET state = 'queued', attempt = 0, available_at = $4, result = NULL, last_error = NULL, finished_at = NULL,
        done_by = NULL, lease_owner = NULL, lease_deadline = NULL, checkpoint_digest = NULL, progress = NULL
    FROM reopened o
    WHERE j.run_id = o.id AND j.kind = 'recover'
    RETURNING j.id
),
added AS (
    INSERT INTO job (run_id, kind, available_at, created_at)
    SELECT o.id, 'recover', $4, $4
    FROM reopened o
    WHERE NOT EXISTS (SELECT 1 FROM job j WHERE j.run_id = o.id AND j.kind = 'recover')
    RETURNING id
)
SELECT t.state AS prior_state, (SELECT done FROM exported) AS exported,
       (SELECT j.state FROM job j WHERE j.run_id = $1 AND j.kind = 'recover') AS recover_state
FROM target t;
