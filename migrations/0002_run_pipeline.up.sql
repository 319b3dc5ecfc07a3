-- The run pipeline: what a run was submitted with, how it ended, its plan, and who computed each job.

-- The submission's own description (name, the metric the loss is computed on, the ratios, the channel groups
-- with their members, params and FLOPs, the Prune target), as the submitting client computed it: the
-- coordinator plans from it and `results` reports it.
ALTER TABLE run ADD COLUMN spec jsonb NOT NULL DEFAULT '{}';
-- Why a run failed (a failed or zero baseline, a failed export), for `status` and `results`.
ALTER TABLE run ADD COLUMN error text;
-- The per-group ratios the planner chose (`{"<group key>": ratio}`); set before the export job is created.
ALTER TABLE run ADD COLUMN plan jsonb;
ALTER TABLE run ADD CONSTRAINT run_failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL);

-- The worker whose completion was accepted: the lease owner at that moment (the lease itself is cleared).
ALTER TABLE job ADD COLUMN done_by bigint REFERENCES worker (id);
-- When the current or last lease began, so a job's duration and a run's ETA can be measured.
ALTER TABLE job ADD COLUMN leased_at timestamptz;

-- The pipeline walks the running runs.
CREATE INDEX run_running ON run (id) WHERE state = 'running';
