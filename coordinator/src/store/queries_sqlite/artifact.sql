-- Artifact metadata, on SQLite. Every query names its parameters; times (µs since the epoch) are bound by the
-- caller, never read from a clock.

-- name: artifact_get
-- $1 digest
SELECT digest, size_bytes, media_type, created_at
FROM artifact
WHERE digest = $1;

-- name: artifact_insert
-- $1 digest, $2 size_bytes, $3 media_type, $4 now. No row back when the digest is stored already.
INSERT INTO artifact (digest, size_bytes, media_type, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (digest) DO NOTHING
RETURNING digest;
