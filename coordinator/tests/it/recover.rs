//! Recovery on the coordinator (issue 25): `coordinator recover` reopening an ended, exported run
//! (`JobStore::run_recover`, the `RecoverRun` call, the CLI) and what `ReportRecovery` keeps of a recover
//! job's reports (`JobStore::job_recover_progress`, the call).
//!
//! The store cases run on both stores through the conformance runners of [`crate::store`]; the service cases
//! on the real gRPC server of [`crate::service`]; the CLI case on a real `coordinator serve` process.

use std::time::Duration;

use sensgrid_client::{self as client, AdminClient, WorkerClient};
use sensgrid_coordinator::clock::Clock;
use sensgrid_coordinator::store::{
    ArtifactPutParams, CompleteOutcome, FailOutcome, Job, JobId, JobKind, JobRecoverProgressParams, JobState, JobStore,
    Lease, PlanMode, RecoverProgressOutcome, RescueOutcome, RunCancelParams, RunFinishParams, RunId, RunPlanParams,
    RunRecoverOutcome, RunRecoverParams, RunState, StoreError, WorkerId,
};
use sensgrid_coordinator::submit::Prepared;
use sensgrid_proto::v1 as pb;
use serde_json::{Value, json};
use sqlx::PgPool;
use tonic::{Code, Status};

use crate::cli;
use crate::service::{self, Server};
use crate::store::{
    BACKOFF, Bundle, LEASE, MODEL, claim_one, complete, create_run, fail, job, pg_conformance, register, rescue,
    run_pg, run_sqlite, sqlite_conformance,
};

/// A checkpoint artifact the store cases store before they report it.
const CHECKPOINT: &str = "3333333333333333333333333333333333333333333333333333333333333333";
/// Another one, stored too.
const LATER_CHECKPOINT: &str = "4444444444444444444444444444444444444444444444444444444444444444";
/// A well-formed digest no artifact has.
const UNKNOWN: &str = "5555555555555555555555555555555555555555555555555555555555555555";

/// The config and spec a recovery reopens a run with.
const RECOVER_CONFIG: &str = "Global:\n  use_gpu: false\nRecover:\n  steps: 20\n";

fn recover_spec() -> Value {
    json!({"name": "store test", "metric": "hmean", "recover": {"train_set_digest": MODEL}})
}

/// Stores the checkpoint artifacts the cases report.
async fn seed_checkpoints<S: JobStore>(t: &Bundle<S>) {
    for digest in [CHECKPOINT, LATER_CHECKPOINT] {
        let params = ArtifactPutParams {
            now: t.clock.now(),
            digest: digest.into(),
            size_bytes: 1 << 10,
            media_type: "application/octet-stream".into(),
        };
        t.store.artifact_put(params).await.unwrap();
    }
}

/// A run of one cell whose export is done, ended done as the pipeline ends it; answers it and its worker.
async fn exported_run<S: JobStore>(t: &Bundle<S>) -> (RunId, WorkerId) {
    let run = create_run(t, &[("a", 0.5)], false, 3).await;
    let now = t.clock.now();
    let worker = register(&t.store, now, "w").await;
    let plan = RunPlanParams {
        now,
        run_id: run,
        plan: json!({"a": 0.5}),
        export: true,
        mode: PlanMode::Initial,
    };
    t.store.run_plan(plan).await.unwrap();
    for kind in [JobKind::Baseline, JobKind::Cell, JobKind::Export] {
        let claimed = claim_one(&t.store, now, worker).await.expect("a job");
        assert_eq!(claimed.kind, kind);
        let result = json!({"metrics": {"hmean": 0.5}, "artifact_digest": MODEL});
        assert_eq!(
            complete(&t.store, now, &[(claimed.lease, result)]).await,
            [CompleteOutcome::Accepted]
        );
    }
    finish(t, run, RunState::Done, None).await;
    (run, worker)
}

async fn finish<S: JobStore>(t: &Bundle<S>, run_id: RunId, state: RunState, error: Option<&str>) {
    let params = RunFinishParams {
        now: t.clock.now(),
        run_id,
        state,
        error: error.map(str::to_owned),
    };
    assert!(t.store.run_finish(params).await.unwrap(), "run {run_id} ends {state:?}");
}

