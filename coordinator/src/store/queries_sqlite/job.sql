-- Jobs on SQLite: the claim, the lease fence (heartbeat, complete, fail), the rescuer's sweep, and reads.
-- Every query names its parameters; times (µs since the epoch) are bound by the caller, never read from a clock.
-- An operation runs its statements in one write transaction (`store::sqlite`), so a read that decides what to
-- change sees the latest state until the change commits; every lease write is still fenced by (id, epoch,
-- state) in its own WHERE clause.

-- name: job_get
-- $1 id
SELECT id, run_id, kind, group_key, ratio, state, attempt, lease_epoch, lease_owner, lease_deadline,
       available_at, result, last_error, created_at, finished_at, done_by, leased_at, probe_step, plan,
       checkpoint_digest, progress
FROM job
WHERE id = $1;

-- name: job_list_by_run
-- $1 run id
SELECT id, run_id, kind, group_key, ratio, state, attempt, lease_epoch, lease_owner, lease_deadline,
       available_at, result, last_error, created_at, finished_at, done_by, leased_at, probe_step, plan,
       checkpoint_digest, progress
FROM job
WHERE run_id = $1
ORDER BY id;

-- name: job_insert
-- $1 run id, $2 kind, $3 group key, $4 ratio, $5 result (NULL: queued; a result: created done), $6 now.
INSERT INTO job (run_id, kind, group_key, ratio, state, result, finished_at, available_at, created_at)
VALUES ($1, $2, $3, $4, CASE WHEN $5 IS NULL THEN 'queued' ELSE 'done' END, $5,
        CASE WHEN $5 IS NULL THEN NULL ELSE $6 END, $6, $6);

-- name: job_claimable
-- $1 now, $2 how many.
-- Up to $2 claimable jobs in dispatch order: runs oldest first; in a run the baseline, then cells by (group key,
-- ratio), then the export (kind's labels sort in that order), which is only claimable once every other job of
-- its run is done or skipped.
SELECT j.id
FROM job j
WHERE j.state = 'queued'
  AND j.available_at <= $1
  AND (j.kind <> 'export' OR NOT EXISTS (
      SELECT 1 FROM job o
      WHERE o.run_id = j.run_id AND o.kind <> 'export' AND o.state NOT IN ('done', 'skipped')))
ORDER BY j.run_id, j.kind, j.group_key, j.ratio, j.id
LIMIT $2;

-- name: job_claimable_group
-- $1 now, $2 run id, $3 group key, $4 how many.
-- Up to $4 claimable cells of one group, by ratio: a group affinity's pass (JobClaimParams::affinity).
SELECT j.id
FROM job j
WHERE j.state = 'queued'
  AND j.available_at <= $1
  AND j.run_id = $2 AND j.kind = 'cell' AND j.group_key = $3
ORDER BY j.ratio, j.id
LIMIT $4;

-- name: job_claimable_run
-- $1 now, $2 run id, $3 how many.
-- Up to $3 claimable jobs of one run in dispatch order: a run affinity's pass (JobClaimParams::affinity).
SELECT j.id
FROM job j
WHERE j.state = 'queued'
  AND j.available_at <= $1
  AND j.run_id = $2
  AND (j.kind <> 'export' OR NOT EXISTS (
      SELECT 1 FROM job o
      WHERE o.run_id = j.run_id AND o.kind <> 'export' AND o.state NOT IN ('done', 'skipped')))
ORDER BY j.kind, j.group_key, j.ratio, j.id
LIMIT $3;

-- name: job_lease
-- $1 job id, $2 worker, $3 deadline, $4 now.
-- Leases a queued job: counts an attempt and bumps the lease epoch.
UPDATE job
SET state = 'leased',
    attempt = attempt + 1,
    lease_epoch = lease_epoch + 1,
    lease_owner = $2,
    lease_deadline = $3,
    leased_at = $4
WHERE id = $1 AND state = 'queued'
RETURNING id, lease_epoch, run_id, kind, group_key, ratio, attempt, lease_owner, lease_deadline;

-- name: job_fence
-- $1 job id
-- What a lease call is checked against, and what the job's run allows: its state, epoch and attempt (and which
-- job it is: its run and kind).
SELECT j.run_id, j.kind, j.state, j.lease_epoch, j.attempt, r.max_attempts
FROM job j
JOIN run r ON r.id = j.run_id
WHERE j.id = $1;

-- name: job_extend
-- $1 job id, $2 lease epoch, $3 the new deadline. A row back when the lease was current.
UPDATE job
SET lease_deadline = $3
WHERE id = $1 AND lease_epoch = $2 AND state = 'leased'
RETURNING lease_deadline, lease_owner;

-- name: job_accept
-- $1 job id, $2 lease epoch, $3 result, $4 now. A row back when the lease was current: the job is done (its
-- run and kind).
UPDATE job
SET state = 'done', result = $3, finished_at = $4, done_by = lease_owner, lease_owner = NULL,
    lease_deadline = NULL
