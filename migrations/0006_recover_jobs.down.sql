DELETE FROM job WHERE kind = 'recover';
DROP INDEX job_one_recover;
ALTER TABLE job DROP CONSTRAINT job_recover_state_only_on_recover;
ALTER TABLE job DROP COLUMN progress;
ALTER TABLE job DROP COLUMN checkpoint_digest;
