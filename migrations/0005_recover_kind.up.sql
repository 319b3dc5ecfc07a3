-- Recover jobs (issue 25): a job that fine-tunes the run's exported model by distillation from the original.
-- The label sits after 'export', so the claim's `ORDER BY kind` dispatches it last (it is queued once the
-- export is done). Alone in its migration: Postgres cannot use an enum label in the transaction that adds it
-- (0006 does).
ALTER TYPE job_kind ADD VALUE 'recover' AFTER 'export';
