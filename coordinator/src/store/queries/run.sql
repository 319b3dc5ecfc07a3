-- Runs. Every query names its parameters; times are bound by the caller, never `now()`.

-- name: run_create
-- $1 now, $2 config_yaml, $3 model_digest, $4 dataset_digest, $5 criterion, $6 max_attempts,
-- $7 cell group keys (text[]), $8 cell ratios (float8[], same length), $9 whether to add the export job.
-- One statement: the run, its baseline, its cells and its export appear together or not at all.
WITH new_run AS (
    INSERT INTO run (config_yaml, model_digest, dataset_digest, criterion, max_attempts, created_at)
    VALUES ($2, $3, $4, $5, $6, $1)
    RETURNING id
),
new_job AS (
    INSERT INTO job (run_id, kind, group_key, ratio, available_at, created_at)
    SELECT r.id, j.kind, j.group_key, j.ratio, $1, $1
    FROM new_run r,
    LATERAL (
        SELECT 'baseline'::job_kind AS kind, NULL::text AS group_key, NULL::float8 AS ratio, 0::bigint AS ord
        UNION ALL
        SELECT 'cell', c.group_key, c.ratio, c.ord
        FROM unnest($7::text[], $8::float8[]) WITH ORDINALITY AS c(group_key, ratio, ord)
        UNION ALL
        SELECT 'export', NULL, NULL, 9223372036854775807
        WHERE $9
    ) j
    ORDER BY j.ord
    RETURNING id
)
SELECT id FROM new_run;

-- name: run_get
-- $1 id
SELECT id, state, config_yaml, model_digest, dataset_digest, criterion, max_attempts, created_at, finished_at
FROM run
WHERE id = $1;

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