async fn recover<S: JobStore>(t: &Bundle<S>, run_id: RunId) -> RunRecoverOutcome {
    let params = RunRecoverParams {
        now: t.clock.now(),
        run_id,
        config_yaml: RECOVER_CONFIG.into(),
        spec: recover_spec(),
    };
    t.store.run_recover(params).await.unwrap()
}

async fn report<S: JobStore>(
    t: &Bundle<S>,
    lease: Lease,
    checkpoint: Option<&str>,
    step: u64,
) -> Result<RecoverProgressOutcome, StoreError> {
    let params = JobRecoverProgressParams {
        lease,
        checkpoint_digest: checkpoint.map(str::to_owned),
        progress: json!({"step": step, "steps": 20, "loss": 0.5, "metric": null}),
    };
    t.store.job_recover_progress(params).await
}

/// The run's recover job (it has one).
async fn recover_job<S: JobStore>(t: &Bundle<S>, run_id: RunId) -> Job {
    let jobs = t.store.job_list_by_run(run_id).await.unwrap();
    let mut recover = jobs.into_iter().filter(|j| j.kind == JobKind::Recover);
    let job = recover.next().expect("the run has a recover job");
    assert!(recover.next().is_none(), "the run has one recover job");
    job
}

/// A recover job's checkpoint and the step of its progress.
fn checkpoint_and_step(job: &Job) -> (Option<&str>, Option<u64>) {
    let step = job.progress.as_ref().and_then(|p| p["step"].as_u64());
    (job.checkpoint_digest.as_deref(), step)
}

pub mod run_recover {
    use super::*;

    /// A done, exported run runs again with the request's config and spec and a queued recover job; a second
    /// request while that job is queued or leased is refused. After the recovery ends, a new one requeues the
    /// same job in place: its result, checkpoint and progress dropped, its epoch kept, so the first recovery's
    /// worker is fenced off and the next claim is a new epoch.
    pub async fn reopens_a_done_exported_run_and_refuses_a_second_while_recovering<S: JobStore>(t: Bundle<S>) {
        seed_checkpoints(&t).await;
        let (run, worker) = exported_run(&t).await;
        let now = t.clock.now();
        assert_eq!(recover(&t, run).await, RunRecoverOutcome::Queued);
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!(
            (
                stored.state,
                stored.finished_at,
                stored.config_yaml.as_str(),
                &stored.spec
            ),
            (RunState::Running, None, RECOVER_CONFIG, &recover_spec())
        );
        let queued = recover_job(&t, run).await;
        assert_eq!(
            (queued.state, queued.attempt, checkpoint_and_step(&queued)),
            (JobState::Queued, 0, (None, None))
        );
        assert_eq!(recover(&t, run).await, RunRecoverOutcome::Recovering(JobState::Queued));

        let first = claim_one(&t.store, now, worker).await.expect("the recover job");
        assert_eq!((first.kind, first.lease.job_id), (JobKind::Recover, queued.id));
        assert_eq!(recover(&t, run).await, RunRecoverOutcome::Recovering(JobState::Leased));
        assert_eq!(
            report(&t, first.lease, Some(CHECKPOINT), 5).await.unwrap(),
            RecoverProgressOutcome::Kept
        );
        let result = json!({"metrics": {"hmean": 0.5}, "artifact_digest": MODEL});
        assert_eq!(
            complete(&t.store, now, &[(first.lease, result)]).await,
            [CompleteOutcome::Accepted]
        );
        finish(&t, run, RunState::Done, None).await;

        assert_eq!(recover(&t, run).await, RunRecoverOutcome::Queued);
        let again = job(&t.store, first.lease.job_id).await;
        assert_eq!(
            (again.state, again.attempt, again.lease_epoch, again.lease_owner),
            (JobState::Queued, 0, first.lease.epoch, None)
        );
        assert_eq!(
            (again.result, again.finished_at, again.checkpoint_digest, again.progress),
            (None, None, None, None)
        );
        assert_eq!(
            report(&t, first.lease, Some(LATER_CHECKPOINT), 6).await.unwrap(),
            RecoverProgressOutcome::Stale,
            "the first recovery's worker is fenced off"
        );
        let second = claim_one(&t.store, now, worker).await.expect("the recover job again");
        assert_eq!(
            (second.lease.job_id, second.lease.epoch, second.attempt),
            (first.lease.job_id, first.lease.epoch + 1, 1)
        );
        assert_eq!(
            checkpoint_and_step(&recover_job(&t, run).await),
            (None, None),
            "nothing of the first recovery is resumed from"
        );
    }

