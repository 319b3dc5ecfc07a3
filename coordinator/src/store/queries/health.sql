-- The store's own health, no table: what `/healthz` asks before it answers "ok".

-- name: ping
SELECT 1
