-- A recover job's crash safety: the last checkpoint its worker uploaded (`checkpoint_digest`, kept across
-- attempts so the next one resumes there) and its progress as the last heartbeat reported it
-- (`{"step": n, "loss": x, "metric": y}`, for `status` and `/metrics`). Only recover jobs have either.
ALTER TABLE job ADD COLUMN checkpoint_digest text REFERENCES artifact (digest);
ALTER TABLE job ADD COLUMN progress jsonb;
ALTER TABLE job ADD CONSTRAINT job_recover_state_only_on_recover
    CHECK (kind = 'recover' OR (checkpoint_digest IS NULL AND progress IS NULL));
-- A run recovers once at a time: a restarted pipeline that queues the recovery again adds nothing.
CREATE UNIQUE INDEX job_one_recover ON job (run_id) WHERE kind = 'recover';