    /// A run whose recovery failed, and one whose recovery was cancelled, are recovered again: the run's error
    /// is cleared and the recover job queued with a fresh attempt.
    pub async fn reopens_a_run_whose_recovery_failed_or_was_cancelled<S: JobStore>(t: Bundle<S>) {
        let (run, worker) = exported_run(&t).await;
        let now = t.clock.now();
        assert_eq!(recover(&t, run).await, RunRecoverOutcome::Queued);
        let claimed = claim_one(&t.store, now, worker).await.expect("the recover job");
        assert!(matches!(
            fail(&t.store, now, claimed.lease, "out of memory", false).await,
            FailOutcome::Failed { .. }
        ));
        finish(&t, run, RunState::Failed, Some("the recovery failed: out of memory")).await;

        assert_eq!(recover(&t, run).await, RunRecoverOutcome::Queued);
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!((stored.state, stored.error), (RunState::Running, None));
        let queued = recover_job(&t, run).await;
        assert_eq!((queued.state, queued.attempt), (JobState::Queued, 0));

        claim_one(&t.store, now, worker).await.expect("the recover job again");
        t.store.run_cancel(RunCancelParams { now, run_id: run }).await.unwrap();
        assert_eq!(recover_job(&t, run).await.state, JobState::Cancelled);
        assert_eq!(recover(&t, run).await, RunRecoverOutcome::Queued);
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!(stored.state, RunState::Running);
        assert_eq!(recover_job(&t, run).await.state, JobState::Queued);
    }

    /// A run still running towards its export, a run that ended without a done export and a missing run are
    /// refused, and nothing of them changes.
    pub async fn refuses_a_running_an_unexported_and_a_missing_run<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("a", 0.5)], false, 3).await;
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        assert_eq!(recover(&t, run).await, RunRecoverOutcome::NotDone(RunState::Running));
        for _ in 0..2 {
            let claimed = claim_one(&t.store, now, worker).await.expect("baseline, cell");
            complete(&t.store, now, &[(claimed.lease, json!({"metrics": {"hmean": 0.5}}))]).await;
        }
        finish(&t, run, RunState::Done, None).await;
        assert_eq!(recover(&t, run).await, RunRecoverOutcome::NotExported(RunState::Done));
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!(stored.state, RunState::Done);
        assert_ne!(stored.config_yaml, RECOVER_CONFIG, "the config is left as it was");
        let jobs = t.store.job_list_by_run(run).await.unwrap();
        assert!(jobs.iter().all(|j| j.kind != JobKind::Recover), "no recover job");

        let failed = create_run(&t, &[], false, 3).await;
        finish(&t, failed, RunState::Failed, Some("the baseline's hmean is 0")).await;
        assert_eq!(
            recover(&t, failed).await,
            RunRecoverOutcome::NotExported(RunState::Failed)
        );
        assert_eq!(recover(&t, RunId(run.0 + 1000)).await, RunRecoverOutcome::NotFound);
    }
}

pub mod job_recover_progress {
    use super::*;

