DROP TABLE job;
DROP TABLE worker;
DROP TABLE run;
DROP TABLE artifact;
DROP TYPE run_state;
DROP TYPE job_state;
DROP TYPE job_kind;
