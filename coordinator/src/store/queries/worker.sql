-- Workers. Every query names its parameters; times are bound by the caller, never `now()`.

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
-- $1 worker ids (bigint[]): the first that is not registered, to name it in an error.
SELECT w.id
FROM unnest($1::bigint[]) WITH ORDINALITY AS w(id, ord)
WHERE NOT EXISTS (SELECT 1 FROM worker k WHERE k.id = w.id)
ORDER BY w.ord
LIMIT 1;

-- name: worker_list
-- Every worker with the jobs it holds leases on (job ids and their runs, by job id).
SELECT w.id, w.name, w.device, w.registered_at, w.last_seen_at,
       coalesce(array_agg(j.id ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{}') AS lease_jobs,
       coalesce(array_agg(j.run_id ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{}') AS lease_runs
FROM worker w
LEFT JOIN job j ON j.lease_owner = w.id AND j.state = 'leased'
GROUP BY w.id
ORDER BY w.id;