    /// A current lease's report is kept (a report without a checkpoint keeps the last one); a checkpoint that
    /// is not stored, a superseded lease (expired, taken back and leased again), a job that is not a recover
    /// job and a missing job keep nothing.
    pub async fn keeps_only_a_current_leases_report_of_a_stored_checkpoint<S: JobStore>(t: Bundle<S>) {
        seed_checkpoints(&t).await;
        let (run, worker) = exported_run(&t).await;
        let start = t.clock.now();
        recover(&t, run).await;
        let first = claim_one(&t.store, start, worker).await.expect("the recover job");
        let stored = async || {
            let job = recover_job(&t, run).await;
            let (checkpoint, step) = checkpoint_and_step(&job);
            (checkpoint.map(str::to_owned), step)
        };
        let kept = |checkpoint: &str, step| (Some(checkpoint.to_owned()), Some(step));

        assert_eq!(
            report(&t, first.lease, Some(CHECKPOINT), 1).await.unwrap(),
            RecoverProgressOutcome::Kept
        );
        assert_eq!(
            report(&t, first.lease, None, 2).await.unwrap(),
            RecoverProgressOutcome::Kept
        );
        assert_eq!(stored().await, kept(CHECKPOINT, 2));

        match report(&t, first.lease, Some(UNKNOWN), 3).await {
            Err(StoreError::ArtifactNotFound { field, digest, .. }) => {
                assert_eq!((field, digest.as_str()), ("checkpoint_digest", UNKNOWN));
            }
            other => panic!("a checkpoint that is not stored was answered {other:?}"),
        }
        assert_eq!(
            stored().await,
            kept(CHECKPOINT, 2),
            "nothing of the refused report is kept"
        );

        let now = t.clock.advance(LEASE);
        assert!(matches!(
            rescue(&t.store, now, 10).await.as_slice(),
            [(lease, 1, RescueOutcome::Requeued { .. })] if *lease == first.lease
        ));
        let now = t.clock.advance(BACKOFF.cap);
        let second = claim_one(&t.store, now, worker).await.expect("the recover job again");
        assert_eq!(second.lease.epoch, first.lease.epoch + 1);
        assert_eq!(
            report(&t, first.lease, Some(LATER_CHECKPOINT), 9).await.unwrap(),
            RecoverProgressOutcome::Stale
        );
        let ahead = Lease {
            epoch: second.lease.epoch + 1,
            ..second.lease
        };
        assert_eq!(
            report(&t, ahead, Some(LATER_CHECKPOINT), 9).await.unwrap(),
            RecoverProgressOutcome::Stale
        );
        assert_eq!(
            stored().await,
            kept(CHECKPOINT, 2),
            "the resumed attempt starts from the last kept"
        );

        let baseline = t
            .store
            .job_list_by_run(run)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.kind == JobKind::Baseline)
            .unwrap();
        let baseline_lease = Lease {
            job_id: baseline.id,
            epoch: baseline.lease_epoch,
        };
        assert_eq!(
            report(&t, baseline_lease, Some(LATER_CHECKPOINT), 9).await.unwrap(),
            RecoverProgressOutcome::NotRecover(JobKind::Baseline)
        );
        assert_eq!(job(&t.store, baseline.id).await.progress, None);
        let missing = Lease {
            job_id: JobId(second.lease.job_id.0 + 1000),
            epoch: 1,
        };
        assert_eq!(
            report(&t, missing, None, 9).await.unwrap(),
            RecoverProgressOutcome::NotFound
        );
        assert_eq!(
            report(&t, second.lease, Some(LATER_CHECKPOINT), 3).await.unwrap(),
            RecoverProgressOutcome::Kept
        );
        assert_eq!(stored().await, kept(LATER_CHECKPOINT, 3));
    }
}

/// The store cases above, by operation, on both stores.
macro_rules! recover_cases {
    ($runner:ident) => {
        $runner! {
            run_recover {
                reopens_a_done_exported_run_and_refuses_a_second_while_recovering,
                reopens_a_run_whose_recovery_failed_or_was_cancelled,
                refuses_a_running_an_unexported_and_a_missing_run,
            }
            job_recover_progress { keeps_only_a_current_leases_report_of_a_stored_checkpoint }
        }
    };
}

recover_cases!(pg_conformance);
recover_cases!(sqlite_conformance);

/// A cls run of [`crate::service::cls_submission`] ended done with its export, and who exported it.
struct ExportedRun {
    run_id: i64,
    worker_id: i64,
    /// The digest the export uploaded as its pruned model: the recovery's student.
    student_digest: String,
}

