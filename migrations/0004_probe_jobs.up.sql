-- A probe's candidate: its place on the planner's chain of plans (`probe_step`, 1 = the smallest cut) and the
-- plan itself (`{"<group key>": ratio}`), stored with the job so that a worker and a restarted coordinator read
-- exactly what was queued.
ALTER TABLE job ADD COLUMN probe_step integer;
ALTER TABLE job ADD COLUMN plan jsonb;
ALTER TABLE job ADD CONSTRAINT job_probe_has_step_and_plan
    CHECK ((kind = 'probe') = (probe_step IS NOT NULL) AND (probe_step IS NULL) = (plan IS NULL)
           AND (probe_step IS NULL OR probe_step > 0));
-- A run probes each step at most once: a restarted pipeline that queues the same round again adds nothing.
CREATE UNIQUE INDEX job_probe_step ON job (run_id, probe_step) WHERE kind = 'probe';
