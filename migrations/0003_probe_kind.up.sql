-- Probes (issue 21): a job that prunes the model structurally by a candidate plan and evaluates it, so the
-- planner chooses a plan by its measured loss, FLOPs and latency. The label sits before 'export' so that the
-- claim's `ORDER BY kind` keeps dispatching a run's export last.
-- Alone in its migration: Postgres cannot use an enum label in the transaction that adds it (0004 does).
ALTER TYPE job_kind ADD VALUE 'probe' BEFORE 'export';