/// Submits `prepared` and works it as its one worker: the baseline scores 0.9 and every cell 0.8, under
/// `Prune.max_loss` 0.5, so the pipeline plans and queues the export, which uploads a pruned model. Answers
/// once the pipeline has ended the run done.
async fn export_cls_run(admin: &mut AdminClient, worker: &mut WorkerClient, prepared: &Prepared) -> ExportedRun {
    let model = std::fs::read(&prepared.model).unwrap();
    let model_digest = client::upload_artifact(admin, &model, "application/onnx")
        .await
        .unwrap();
    let dataset_digest = client::upload_artifact(admin, &prepared.bundle, "application/x-tar")
        .await
        .unwrap();
    let request = service::prepared_run_request(prepared, model_digest, dataset_digest);
    let run_id = admin.create_run(request).await.unwrap().into_inner().run_id;
    let worker_id = service::register(worker, "exporter").await;
    let student_digest = client::upload_artifact(worker, b"a pruned model", "application/onnx")
        .await
        .unwrap();
    loop {
        let job = service::poll(worker, worker_id, 5_000).await.expect("a job of the run");
        assert_eq!(job.run_id, run_id);
        let acc = if job.kind() == pb::JobKind::Baseline { 0.9 } else { 0.8 };
        let request = pb::CompleteJobRequest {
            job_id: job.job_id,
            lease_epoch: job.lease_epoch,
            metrics: [("acc".to_owned(), acc)].into(),
            artifact_digest: match job.kind() {
                pb::JobKind::Export => student_digest.clone(),
                _ => String::new(),
            },
            ..Default::default()
        };
        worker.complete_job(request).await.unwrap();
        if job.kind() == pb::JobKind::Export {
            break;
        }
    }
    wait_for_state(admin, run_id, pb::RunState::Done).await;
    ExportedRun {
        run_id,
        worker_id,
        student_digest,
    }
}

