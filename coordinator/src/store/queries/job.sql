-- Jobs: the claim, the lease fence (heartbeat, complete, fail), the rescuer's sweep, and reads.
-- Every query names its parameters; times are bound by the caller, never `now()`. Every statement that locks
-- more than one job either skips locked rows or locks in id order, so concurrent statements cannot deadlock.

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

-- name: job_analyze
-- Refreshes the planner's statistics on job after a run added its jobs. Without them the planner may still
-- believe the queue nearly empty (as when autovacuum last looked between runs) and plan every claim as a sort
-- of all queued jobs instead of a walk of job_queued that stops at the claim's size: milliseconds per claim
-- for each thousand queued jobs, until autovacuum's next analyze (a minute or more later). SKIP_LOCKED: when
-- a vacuum or analyze already holds the table, this one is skipped rather than waiting behind it.
ANALYZE (SKIP_LOCKED) job;

-- name: job_claim
-- $1 now, $2 waiting workers (bigint[], one entry per job wanted), $3 the new leases' deadline, $4 each entry's
-- affinity run (bigint[], same length, NULL for none), $5 each entry's affinity group (text[], same length,
-- NULL for none or a run-only affinity).
-- Locks claimable jobs, skipping rows other claims hold, and leases one to each entry it can serve: each claim
-- counts an attempt and bumps the lease epoch. Rows in entry order.
-- Dispatch order: runs oldest first; in a run the baseline, then cells by (group key, ratio), then the export
-- (job_kind's enum order), which is only claimable once every other job of its run is done or skipped.
-- Assignment (JobClaimParams::affinity, the same in store::sqlite): entries with a group affinity take that
-- group's cells by ratio, then entries with a run affinity take that run's jobs in dispatch order, then the
-- rest take what is left in dispatch order; each pass serves its entries in order.
-- Cost: each pass locks only as many rows as it has entries still unserved, passing over the rows an earlier
-- pass took (this transaction's own locks, which SKIP LOCKED does not skip), so a claim locks at most one row
-- per entry and a concurrent claim skips nothing this one leaves unused. Each pass pairs its entries with its
-- jobs by position, zipping two arrays in order (unnest of several arrays), never by joining row numbers: a
-- join on (key, row number) may be planned as a join on the key alone with the row numbers as a filter, which
-- compares every entry with every job (a million pairs for a batch of 1,024 entries of one run, hundreds of
-- milliseconds). The leases are written from one zipped array too, which the planner sizes as a few rows, so
-- the update probes job's primary key per job instead of hashing every queued job; it tests no state, as each
-- row was locked as queued above (a test of state would let the planner walk job_queued instead).
WITH waiting AS MATERIALIZED (
    SELECT w.owner, w.ord, w.run_id, w.group_key
    FROM unnest($2::bigint[], $4::bigint[], $5::text[]) WITH ORDINALITY AS w(owner, run_id, group_key, ord)
),
group_want AS (
    SELECT w.run_id, w.group_key, array_agg(w.ord ORDER BY w.ord) AS ords,
           array_agg(w.owner ORDER BY w.ord) AS owners
    FROM waiting w
    WHERE w.run_id IS NOT NULL AND w.group_key IS NOT NULL
    GROUP BY w.run_id, w.group_key
),
group_match AS MATERIALIZED (
    SELECT m.ord, m.owner, m.id
    FROM group_want g
    CROSS JOIN LATERAL (
        SELECT array_agg(c.id ORDER BY c.ratio, c.id) AS ids
        FROM (
            SELECT j.id, j.ratio
            FROM job j
            WHERE j.state = 'queued' AND j.available_at <= $1
              AND j.run_id = g.run_id AND j.kind = 'cell' AND j.group_key = g.group_key
            ORDER BY j.ratio, j.id
            LIMIT cardinality(g.ords)
            FOR UPDATE SKIP LOCKED
        ) c
    ) c
    CROSS JOIN LATERAL unnest(g.ords, g.owners, c.ids) AS m(ord, owner, id)
    WHERE m.id IS NOT NULL
),
run_want AS (
    SELECT w.run_id, array_agg(w.ord ORDER BY w.ord) AS ords, array_agg(w.owner ORDER BY w.ord) AS owners
    FROM waiting w
    WHERE w.run_id IS NOT NULL AND w.ord NOT IN (SELECT ord FROM group_match)
    GROUP BY w.run_id
),
run_match AS MATERIALIZED (
    SELECT m.ord, m.owner, m.id
    FROM run_want r
    CROSS JOIN LATERAL (
        SELECT array_agg(c.id ORDER BY c.kind, c.group_key, c.ratio, c.id) AS ids
        FROM (
            SELECT j.id, j.kind, j.group_key, j.ratio
            FROM job j
            WHERE j.state = 'queued' AND j.available_at <= $1 AND j.run_id = r.run_id
              AND j.id NOT IN (SELECT id FROM group_match)
              AND (j.kind <> 'export' OR (
                  SELECT o.id FROM job o
                  WHERE o.run_id = j.run_id AND o.kind <> 'export' AND o.state NOT IN ('done', 'skipped')
                  LIMIT 1) IS NULL)
            ORDER BY j.kind, j.group_key, j.ratio, j.id
            LIMIT cardinality(r.ords)
            FOR UPDATE SKIP LOCKED
        ) c
    ) c
    CROSS JOIN LATERAL unnest(r.ords, r.owners, c.ids) AS m(ord, owner, id)
    WHERE m.id IS NOT NULL AND m.ord IS NOT NULL
),
preferred AS (
    SELECT ord, owner, id FROM group_match
    UNION ALL
    SELECT ord, owner, id FROM run_match
),
-- One row even when every entry is served: its empty array then limits the walk below to no rows.
rest_want AS (
    SELECT coalesce(array_agg(w.ord ORDER BY w.ord), '{}') AS ords, array_agg(w.owner ORDER BY w.ord) AS owners
    FROM waiting w
    WHERE w.ord NOT IN (SELECT ord FROM preferred)
),
rest_match AS (
    SELECT m.ord, m.owner, m.id
    FROM rest_want r
    CROSS JOIN LATERAL (
        SELECT array_agg(c.id ORDER BY c.run_id, c.kind, c.group_key, c.ratio, c.id) AS ids
        FROM (
            SELECT j.id, j.run_id, j.kind, j.group_key, j.ratio
            FROM job j
            WHERE j.state = 'queued'
              AND j.available_at <= $1
              AND j.id NOT IN (SELECT id FROM preferred)
              -- A scalar subquery with LIMIT, not NOT EXISTS: the planner may not turn it into a hash over
              -- every pending job; it stays one probe of job_run_pending per export reached.
              AND (j.kind <> 'export' OR (
                  SELECT o.id FROM job o
                  WHERE o.run_id = j.run_id AND o.kind <> 'export' AND o.state NOT IN ('done', 'skipped')
                  LIMIT 1) IS NULL)
            ORDER BY j.run_id, j.kind, j.group_key, j.ratio, j.id
            LIMIT cardinality(r.ords)
            FOR UPDATE SKIP LOCKED
        ) c
    ) c
    CROSS JOIN LATERAL unnest(r.ords, r.owners, c.ids) AS m(ord, owner, id)
    WHERE m.id IS NOT NULL AND m.ord IS NOT NULL
),
matched AS (
    SELECT array_agg(a.id) AS ids, array_agg(a.owner) AS owners, array_agg(a.ord) AS ords
    FROM (
        SELECT ord, owner, id FROM preferred
        UNION ALL
        SELECT ord, owner, id FROM rest_match
    ) a
),
claimed AS (
    UPDATE job j
    SET state = 'leased',
        attempt = j.attempt + 1,
        lease_epoch = j.lease_epoch + 1,
        lease_owner = m.owner,
        lease_deadline = $3,
        leased_at = $1
    FROM matched a
    CROSS JOIN LATERAL unnest(a.ids, a.owners, a.ords) AS m(id, owner, ord)
    WHERE j.id = m.id
    RETURNING j.id, j.lease_epoch, j.run_id, j.kind, j.group_key, j.ratio, j.attempt, j.lease_owner,
              j.lease_deadline, m.ord
)
SELECT id, lease_epoch, run_id, kind, group_key, ratio, attempt, lease_owner, lease_deadline
FROM claimed
ORDER BY ord;

-- name: job_heartbeat
-- $1 job id, $2 lease epoch, $3 the new deadline, $4 now.
-- Extends the lease if it is still current. One row unless the job does not exist: its state and epoch (locked,
-- latest), and the new deadline when extended.
WITH target AS MATERIALIZED (
    SELECT j.id, j.state, j.lease_epoch
    FROM job j
    WHERE j.id = $1
    FOR UPDATE
),
extended AS (
    UPDATE job j
    SET lease_deadline = $3
    FROM target t
    WHERE j.id = t.id AND j.lease_epoch = $2 AND j.state = 'leased'
    RETURNING j.lease_deadline, j.lease_owner
),
-- A heartbeat is the worker's sign of life (`coordinator workers`): its deadline's lease time before.
seen AS (
    UPDATE worker w
    SET last_seen_at = greatest(w.last_seen_at, $4)
    FROM extended e
    WHERE w.id = e.lease_owner
)
SELECT t.state, t.lease_epoch, e.lease_deadline
FROM target t
LEFT JOIN extended e ON true;

-- name: job_complete
-- $1 now, $2 job ids, $3 lease epochs, $4 results (jsonb[]): one element per completion.
-- Accepts each completion whose lease is current, the first of a batch when one lease repeats. One row per
-- completion, in order: its outcome ('accepted', 'already_accepted', 'stale', 'cancelled' or 'not_found') and
-- the named job's run and kind (NULL when not found), so the caller needs no read of the job after it.
WITH item AS (
    SELECT i.job_id, i.lease_epoch, i.result, i.ord
    FROM unnest($2::bigint[], $3::bigint[], $4::jsonb[]) WITH ORDINALITY AS i(job_id, lease_epoch, result, ord)
),
-- The named jobs, locked in id order; under the lock a row reads as its latest version, so a concurrent
-- completion of the same lease is seen as done (already accepted), not as still leased.
locked AS MATERIALIZED (
    SELECT j.id, j.state, j.lease_epoch, j.run_id, j.kind
    FROM job j
    WHERE j.id IN (SELECT job_id FROM item)
    ORDER BY j.id
    FOR UPDATE
),
winner AS (
    SELECT DISTINCT ON (i.job_id) i.job_id, i.lease_epoch, i.result, i.ord
    FROM item i
    JOIN locked l ON l.id = i.job_id
    WHERE l.state = 'leased' AND l.lease_epoch = i.lease_epoch
    ORDER BY i.job_id, i.ord
),
-- A winner's row was read as leased under the lock this statement holds, so the update tests no state: with
-- `state = 'leased'` the planner may walk job_lease_deadline (every leased job) and rescan winner for each
-- row, as it did when the statistics from the run's creation said few jobs were leased: every completion of
-- the batch against every lease. Without it, each winner is one primary-key probe.
accepted AS (
    UPDATE job j
    SET state = 'done', result = w.result, finished_at = $1, done_by = j.lease_owner, lease_owner = NULL,
        lease_deadline = NULL
    FROM winner w
    WHERE j.id = w.job_id AND j.lease_epoch = w.lease_epoch
    RETURNING j.id
)
SELECT CASE
    WHEN w.ord = i.ord AND a.id IS NOT NULL THEN 'accepted'
    WHEN l.id IS NULL THEN 'not_found'
    WHEN l.lease_epoch <> i.lease_epoch THEN 'stale'
    WHEN l.state = 'done' OR a.id IS NOT NULL THEN 'already_accepted'
    WHEN l.state = 'cancelled' THEN 'cancelled'
    ELSE 'stale'
END AS outcome, l.run_id, l.kind
FROM item i
LEFT JOIN locked l ON l.id = i.job_id
LEFT JOIN winner w ON w.job_id = i.job_id
LEFT JOIN accepted a ON a.id = i.job_id
ORDER BY i.ord;

-- name: job_fail
-- $1 now, $2 job id, $3 lease epoch, $4 error, $5 retryable, $6 backoff base (µs), $7 backoff cap (µs).
-- Ends a current lease with an error: queued again at now + min(base * 2^(attempt - 1), cap) while the run's
-- max_attempts allows another attempt and the error is retryable, failed otherwise. One row unless the job
-- does not exist: its state and epoch before (locked, latest), and, when the lease was current, the new
-- state, attempt and available_at.
WITH target AS MATERIALIZED (
    SELECT j.id, j.state, j.lease_epoch, j.attempt, r.max_attempts
    FROM job j
    JOIN run r ON r.id = j.run_id
    WHERE j.id = $2
    FOR UPDATE OF j
),
decision AS (
    SELECT t.id, t.lease_epoch, ($5 AND t.attempt < t.max_attempts) AS retry, t.attempt
    FROM target t
    WHERE t.state = 'leased' AND t.lease_epoch = $3
),
ended AS (
    UPDATE job j
    SET state = CASE WHEN d.retry THEN 'queued' ELSE 'failed' END::job_state,
        available_at = CASE
            WHEN d.retry THEN $1 + least($6::float8 * power(2::float8, d.attempt - 1), $7::float8)
                                   * interval '1 microsecond'
            ELSE j.available_at
        END,
        finished_at = CASE WHEN d.retry THEN NULL ELSE $1 END,
        lease_owner = NULL,
        lease_deadline = NULL,
        last_error = $4
    FROM decision d
    WHERE j.id = d.id AND j.lease_epoch = d.lease_epoch AND j.state = 'leased'
    RETURNING j.state, j.attempt, j.available_at
)
SELECT t.state AS prior_state, t.lease_epoch, e.state, e.attempt, e.available_at
FROM target t
LEFT JOIN ended e ON true;

-- name: job_rescue_expired
-- $1 now, $2 limit, $3 backoff base (µs), $4 backoff cap (µs).
-- Takes back up to $2 leases whose deadline is at or before $1, oldest deadline first, skipping rows others
-- hold: queued again after the backoff while the run allows another attempt, failed otherwise, with the expiry
-- as last_error. The update is fenced by (id, lease epoch, state) as read under the lock.
WITH expired AS MATERIALIZED (
    SELECT j.id, j.run_id, j.lease_epoch, j.attempt
    FROM job j
    WHERE j.state = 'leased' AND j.lease_deadline <= $1
    ORDER BY j.lease_deadline, j.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
decision AS (
    SELECT e.id, e.lease_epoch, (e.attempt < r.max_attempts) AS retry
    FROM expired e
    JOIN run r ON r.id = e.run_id
)
UPDATE job j
SET state = CASE WHEN d.retry THEN 'queued' ELSE 'failed' END::job_state,
    available_at = CASE
        WHEN d.retry THEN $1 + least($3::float8 * power(2::float8, j.attempt - 1), $4::float8)
                               * interval '1 microsecond'
        ELSE j.available_at
    END,
    finished_at = CASE WHEN d.retry THEN NULL ELSE $1 END,
    last_error = format('lease expired (worker %s, attempt %s, epoch %s)', j.lease_owner, j.attempt, j.lease_epoch),
    lease_owner = NULL,
    lease_deadline = NULL
FROM decision d
WHERE j.id = d.id AND j.lease_epoch = d.lease_epoch AND j.state = 'leased'
RETURNING j.id, j.lease_epoch, j.attempt, j.state, j.available_at;

-- name: job_skip
-- $1 now, $2 run id, $3 group key, $4 ratio, $5 reason.
-- An early stop: skips the group's queued cells whose ratio is above $4, with the reason as last_error. The
-- cells are locked in id order first (a claim holding one finishes before, and a cell it leased is no longer
-- queued); leased and finished cells keep their state. One row: how many were skipped.
WITH target AS MATERIALIZED (
    SELECT j.id
    FROM job j
    WHERE j.run_id = $2 AND j.kind = 'cell' AND j.group_key = $3 AND j.ratio > $4 AND j.state = 'queued'
    ORDER BY j.id
    FOR UPDATE
),
skipped AS (
    UPDATE job j
    SET state = 'skipped', finished_at = $1, last_error = $5
    FROM target t
    WHERE j.id = t.id AND j.state = 'queued'
    RETURNING j.id
)
SELECT count(*) AS skipped FROM skipped;

-- name: job_recover_add
-- $1 run id, $2 now.
-- Queues the recovery of a running run whose export is done, unless it has one already. One row: how many were
-- queued (0 or 1).
WITH added AS (
    INSERT INTO job (run_id, kind, available_at, created_at)
    SELECT r.id, 'recover', $2, $2
    FROM run r
    WHERE r.id = $1 AND r.state = 'running'
      AND EXISTS (SELECT 1 FROM job e WHERE e.run_id = r.id AND e.kind = 'export' AND e.state = 'done')
    ON CONFLICT (run_id) WHERE kind = 'recover' DO NOTHING
    RETURNING id
)
SELECT count(*) AS added FROM added;

-- name: job_recover_progress
-- $1 job id, $2 lease epoch, $3 a checkpoint digest (NULL: keep the last), $4 the progress.
-- Keeps a recover job's progress and last checkpoint while the lease is current; a digest that is not stored
-- breaks job_checkpoint_digest_fkey. One row unless the job does not exist: its kind, and whether the report
-- was kept.
WITH kept AS (
    UPDATE job
    SET checkpoint_digest = coalesce($3, checkpoint_digest), progress = $4
    WHERE id = $1 AND lease_epoch = $2 AND state = 'leased' AND kind = 'recover'
    RETURNING id
)
SELECT j.kind, EXISTS (SELECT 1 FROM kept) AS kept
FROM job j
WHERE j.id = $1;

-- name: job_probe_add
-- $1 run id, $2 now, $3 chain steps (integer[]), $4 their plans (jsonb[], same length).
-- Queues probes for a running run that has no plan yet; a step the run has probed (or queued) already is left
-- as it is. One row: how many were queued.
WITH added AS (
    INSERT INTO job (run_id, kind, probe_step, plan, available_at, created_at)
    SELECT r.id, 'probe', p.step, p.plan, $2, $2
    FROM run r
    CROSS JOIN unnest($3::integer[], $4::jsonb[]) AS p(step, plan)
    WHERE r.id = $1 AND r.state = 'running' AND r.plan IS NULL
    ON CONFLICT (run_id, probe_step) WHERE kind = 'probe' DO NOTHING
    RETURNING id
)
SELECT count(*) AS added FROM added;

-- name: job_release
-- $1 now, $2 job id, $3 lease epoch, $4 error.
-- A worker gives a current lease back for a reason of its own (a full disk, out of memory): queued again,
-- claimable at $1, the attempt its claim counted taken back; the epoch stays, so the releasing worker's later
-- calls are stale. One row unless the job does not exist: its state and epoch before (locked, latest), and
-- whether it was released.
WITH target AS MATERIALIZED (
    SELECT j.id, j.state, j.lease_epoch
    FROM job j
    WHERE j.id = $2
    FOR UPDATE
),
released AS (
    UPDATE job j
    SET state = 'queued', attempt = greatest(j.attempt - 1, 0), available_at = $1, lease_owner = NULL,
        lease_deadline = NULL, last_error = $4
    FROM target t
    WHERE j.id = t.id AND j.lease_epoch = $3 AND j.state = 'leased'
    RETURNING j.id
)
SELECT t.state AS prior_state, t.lease_epoch, (SELECT count(*) FROM released) AS released
FROM target t;
