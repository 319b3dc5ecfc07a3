-- Workers on SQLite. Every query names its parameters; times (µs since the epoch) are bound by the caller,
-- never read from a clock.

-- name: worker_get
-- $1 id
SELECT id, name, device, registered_at, last_seen_at
FROM worker
WHERE id = $1;

-- name: worker_register
-- $1 name, $2 device, $3 now
INSERT INTO worker (name, device, registered_at, last_seen_at)
VALUES ($1, $2, $3, $3)
RETURNING id, name, device, registered_at, last_seen_at;

-- name: worker_first_unknown
-- $1 worker ids (a JSON array): the first that is not registered, if any.
SELECT w.value AS id
FROM json_each($1) w
WHERE NOT EXISTS (SELECT 1 FROM worker k WHERE k.id = w.value)
ORDER BY w.key
LIMIT 1;

-- name: worker_seen
-- $1 worker id, $2 now. A heartbeat is the worker's sign of life (`coordinator workers`).
UPDATE worker
SET last_seen_at = max(last_seen_at, $2)
WHERE id = $1;

-- name: worker_list
-- Every worker with the jobs it holds leases on: one row per (worker, lease) by worker and job id, and one row
-- with NULL lease columns for a worker without leases.
SELECT w.id, w.name, w.device, w.registered_at, w.last_seen_at, j.id AS lease_job, j.run_id AS lease_run
FROM worker w
LEFT JOIN job j ON j.lease_owner = w.id AND j.state = 'leased'
ORDER BY w.id, j.id;