/// Waits until the pipeline has moved run `run_id` to `state` (it does so after the completion that ends it,
/// on its own task).
async fn wait_for_state(admin: &mut AdminClient, run_id: i64, state: pb::RunState) -> pb::GetRunResponse {
    for _ in 0..1_200 {
        let run = admin.get_run(pb::GetRunRequest { run_id }).await.unwrap().into_inner();
        if run.state() == state {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run_id} did not become {} within a minute", state.as_str());
}

/// The run's recover job as `GetRun` shows it: its checkpoint and the step of its progress.
async fn recovery_shown(admin: &mut AdminClient, run_id: i64) -> (String, Option<u64>) {
    let run = admin.get_run(pb::GetRunRequest { run_id }).await.unwrap().into_inner();
    let job = run
        .jobs
        .iter()
        .find(|j| j.kind() == pb::JobKind::Recover)
        .expect("the run has a recover job");
    let step = serde_json::from_str::<Value>(&job.progress_json)
        .ok()
        .and_then(|p| p["step"].as_u64());
    (job.checkpoint_digest.clone(), step)
}

fn progress(step: u64, loss: f64, metric: f64) -> pb::RecoverProgress {
    pb::RecoverProgress {
        step,
        steps: 20,
        loss,
        metric,
        best: metric,
    }
}

/// Extends `job`'s lease, as its worker's heartbeats do while it trains.
async fn heartbeat(worker: &mut WorkerClient, job: &pb::Job) {
    let request = pb::HeartbeatRequest {
        job_id: job.job_id,
        lease_epoch: job.lease_epoch,
        done: 0,
        total: 20,
    };
    let answer = worker.heartbeat(request).await.unwrap().into_inner();
    assert!(answer.keep_going, "job {} lost its lease", job.job_id);
}

/// `ReportRecovery` for `job` at `epoch`: answers `keep_going`.
async fn report_recovery(
    worker: &mut WorkerClient,
    job: &pb::Job,
    epoch: i64,
    checkpoint: &str,
    progress: pb::RecoverProgress,
) -> Result<bool, Status> {
    let request = pb::ReportRecoveryRequest {
        job_id: job.job_id,
        lease_epoch: epoch,
        checkpoint_digest: checkpoint.into(),
        progress: Some(progress),
    };
    worker
        .report_recovery(request)
        .await
        .map(|answer| answer.into_inner().keep_going)
}

/// `RecoverRun` reopens a done, exported run, refuses a second recovery while one is queued, and reopens
/// the run again once its recovery has ended; a running run, a run without a done export and a missing run
/// are refused with a status naming why. `ReportRecovery` keeps a current lease's report and refuses a
/// checkpoint that is not stored, a step past the steps, a loss or metric that is not finite and a job that
/// is not a recover job; a stale lease (its epoch not current, or its job taken back and leased to another
/// worker) is told to stop. None of those changes what the job keeps, and the attempt that takes the job over
/// is handed the last checkpoint kept.
#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn recover_run_reopens_an_exported_run_and_report_recovery_keeps_only_sound_reports(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let prepared = service::cls_submission(dir.path());
    // A short lease, so the silent worker's job is taken back soon; until then it heartbeats.
    let server = Server::start(pool, |c| c.lease = Duration::from_secs(2)).await;
    let mut admin = server.admin().await;
    let mut worker = server.worker().await;
    let exported = export_cls_run(&mut admin, &mut worker, &prepared).await;
    let run_id = exported.run_id;
    let train_set_digest = client::upload_artifact(&mut admin, b"a training bundle", "application/x-tar")
        .await
        .unwrap();
    let recover_request = |run_id| pb::RecoverRunRequest {
        run_id,
        config_yaml: format!("{}Recover:\n  steps: 20\n", prepared.config_yaml),
        train_set_digest: train_set_digest.clone(),
    };

    admin.recover_run(recover_request(run_id)).await.unwrap();
    let reopened = admin.get_run(pb::GetRunRequest { run_id }).await.unwrap().into_inner();
    assert_eq!(reopened.state(), pb::RunState::Running);
    assert!(
        reopened.config_yaml.ends_with("Recover:\n  steps: 20\n"),
        "{}",
        reopened.config_yaml
    );
    let (code, message) = service::refusal(admin.recover_run(recover_request(run_id)).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(
        message.contains(&format!(
            "run {run_id} is recovering already (its recover job is queued)"
        )),
        "{message}"
    );

    let job = service::poll(&mut worker, exported.worker_id, 5_000)
        .await
        .expect("the recover job");
    assert_eq!(job.kind(), pb::JobKind::Recover);
    assert_eq!(
        (
            job.student_digest.as_str(),
            job.train_set_digest.as_str(),
            job.checkpoint_digest.as_str()
        ),
        (exported.student_digest.as_str(), train_set_digest.as_str(), "")
    );
    let checkpoint = client::upload_artifact(&mut worker, b"checkpoint at step 5", "application/octet-stream")
        .await
        .unwrap();
    heartbeat(&mut worker, &job).await;
    assert!(
        report_recovery(&mut worker, &job, job.lease_epoch, &checkpoint, progress(5, 0.25, 0.8))
            .await
            .unwrap(),
        "kept"
    );
    let kept = (checkpoint.clone(), Some(5));
    assert_eq!(recovery_shown(&mut admin, run_id).await, kept);

    // Refused: the status names why, and the job keeps the last sound report.
    let unknown = "6".repeat(64);
    let refusals = [
        (
            unknown.as_str(),
            progress(6, 0.25, 0.8),
            Code::NotFound,
            "checkpoint_digest: artifact 666",
        ),
        (
            "xyz",
            progress(6, 0.25, 0.8),
            Code::InvalidArgument,
            "checkpoint_digest: expected a sha256",
        ),
        (
            "",
            progress(21, 0.25, 0.8),
            Code::InvalidArgument,
            "progress.step: expected at most progress.steps (20), got 21",
        ),
        (
            "",
            progress(6, f64::NAN, 0.8),
            Code::InvalidArgument,
            "progress.loss: expected a finite number, got NaN",
        ),
        (
            "",
            progress(6, f64::INFINITY, 0.8),
            Code::InvalidArgument,
            "progress.loss: expected a finite number, got inf",
        ),
        (
            "",
            progress(6, 0.25, f64::INFINITY),
            Code::InvalidArgument,
            "progress.metric: expected a finite number (or NaN before the first eval), got inf",
        ),
        (
            "",
            pb::RecoverProgress {
                best: f64::NEG_INFINITY,
                ..progress(6, 0.25, 0.8)
            },
            Code::InvalidArgument,
            "progress.best: expected a finite number (or NaN before the first eval), got -inf",
        ),
    ];
    for (digest, progress, code, message) in refusals {
        heartbeat(&mut worker, &job).await;
        let (got_code, got) =
            service::refusal(report_recovery(&mut worker, &job, job.lease_epoch, digest, progress).await);
        assert_eq!(got_code, code, "{got}");
        assert!(got.contains(message), "expected '{message}' in '{got}'");
        assert_eq!(recovery_shown(&mut admin, run_id).await, kept, "after '{message}'");
    }
    let baseline = reopened
        .jobs
        .iter()
        .find(|j| j.kind() == pb::JobKind::Baseline)
        .unwrap();
    let baseline_job = pb::Job {
        job_id: baseline.job_id,
        ..pb::Job::default()
    };
    let (code, message) =
        service::refusal(report_recovery(&mut worker, &baseline_job, 1, &checkpoint, progress(6, 0.25, 0.8)).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert_eq!(
        message,
        format!(
            "job {} is a baseline job: only a recover job reports a recovery",
            baseline.job_id
        )
    );
    // A metric of NaN is an eval not made yet, not a refusal.
    heartbeat(&mut worker, &job).await;
    assert!(
        report_recovery(&mut worker, &job, job.lease_epoch, "", progress(6, 0.25, f64::NAN))
            .await
            .unwrap(),
        "kept"
    );
    let kept = (checkpoint.clone(), Some(6));
    assert_eq!(recovery_shown(&mut admin, run_id).await, kept);

    // An epoch that is not the lease's is told to stop.
    let later = client::upload_artifact(&mut worker, b"checkpoint at step 9", "application/octet-stream")
        .await
        .unwrap();
    assert!(
        !report_recovery(&mut worker, &job, job.lease_epoch + 1, &later, progress(9, 0.2, 0.8))
            .await
            .unwrap(),
        "told to stop"
    );
    assert_eq!(recovery_shown(&mut admin, run_id).await, kept);

    // The worker goes silent: its lease expires and another worker takes the job over, from the last
    // checkpoint kept; the silent worker's late report is told to stop and changes nothing.
    let mut other = server.worker().await;
    let other_id = service::register(&mut other, "other").await;
    let resumed = service::poll(&mut other, other_id, 30_000)
        .await
        .expect("the recover job, taken back");
    assert_eq!(
        (resumed.job_id, resumed.lease_epoch, resumed.checkpoint_digest.as_str()),
        (job.job_id, job.lease_epoch + 1, checkpoint.as_str())
    );
    assert!(
        !report_recovery(&mut worker, &job, job.lease_epoch, &later, progress(9, 0.2, 0.8))
            .await
            .unwrap(),
        "told to stop"
    );
    assert_eq!(recovery_shown(&mut admin, run_id).await, kept);
    assert!(
        report_recovery(&mut other, &resumed, resumed.lease_epoch, &later, progress(9, 0.2, 0.8))
            .await
            .unwrap(),
        "kept"
    );
    assert_eq!(recovery_shown(&mut admin, run_id).await, (later.clone(), Some(9)));

    // The recovery ends; a new one queues the job afresh, with nothing to resume from.
    let (code, message) = service::refusal(admin.recover_run(recover_request(run_id)).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("(its recover job is leased)"), "{message}");
    let recovered = client::upload_artifact(&mut other, b"a recovered model", "application/onnx")
        .await
        .unwrap();
    let completion = pb::CompleteJobRequest {
        job_id: resumed.job_id,
        lease_epoch: resumed.lease_epoch,
        metrics: [("acc".to_owned(), 0.85)].into(),
        artifact_digest: recovered,
        ..Default::default()
    };
    other.complete_job(completion).await.unwrap();
    wait_for_state(&mut admin, run_id, pb::RunState::Done).await;
    admin.recover_run(recover_request(run_id)).await.unwrap();
    let again = service::poll(&mut other, other_id, 5_000)
        .await
        .expect("the recover job again");
    assert_eq!(
        (again.job_id, again.lease_epoch, again.checkpoint_digest.as_str()),
        (job.job_id, resumed.lease_epoch + 1, "")
    );

    // Refused runs: missing, still running, ended without a done export.
    let missing = run_id + 1000;
    let (code, message) = service::refusal(admin.recover_run(recover_request(missing)).await);
    assert_eq!(
        (code, message),
        (Code::NotFound, format!("run_id: run {missing} does not exist"))
    );
    let running = service::create_run(&server, &[]).await;
    let (code, message) = service::refusal(admin.recover_run(recover_request(running)).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(
        message.starts_with(&format!(
            "run {running} is running: a run is recovered once its export is done"
        )),
        "{message}"
    );
    let baseline = service::poll(&mut other, other_id, 5_000).await.expect("its baseline");
    assert_eq!(baseline.run_id, running);
    service::complete(&mut other, &baseline, &[("hmean", 0.9)])
        .await
        .unwrap();
    wait_for_state(&mut admin, running, pb::RunState::Done).await;
    let (code, message) = service::refusal(admin.recover_run(recover_request(running)).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(
        message.starts_with(&format!("run {running} is done without a done export")),
        "{message}"
    );
    server.stop().await;
}

/// `coordinator recover` through the real binary against a real `coordinator serve`: it bundles the training
/// set its overrides name, reopens the done, exported run and prints so; a second one while the recovery is
/// queued, one for a run still running and one for a missing run exit 2 with the coordinator's reason.
#[sqlx::test(migrations = false)]
async fn coordinator_recover_reopens_an_exported_run_and_refuses_with_exit_2(
    _pool: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let dir = tempfile::tempdir().unwrap();
    let prepared = service::cls_submission(dir.path());
    let artifact_dir = tempfile::tempdir().unwrap();
    let mut child = cli::serve_command(&connect, artifact_dir.path())
        .spawn()
        .expect("starting coordinator serve");
    let addr = cli::listening_addr(&mut child).await;
    let channel = client::connect(&format!("http://{addr}"), None).await.unwrap();
    let mut admin = client::admin_client(channel.clone(), "a").unwrap();
    let mut worker = client::worker_client(channel, "w").unwrap();
    let exported = export_cls_run(&mut admin, &mut worker, &prepared).await;
    let run_id = exported.run_id;

    let data = dir.path().join("data");
    let recover = |run: i64| {
        let addr = addr.clone();
        let overrides = [
            "Recover.steps=20".to_owned(),
            format!("Recover.data_dir={}", data.display()),
            format!("Recover.label_file_list=[{}]", data.join("label.txt").display()),
        ];
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["recover".to_owned(), run.to_string(), "-o".to_owned()];
            args.extend(overrides);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli::client_command(&addr, &args, std::process::Stdio::piped())
        })
    };

    let reopened = recover(run_id).await.unwrap();
    let stderr = String::from_utf8_lossy(&reopened.stderr);
    assert!(reopened.status.success(), "exit {:?}: {stderr}", reopened.status);
    assert_eq!(
        String::from_utf8_lossy(&reopened.stdout),
        format!("run {run_id}: running (recovery queued; `coordinator watch {run_id}` follows it)\n")
    );
    let run = admin.get_run(pb::GetRunRequest { run_id }).await.unwrap().into_inner();
    assert_eq!(run.state(), pb::RunState::Running);
    let spec: Value = serde_json::from_str(&run.spec_json).unwrap();
    let train_set_digest = spec["recover"]["train_set_digest"]
        .as_str()
        .expect("the spec names the training set");
    let stat = admin
        .stat_artifact(pb::StatArtifactRequest {
            digest: train_set_digest.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stat.stored, "the training bundle was uploaded");
    let recover_jobs: Vec<_> = run.jobs.iter().filter(|j| j.kind() == pb::JobKind::Recover).collect();
    assert_eq!(recover_jobs.len(), 1);
    assert_eq!(recover_jobs[0].state(), pb::JobState::Queued);

    let again = recover(run_id).await.unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "run {run_id} is recovering already (its recover job is queued)"
        )),
        "{stderr}"
    );

    let missing = run_id + 1000;
    let refused = recover(missing).await.unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("run {missing} does not exist")), "{stderr}");

    let running = admin
        .create_run(pb::CreateRunRequest {
            config_yaml: prepared.config_yaml.clone(),
            model_digest: run.model_digest.clone(),
            dataset_digest: run.dataset_digest.clone(),
            criterion: prepared.criterion.into(),
            cells: Vec::new(),
            spec_json: serde_json::to_string(&prepared.spec).unwrap(),
        })
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let refused = recover(running).await.unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "run {running} is running: a run is recovered once its export is done"
        )),
        "{stderr}"
    );

    let output = cli::terminate(child).await;
    assert!(output.status.success(), "exit {:?}", output.status);
}