WHERE id = $1 AND lease_epoch = $2 AND state = 'leased'
RETURNING run_id, kind;

-- name: job_end_attempt
-- $1 job id, $2 lease epoch, $3 'queued' (retry) or 'failed', $4 available_at (NULL: as it was),
-- $5 finished_at (NULL on retry), $6 error.
-- Ends a current lease with an error, for job_fail and the rescuer.
UPDATE job
SET state = $3, available_at = coalesce($4, available_at), finished_at = $5, lease_owner = NULL,
    lease_deadline = NULL, last_error = $6
WHERE id = $1 AND lease_epoch = $2 AND state = 'leased';

-- name: job_expired
-- $1 now, $2 limit.
-- Up to $2 leases whose deadline is at or before $1, oldest deadline first, with what the run allows.
SELECT j.id, j.lease_epoch, j.attempt, j.lease_owner, r.max_attempts
FROM job j
JOIN run r ON r.id = j.run_id
WHERE j.state = 'leased' AND j.lease_deadline <= $1
ORDER BY j.lease_deadline, j.id
LIMIT $2;

-- name: job_count_unfinished
-- $1 run id: its queued and leased jobs, counted.
SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
       count(*) FILTER (WHERE state = 'leased') AS leased
FROM job
WHERE run_id = $1;

-- name: job_end_unfinished
-- $1 run id, $2 now, $3 'cancelled' or 'skipped'.
-- Ends a run's queued and leased jobs. Leased jobs keep their lease epoch: the worker's next heartbeat or
-- completion under it answers "cancelled" (or "lost" when skipped).
UPDATE job
SET state = $3, finished_at = $2, lease_owner = NULL, lease_deadline = NULL
WHERE run_id = $1 AND state IN ('queued', 'leased');

-- name: job_reset_export
-- $1 run id, $2 now.
-- Queues a run's export anew in place, unless a worker holds it: its epoch stays, so a worker that ran the old
-- plan is fenced off.
UPDATE job
SET state = 'queued', result = NULL, last_error = NULL, finished_at = NULL, done_by = NULL, attempt = 0,
    lease_owner = NULL, lease_deadline = NULL, available_at = $2
WHERE run_id = $1 AND kind = 'export' AND state <> 'leased';

-- name: job_skip
-- $1 now, $2 run id, $3 group key, $4 ratio, $5 reason.
-- An early stop: skips the group's queued cells whose ratio is above $4, with the reason as last_error; leased
-- and finished cells keep their state.
UPDATE job
SET state = 'skipped', finished_at = $1, last_error = $5
WHERE run_id = $2 AND kind = 'cell' AND group_key = $3 AND ratio > $4 AND state = 'queued';

-- name: job_recover_add
-- $1 run id, $2 now.
-- Queues the recovery of a running run whose export is done, unless it has one already.
INSERT INTO job (run_id, kind, available_at, created_at)
SELECT r.id, 'recover', $2, $2
FROM run r
WHERE r.id = $1 AND r.state = 'running'
  AND EXISTS (SELECT 1 FROM job e WHERE e.run_id = r.id AND e.kind = 'export' AND e.state = 'done')
ON CONFLICT (run_id) WHERE kind = 'recover' DO NOTHING;

-- name: job_recover_progress
-- $1 job id, $2 lease epoch, $3 a checkpoint digest (NULL: keep the last), $4 the progress.
-- Keeps a recover job's progress and last checkpoint while the lease is current.
UPDATE job
SET checkpoint_digest = coalesce($3, checkpoint_digest), progress = $4
WHERE id = $1 AND lease_epoch = $2 AND state = 'leased' AND kind = 'recover';

-- name: job_probe_add
-- $1 run id, $2 now, $3 chain step, $4 its plan (JSON text). One probe; the store runs it once per probe in one
-- write transaction, after checking that the run is running and has no plan. A step the run has probed (or
-- queued) already is left as it is.
INSERT INTO job (run_id, kind, probe_step, plan, available_at, created_at)
VALUES ($1, 'probe', $3, $4, $2, $2)
ON CONFLICT (run_id, probe_step) WHERE kind = 'probe' DO NOTHING;

-- name: job_release
-- $1 job id, $2 lease epoch, $3 now, $4 error.
-- A worker gives a current lease back for a reason of its own (a full disk, out of memory): queued again,
-- claimable at $3, the attempt its claim counted taken back; the epoch stays, so the releasing worker's later
-- calls are stale.
UPDATE job
SET state = 'queued', attempt = max(attempt - 1, 0), available_at = $3, lease_owner = NULL,
    lease_deadline = NULL, last_error = $4
WHERE id = $1 AND lease_epoch = $2 AND state = 'leased';

-- name: job_requeue_failed
-- $1 run id, $2 now.
-- A retried run's failed jobs, queued again with fresh attempts (their last error kept until the next ends).
UPDATE job
SET state = 'queued', attempt = 0, available_at = $2, finished_at = NULL, lease_owner = NULL,
    lease_deadline = NULL
WHERE run_id = $1 AND state = 'failed';
