DELETE FROM job WHERE kind = 'probe';
DROP INDEX job_probe_step;
ALTER TABLE job DROP CONSTRAINT job_probe_has_step_and_plan;
ALTER TABLE job DROP COLUMN plan;
ALTER TABLE job DROP COLUMN probe_step;
