-- Runs on SQLite. Every query names its parameters; times (µs since the epoch) are bound by the caller, never
-- read from a clock.

-- name: run_insert
-- $1 now, $2 config_yaml, $3 model_digest, $4 dataset_digest, $5 criterion, $6 max_attempts, $7 spec.
INSERT INTO run (config_yaml, model_digest, dataset_digest, criterion, max_attempts, created_at, spec)
VALUES ($2, $3, $4, $5, $6, $1, $7)
RETURNING id;

-- name: run_get
-- $1 id
SELECT id, state, config_yaml, model_digest, dataset_digest, criterion, max_attempts, created_at, finished_at,
       spec, error, plan
FROM run
WHERE id = $1;

-- name: run_state
-- $1 id
SELECT state FROM run WHERE id = $1;

-- name: run_state_plan
-- $1 id
SELECT state, plan FROM run WHERE id = $1;

-- name: run_list
-- $1 state (NULL for every run).
-- Runs newest first, each with its jobs counted by state.
SELECT r.id, r.state, r.config_yaml, r.model_digest, r.dataset_digest, r.criterion, r.max_attempts, r.created_at,
       r.finished_at, r.spec, r.error, r.plan,
       count(j.id) FILTER (WHERE j.state = 'queued') AS queued,
       count(j.id) FILTER (WHERE j.state = 'leased') AS leased,
       count(j.id) FILTER (WHERE j.state = 'done') AS done,
       count(j.id) FILTER (WHERE j.state = 'failed') AS failed,
       count(j.id) FILTER (WHERE j.state = 'cancelled') AS cancelled,
       count(j.id) FILTER (WHERE j.state = 'skipped') AS skipped
FROM run r
LEFT JOIN job j ON j.run_id = r.id
WHERE $1 IS NULL OR r.state = $1
GROUP BY r.id
ORDER BY r.id DESC;

-- name: run_end
-- $1 run id, $2 now, $3 final state, $4 error.
-- Ends a running run; changes no row when it is not running.
UPDATE run
SET state = $3, error = $4, finished_at = $2
WHERE id = $1 AND state = 'running';

-- name: run_set_plan
-- $1 run id, $2 plan, $3 whether an export is queued by it: then a finished (done) run runs again. Run after
-- RunPlanParams::refusal allowed it, in the same write transaction.
UPDATE run
SET plan = $2,
    state = CASE WHEN $3 THEN 'running' ELSE state END,
    finished_at = CASE WHEN $3 THEN NULL ELSE finished_at END
WHERE id = $1;

-- name: run_replan
-- $1 run id, $2 spec (JSON text). Run after run_state_plan in the same write transaction, for a running or done
-- run whose export is not leased (job_export_state): the spec replaced, the plan cleared, the run running again.
UPDATE run SET spec = $2, plan = NULL, state = 'running', finished_at = NULL, error = NULL WHERE id = $1;

-- name: job_export_state
-- $1 run id: its export's state (no row for none).
SELECT state FROM job WHERE run_id = $1 AND kind = 'export';

-- name: job_delete_export
-- $1 run id
DELETE FROM job WHERE run_id = $1 AND kind = 'export';

-- name: run_reopen
-- $1 run id.
-- A done run whose failed jobs were queued again runs until it ends anew.
UPDATE run
SET state = 'running', finished_at = NULL
WHERE id = $1 AND state = 'done';

-- name: run_reopen_recover
-- $1 run id, $2 config yaml, $3 spec.
-- An ended run (done, failed or cancelled) whose export is done runs again for a recovery (`coordinator
-- recover`), with the config and spec that say how.
UPDATE run
SET state = 'running', finished_at = NULL, error = NULL, config_yaml = $2, spec = $3
WHERE id = $1 AND state IN ('done', 'failed', 'cancelled');

-- name: job_recover_state
-- $1 run id: its recover job's state (no row for none).
SELECT state FROM job WHERE run_id = $1 AND kind = 'recover';

-- name: job_reset_recover
-- $1 run id, $2 now.
-- Queues a reopened run's recover job anew in place: its epoch kept (fencing off a worker of an earlier
-- recovery), its result, checkpoint and progress dropped.
UPDATE job
SET state = 'queued', attempt = 0, available_at = $2, result = NULL, last_error = NULL, finished_at = NULL,
    done_by = NULL, lease_owner = NULL, lease_deadline = NULL, checkpoint_digest = NULL, progress = NULL
WHERE run_id = $1 AND kind = 'recover';
