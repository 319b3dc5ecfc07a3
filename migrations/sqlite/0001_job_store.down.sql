DROP TABLE job;
DROP TABLE worker;
DROP TABLE run;
DROP TABLE artifact;
