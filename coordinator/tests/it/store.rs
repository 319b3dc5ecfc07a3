//! The job store's conformance suite: every case is a generic function over [`JobStore`], in a module named for
//! the operation it exercises (`job_claim::batch_leases_one_job_per_worker`), run on every store by the
//! `conformance_cases!` list at the bottom: against Postgres by `pg_conformance!` (one `#[sqlx::test]` database
//! per case, `pg::job_claim::…`) and against SQLite by `sqlite_conformance!` (one temporary file per case,
//! `sqlite::job_claim::…`), each with its own [`Bundle`].
//!
//! Time comes from a [`ManualClock`] passed to the store as `now`: leases expire and backoffs pass by advancing
//! it, never by sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sensgrid_coordinator::clock::{Clock, ManualClock};
use sensgrid_coordinator::store::pg::PgStore;
use sensgrid_coordinator::store::sqlite::SqliteStore;
use sensgrid_coordinator::store::{
    ArtifactPutOutcome, ArtifactPutParams, Backoff, CellSpec, ClaimAffinity, ClaimedJob, CompleteOutcome, FailOutcome,
    HeartbeatOutcome, Job, JobClaimParams, JobCompleteParams, JobCompletion, JobFailParams, JobHeartbeatParams, JobId,
    JobKind, JobProbeAddParams, JobRescueExpiredParams, JobSkipParams, JobState, JobStore, Lease, PlanMode,
    RescueOutcome, RunCancelOutcome, RunCancelParams, RunCreateParams, RunFinishParams, RunId, RunPlanOutcome,
    RunPlanParams, RunReplanParams, RunState, StoreError, WorkerId, WorkerRegisterParams,
};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;

/// What every case gets: a store, a second handle onto the same data over its own connection (for the cases
/// that race two callers), and the clock both are driven by.
pub struct Bundle<S> {
    pub store: S,
    pub peer: S,
    pub clock: ManualClock,
}

pub(crate) const LEASE: Duration = Duration::from_secs(30);
pub(crate) const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(10),
    cap: Duration::from_secs(15),
};
pub(crate) const MODEL: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const DATASET: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn start_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
}

/// Stores the model and dataset artifacts every run names.
async fn seed_artifacts<S: JobStore>(store: &S, now: OffsetDateTime) {
    for (digest, media_type) in [(MODEL, "application/onnx"), (DATASET, "application/x-tar")] {
        let params = ArtifactPutParams {
            now,
            digest: digest.into(),
            size_bytes: 1 << 20,
            media_type: media_type.into(),
        };
        store.artifact_put(params).await.unwrap();
    }
}

fn run_params(now: OffsetDateTime, cells: &[(&str, f64)], export: bool, max_attempts: u32) -> RunCreateParams {
    RunCreateParams {
        now,
        config_yaml: "Global:\n  use_gpu: false\n".into(),
        model_digest: MODEL.into(),
        dataset_digest: DATASET.into(),
        criterion: "l1_norm".into(),
        max_attempts,
        cells: cells
            .iter()
            .map(|&(g, r)| CellSpec {
                group_key: g.into(),
                ratio: r,
                result: None,
            })
            .collect(),
        export,
        spec: serde_json::json!({"name": "store test", "metric": "hmean"}),
    }
}

/// A run with these cells, its artifacts stored first.
pub(crate) async fn create_run<S: JobStore>(
    t: &Bundle<S>,
    cells: &[(&str, f64)],
    export: bool,
    max_attempts: u32,
) -> RunId {
    let now = t.clock.now();
    seed_artifacts(&t.store, now).await;
    t.store
        .run_create(run_params(now, cells, export, max_attempts))
        .await
        .unwrap()
}

/// `n` cells `conv2d_<i>.w_0` at 0.5.
fn grid(n: usize) -> Vec<(String, f64)> {
    (0..n).map(|i| (format!("conv2d_{i:04}.w_0"), 0.5)).collect()
}

fn as_refs(cells: &[(String, f64)]) -> Vec<(&str, f64)> {
    cells.iter().map(|(g, r)| (g.as_str(), *r)).collect()
}

pub(crate) async fn register<S: JobStore>(store: &S, now: OffsetDateTime, name: &str) -> WorkerId {
    let params = WorkerRegisterParams {
        now,
        name: name.into(),
        device: "cpu".into(),
    };
    store.worker_register(params).await.unwrap().id
}

async fn claim<S: JobStore>(store: &S, now: OffsetDateTime, workers: &[WorkerId]) -> Vec<ClaimedJob> {
    let params = JobClaimParams {
        now,
        lease_duration: LEASE,
        workers: workers.to_vec(),
        affinity: Vec::new(),
    };
    store.job_claim(params).await.unwrap()
}

/// Claims for `workers` with these affinities: (worker, run, group).
async fn claim_with<S: JobStore>(
    store: &S,
    now: OffsetDateTime,
    workers: &[WorkerId],
    affinity: &[(WorkerId, RunId, Option<&str>)],
) -> Vec<ClaimedJob> {
    let params = JobClaimParams {
        now,
        lease_duration: LEASE,
        workers: workers.to_vec(),
        affinity: affinity
            .iter()
            .map(|&(worker, run_id, group)| ClaimAffinity {
                worker,
                run_id,
                group_key: group.map(str::to_owned),
            })
            .collect(),
    };
    store.job_claim(params).await.unwrap()
}

pub(crate) async fn claim_one<S: JobStore>(store: &S, now: OffsetDateTime, worker: WorkerId) -> Option<ClaimedJob> {
    let mut jobs = claim(store, now, &[worker]).await;
    assert!(jobs.len() <= 1, "one worker got {} jobs", jobs.len());
    jobs.pop()
}

pub(crate) async fn complete<S: JobStore>(
    store: &S,
    now: OffsetDateTime,
    items: &[(Lease, Value)],
) -> Vec<CompleteOutcome> {
    let completions = items
        .iter()
        .map(|(lease, result)| JobCompletion {
            lease: *lease,
            result: result.clone(),
        })
        .collect();
    store
        .job_complete(JobCompleteParams { now, completions })
        .await
        .unwrap()
        .into_iter()
        .map(|completed| completed.outcome)
        .collect()
}

async fn heartbeat<S: JobStore>(store: &S, now: OffsetDateTime, lease: Lease) -> HeartbeatOutcome {
    store
        .job_heartbeat(JobHeartbeatParams {
            now,
            lease,
            lease_duration: LEASE,
        })
        .await
        .unwrap()
}

pub(crate) async fn fail<S: JobStore>(
    store: &S,
    now: OffsetDateTime,
    lease: Lease,
    error: &str,
    retryable: bool,
) -> FailOutcome {
    let params = JobFailParams {
        now,
        lease,
        error: error.into(),
        retryable,
        backoff: BACKOFF,
    };
    store.job_fail(params).await.unwrap()
}

pub(crate) async fn rescue<S: JobStore>(
    store: &S,
    now: OffsetDateTime,
    limit: u32,
) -> Vec<(Lease, u32, RescueOutcome)> {
    let params = JobRescueExpiredParams {
        now,
        limit,
        backoff: BACKOFF,
    };
    store
        .job_rescue_expired(params)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.lease, r.attempt, r.outcome))
        .collect()
}

pub(crate) async fn job<S: JobStore>(store: &S, id: JobId) -> Job {
    store
        .job_get(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {id} is stored"))
}

/// A job's place in dispatch order, as `kind group ratio`.
fn label(kind: JobKind, group_key: &Option<String>, ratio: Option<f64>) -> String {
    match (kind, group_key, ratio) {
        (JobKind::Cell, Some(g), Some(r)) => format!("cell {g} {r}"),
        (kind, _, _) => format!("{kind:?}").to_lowercase(),
    }
}

fn metrics(loss: f64) -> Value {
    json!({ "hmean": 1.0 - loss, "num_samples": 500 })
}

pub mod job_claim {
    use super::*;

    /// Baseline first, cells by (group, ratio) whatever order they were created in, the export only once every
    /// other job of its run is done; an older run's jobs before a newer run's, but a gated export does not hold
    /// the newer run back.
    pub async fn dispatch_order_baseline_cells_export<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let cells = [("b", 0.2), ("a", 0.3), ("b", 0.1), ("a", 0.1)];
        let first = create_run(&t, &cells, true, 3).await;
        let second = create_run(&t, &[("a", 0.5)], true, 3).await;
        let w = register(&t.store, now, "w").await;

        let mut order = Vec::new();
        let mut leases = Vec::new();
        for _ in 0..5 {
            let job = claim_one(&t.store, now, w).await.expect("a claimable job");
            assert_eq!(job.run_id, first);
            order.push(label(job.kind, &job.group_key, job.ratio));
            leases.push(job.lease);
        }
        assert_eq!(
            order,
            ["baseline", "cell a 0.1", "cell a 0.3", "cell b 0.1", "cell b 0.2"]
        );

        // The first run's export waits for its cells; the second run goes ahead.
        let next = claim_one(&t.store, now, w).await.expect("the second run's baseline");
        assert_eq!((next.run_id, next.kind), (second, JobKind::Baseline));

        let done: Vec<_> = leases[..4].iter().map(|l| (*l, metrics(0.1))).collect();
        assert!(
            complete(&t.store, now, &done)
                .await
                .iter()
                .all(|o| *o == CompleteOutcome::Accepted)
        );
        let next = claim_one(&t.store, now, w).await.expect("the second run's cell");
        assert_eq!(
            (next.run_id, next.kind),
            (second, JobKind::Cell),
            "one cell of the first run is still leased"
        );
        assert_eq!(claim_one(&t.store, now, w).await, None, "both exports wait");

        assert_eq!(
            complete(&t.store, now, &[(leases[4], metrics(0.2))]).await,
            [CompleteOutcome::Accepted]
        );
        let export = claim_one(&t.store, now, w).await.expect("the first run's export");
        assert_eq!((export.run_id, export.kind), (first, JobKind::Export));
        assert_eq!(claim_one(&t.store, now, w).await, None);
    }

    /// One statement leases a job to each waiting worker, each with its own owner, epoch and deadline; fewer
    /// jobs than workers leaves the last ones empty-handed; an unknown worker claims nothing.
    pub async fn batch_leases_one_job_per_worker<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let run = create_run(&t, &[("a", 0.1), ("a", 0.2), ("b", 0.1), ("b", 0.2)], false, 3).await;
        let w1 = register(&t.store, now, "w1").await;
        let w2 = register(&t.store, now, "w2").await;
        let w3 = register(&t.store, now, "w3").await;

        let missing = WorkerId(w3.0 + 1000);
        let params = JobClaimParams {
            now,
            lease_duration: LEASE,
            workers: vec![w1, missing],
            affinity: Vec::new(),
        };
        match t.store.job_claim(params).await {
            Err(StoreError::WorkerNotFound { worker, .. }) => assert_eq!(worker, missing),
            other => panic!("expected WorkerNotFound, got {other:?}"),
        }
        assert!(
            t.store
                .job_list_by_run(run)
                .await
                .unwrap()
                .iter()
                .all(|j| j.state == JobState::Queued)
        );

        let claimed = claim(&t.store, now, &[w1, w2, w3, w1]).await;
        let got: Vec<_> = claimed
            .iter()
            .map(|c| (label(c.kind, &c.group_key, c.ratio), c.owner))
            .collect();
        assert_eq!(
            got,
            [
                ("baseline".to_string(), w1),
                ("cell a 0.1".to_string(), w2),
                ("cell a 0.2".to_string(), w3),
                ("cell b 0.1".to_string(), w1)
            ]
        );
        for c in &claimed {
            assert_eq!(
                (c.lease.epoch, c.attempt, c.deadline, c.run_id),
                (1, 1, now + LEASE, run)
            );
            let stored = job(&t.store, c.lease.job_id).await;
            assert_eq!(stored.state, JobState::Leased);
            assert_eq!(stored.lease_owner, Some(c.owner));
            assert_eq!(stored.lease_deadline, Some(now + LEASE));
            assert_eq!((stored.lease_epoch, stored.attempt), (1, 1));
        }
        let ids: BTreeSet<_> = claimed.iter().map(|c| c.lease.job_id).collect();
        assert_eq!(ids.len(), 4);

        let rest = claim(&t.store, now, &[w2, w3]).await;
        assert_eq!(rest.len(), 1, "one job left for two workers");
        assert_eq!(
            (label(rest[0].kind, &rest[0].group_key, rest[0].ratio), rest[0].owner),
            ("cell b 0.2".into(), w2)
        );
        assert!(claim(&t.store, now, &[w1, w2, w3]).await.is_empty());
        assert!(claim(&t.store, now, &[]).await.is_empty());
    }

    /// A worker's affinity wins over dispatch order: a group affinity gets that group's next cell by ratio, a
    /// run affinity (or a group with nothing left) that run's next job, everyone else what is left in dispatch
    /// order. A later entry may so get a job that an earlier one without affinity does not.
    pub async fn affinity_prefers_the_group_then_the_run<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let first = create_run(&t, &[("a", 0.1), ("a", 0.2), ("b", 0.2), ("b", 0.1)], false, 3).await;
        let second = create_run(&t, &[("c", 0.1)], false, 3).await;
        let w1 = register(&t.store, now, "w1").await;
        let w2 = register(&t.store, now, "w2").await;
        let w3 = register(&t.store, now, "w3").await;
        let got = |claimed: &[ClaimedJob]| -> Vec<(String, RunId, WorkerId)> {
            claimed
                .iter()
                .map(|c| (label(c.kind, &c.group_key, c.ratio), c.run_id, c.owner))
                .collect()
        };

        let baseline = claim_one(&t.store, now, w1).await.expect("the first run's baseline");
        assert_eq!((baseline.run_id, baseline.kind), (first, JobKind::Baseline));
        complete(&t.store, now, &[(baseline.lease, metrics(0.0))]).await;

        // w1 held group b, w3 the second run; w2 held nothing. A second affinity for w1 is ignored.
        let claimed = claim_with(
            &t.store,
            now,
            &[w2, w3, w1],
            &[(w1, first, Some("b")), (w3, second, None), (w1, second, None)],
        )
        .await;
        assert_eq!(
            got(&claimed),
            [
                ("cell a 0.1".to_string(), first, w2),
                ("baseline".to_string(), second, w3),
                ("cell b 0.1".to_string(), first, w1),
            ],
            "rows in entry order"
        );

        // Group b has one cell left for two entries preferring it: the second falls back to the run.
        let claimed = claim_with(
            &t.store,
            now,
            &[w1, w3],
            &[(w1, first, Some("b")), (w3, first, Some("b"))],
        )
        .await;
        assert_eq!(
            got(&claimed),
            [
                ("cell b 0.2".to_string(), first, w1),
                ("cell a 0.2".to_string(), first, w3),
            ]
        );

        // One job left: the entry whose affinity names its group gets it, ahead of an earlier one.
        let claimed = claim_with(&t.store, now, &[w2, w1], &[(w1, second, Some("c"))]).await;
        assert_eq!(got(&claimed), [("cell c 0.1".to_string(), second, w1)]);
        assert!(
            claim_with(&t.store, now, &[w2, w1], &[(w1, second, Some("c"))])
                .await
                .is_empty()
        );
    }

    /// Two claimers on separate connections race over the same queue for several rounds (each round the rescuer
    /// returns every lease): within a round no job is handed out twice, and every job is handed out once.
    pub async fn concurrent_claimers_never_share_a_job<S: JobStore>(t: Bundle<S>) {
        const JOBS: usize = 240;
        const ROUNDS: i64 = 3;
        let cells = grid(JOBS - 1);
        create_run(&t, &as_refs(&cells), false, ROUNDS as u32 + 1).await;
        let now = t.clock.now();
        let a = register(&t.store, now, "a").await;
        let b = register(&t.store, now, "b").await;
        let instant = Backoff {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        };

        for round in 1..=ROUNDS {
            let now = t.clock.now();
            let tasks = [(t.store.clone(), a), (t.peer.clone(), b)].map(|(store, worker)| {
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for i in 0.. {
                        let batch = vec![worker; i % 4 + 1];
                        let claimed = claim(&store, now, &batch).await;
                        if claimed.is_empty() {
                            break;
                        }
                        tokio::task::yield_now().await;
                        got.extend(claimed);
                    }
                    got
                })
            });
            let [from_a, from_b] = tasks;
            let (from_a, from_b) = (from_a.await.unwrap(), from_b.await.unwrap());
            let ids_a: BTreeSet<_> = from_a.iter().map(|c| c.lease.job_id).collect();
            let ids_b: BTreeSet<_> = from_b.iter().map(|c| c.lease.job_id).collect();
            assert_eq!(ids_a.len(), from_a.len(), "round {round}: claimer a got a job twice");
            assert_eq!(ids_b.len(), from_b.len(), "round {round}: claimer b got a job twice");
            assert!(
                ids_a.is_disjoint(&ids_b),
                "round {round}: shared {:?}",
                ids_a.intersection(&ids_b).next()
            );
            assert_eq!(ids_a.len() + ids_b.len(), JOBS, "round {round}: every job handed out");
            assert!(
                !from_a.is_empty() && !from_b.is_empty(),
                "round {round}: both claimers got jobs"
            );
            for c in from_a.iter().chain(&from_b) {
                assert_eq!((c.lease.epoch, c.attempt), (round, round as u32));
            }

            let later = t.clock.advance(LEASE);
            let params = JobRescueExpiredParams {
                now: later,
                limit: JOBS as u32,
                backoff: instant,
            };
            assert_eq!(t.store.job_rescue_expired(params).await.unwrap().len(), JOBS);
        }
    }
}

pub mod job_heartbeat {
    use super::*;

    /// A heartbeat under the current epoch moves the deadline to now + lease, so the rescuer leaves the job
    /// alone, even once it has passed its deadline unrescued; another epoch or job id is told to stop.
    pub async fn extends_a_current_lease<S: JobStore>(t: Bundle<S>) {
        create_run(&t, &[], false, 3).await;
        let w = register(&t.store, t.clock.now(), "w").await;
        let claimed = claim_one(&t.store, t.clock.now(), w).await.unwrap();

        let now = t.clock.advance(Duration::from_secs(20));
        assert_eq!(
            heartbeat(&t.store, now, claimed.lease).await,
            HeartbeatOutcome::Extended { deadline: now + LEASE }
        );
        let now = t.clock.advance(Duration::from_secs(20));
        assert!(
            rescue(&t.store, now, 10).await.is_empty(),
            "the extended lease has 10 s left"
        );
        assert_eq!(job_state(&t.store, claimed.lease.job_id).await, JobState::Leased);

        let newer = Lease {
            epoch: claimed.lease.epoch + 1,
            ..claimed.lease
        };
        assert_eq!(heartbeat(&t.store, now, newer).await, HeartbeatOutcome::Lost);
        let unknown = Lease {
            job_id: JobId(claimed.lease.job_id.0 + 1000),
            epoch: 1,
        };
        assert_eq!(heartbeat(&t.store, now, unknown).await, HeartbeatOutcome::NotFound);
        assert_eq!(
            job(&t.store, claimed.lease.job_id).await.lease_deadline,
            Some(now - Duration::from_secs(20) + LEASE)
        );

        // Past the deadline but not yet rescued, the lease is still this worker's: nobody else can hold the job
        // without a claim bumping the epoch, so the heartbeat still extends it.
        let late = t.clock.advance(LEASE);
        let extended = HeartbeatOutcome::Extended { deadline: late + LEASE };
        assert_eq!(heartbeat(&t.store, late, claimed.lease).await, extended);
        assert!(rescue(&t.store, late, 10).await.is_empty());
    }

    async fn job_state<S: JobStore>(store: &S, id: JobId) -> JobState {
        job(store, id).await.state
    }
}

pub mod job_rescue_expired {
    use super::*;

    /// A worker that stops heartbeating loses its job when the lease ends (not a microsecond before); the job
    /// comes back after the backoff under the next attempt and epoch, and the old epoch's heartbeat, completion
    /// and failure are refused.
    pub async fn reclaims_after_the_lease_with_the_next_attempt<S: JobStore>(t: Bundle<S>) {
        create_run(&t, &[], false, 3).await;
        let start = t.clock.now();
        let w1 = register(&t.store, start, "w1").await;
        let w2 = register(&t.store, start, "w2").await;
        let old = claim_one(&t.store, start, w1).await.unwrap();

        let now = t.clock.advance(LEASE - Duration::from_micros(1));
        assert!(
            rescue(&t.store, now, 10).await.is_empty(),
            "the lease has a microsecond left"
        );
        let now = t.clock.advance(Duration::from_micros(1));
        let available_at = now + BACKOFF.delay(1);
        assert_eq!(
            rescue(&t.store, now, 10).await,
            [(old.lease, 1, RescueOutcome::Requeued { available_at })]
        );

        let stored = job(&t.store, old.lease.job_id).await;
        assert_eq!(
            (stored.state, stored.attempt, stored.lease_epoch),
            (JobState::Queued, 1, 1)
        );
        assert_eq!(
            (stored.lease_owner, stored.lease_deadline, stored.available_at),
            (None, None, available_at)
        );
        assert_eq!(
            stored.last_error.as_deref(),
            Some(format!("lease expired (worker {w1}, attempt 1, epoch 1)").as_str())
        );

        assert_eq!(claim_one(&t.store, now, w2).await, None, "backing off");
        let now = t.clock.set(available_at);
        let new = claim_one(&t.store, now, w2)
            .await
            .expect("the job again after the backoff");
        assert_eq!(
            (new.lease.job_id, new.lease.epoch, new.attempt, new.owner),
            (old.lease.job_id, 2, 2, w2)
        );

        assert_eq!(heartbeat(&t.store, now, old.lease).await, HeartbeatOutcome::Lost);
        assert_eq!(
            complete(&t.store, now, &[(old.lease, metrics(0.9))]).await,
            [CompleteOutcome::Stale]
        );
        assert_eq!(fail(&t.store, now, old.lease, "late", true).await, FailOutcome::Stale);
        let stored = job(&t.store, old.lease.job_id).await;
        assert_eq!(
            (stored.state, stored.lease_owner, stored.result),
            (JobState::Leased, Some(w2), None)
        );

        assert_eq!(
            complete(&t.store, now, &[(new.lease, metrics(0.1))]).await,
            [CompleteOutcome::Accepted]
        );
        assert_eq!(job(&t.store, old.lease.job_id).await.result, Some(metrics(0.1)));
    }

    /// The expiry of the run's last attempt fails the job with the expiry as its error; a sweep takes at most
    /// `limit` leases, oldest deadline first.
    pub async fn fails_the_last_attempt_and_respects_the_limit<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("a", 0.1), ("a", 0.2)], false, 2).await;
        let w = register(&t.store, t.clock.now(), "w").await;

        // Three leases, 1 s apart: the sweep takes them oldest first, two at a time.
        let mut leases = Vec::new();
        for _ in 0..3 {
            leases.push(claim_one(&t.store, t.clock.now(), w).await.unwrap().lease);
            t.clock.advance(Duration::from_secs(1));
        }
        let now = t.clock.advance(LEASE);
        let first: Vec<_> = rescue(&t.store, now, 2).await.into_iter().map(|(l, ..)| l).collect();
        assert_eq!(first, leases[..2]);
        let second: Vec<_> = rescue(&t.store, now, 2).await.into_iter().map(|(l, ..)| l).collect();
        assert_eq!(second, leases[2..]);

        // Attempt 2 of 2 expires: the job fails.
        let now = t.clock.advance(BACKOFF.cap);
        let lease = claim_one(&t.store, now, w).await.unwrap().lease;
        assert_eq!(
            lease,
            Lease {
                job_id: leases[0].job_id,
                epoch: 2
            }
        );
        let now = t.clock.advance(LEASE);
        assert_eq!(rescue(&t.store, now, 10).await, [(lease, 2, RescueOutcome::Failed)]);
        let stored = job(&t.store, lease.job_id).await;
        assert_eq!(
            (stored.state, stored.attempt, stored.finished_at),
            (JobState::Failed, 2, Some(now))
        );
        assert_eq!(
            stored.last_error.as_deref(),
            Some(format!("lease expired (worker {w}, attempt 2, epoch 2)").as_str())
        );
        assert_eq!(
            complete(&t.store, now, &[(lease, metrics(0.1))]).await,
            [CompleteOutcome::Stale]
        );
        let states: Vec<_> = t
            .store
            .job_list_by_run(run)
            .await
            .unwrap()
            .iter()
            .map(|j| j.state)
            .collect();
        assert_eq!(states, [JobState::Failed, JobState::Queued, JobState::Queued]);
    }
}

pub mod job_complete {
    use super::*;

    /// An old epoch's completion is refused; the current epoch's is accepted once, and repeating it (as after a
    /// lost reply) answers already-accepted and keeps the first result and finish time.
    pub async fn stale_epoch_refused_and_repeat_is_a_no_op<S: JobStore>(t: Bundle<S>) {
        create_run(&t, &[], false, 3).await;
        let w = register(&t.store, t.clock.now(), "w").await;
        let old = claim_one(&t.store, t.clock.now(), w).await.unwrap().lease;
        t.clock.advance(LEASE);
        assert_eq!(rescue(&t.store, t.clock.now(), 10).await.len(), 1);
        let now = t.clock.advance(BACKOFF.delay(1));
        let current = claim_one(&t.store, now, w).await.unwrap().lease;
        assert_eq!(current.epoch, old.epoch + 1);

        assert_eq!(
            complete(&t.store, now, &[(old, metrics(0.5))]).await,
            [CompleteOutcome::Stale]
        );
        assert_eq!(job(&t.store, current.job_id).await.state, JobState::Leased);

        assert_eq!(
            complete(&t.store, now, &[(current, metrics(0.1))]).await,
            [CompleteOutcome::Accepted]
        );
        let accepted = job(&t.store, current.job_id).await;
        assert_eq!(
            (accepted.state, accepted.result.clone()),
            (JobState::Done, Some(metrics(0.1)))
        );
        assert_eq!(
            (accepted.finished_at, accepted.lease_owner, accepted.lease_deadline),
            (Some(now), None, None)
        );

        let later = t.clock.advance(Duration::from_secs(5));
        assert_eq!(
            complete(&t.store, later, &[(current, metrics(0.7))]).await,
            [CompleteOutcome::AlreadyAccepted]
        );
        assert_eq!(
            job(&t.store, current.job_id).await,
            accepted,
            "the repeat changed nothing"
        );
        assert_eq!(
            complete(&t.store, later, &[(old, metrics(0.5))]).await,
            [CompleteOutcome::Stale]
        );
        assert_eq!(
            heartbeat(&t.store, later, current).await,
            HeartbeatOutcome::Lost,
            "done: stop"
        );
        assert_eq!(fail(&t.store, later, current, "late", true).await, FailOutcome::Stale);
        assert_eq!(job(&t.store, current.job_id).await, accepted);
    }

    /// One batch, every outcome: accepted, accepted-then-repeated in the same batch, done before, stale epoch,
    /// wrong epoch before the right one, cancelled, unknown id; each answered in order and applied alone.
    pub async fn batch_mixed_outcomes<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        create_run(&t, &[("a", 0.1), ("a", 0.2), ("a", 0.3)], false, 3).await;
        let doomed_run = create_run(&t, &[], false, 3).await;
        let w = register(&t.store, now, "w").await;
        let c = claim(&t.store, now, &[w, w, w, w, w]).await;
        let [done_before, fresh, stale_target, two_epochs, doomed] = [0, 1, 2, 3, 4].map(|i| c[i].lease);
        assert_eq!(c[4].run_id, doomed_run);
        assert_eq!(
            complete(&t.store, now, &[(done_before, metrics(0.0))]).await,
            [CompleteOutcome::Accepted]
        );
        assert!(matches!(
            t.store
                .run_cancel(RunCancelParams {
                    now,
                    run_id: doomed_run
                })
                .await
                .unwrap(),
            RunCancelOutcome::Cancelled { queued: 0, leased: 1 }
        ));

        let later = t.clock.advance(Duration::from_secs(1));
        let stale = Lease {
            epoch: stale_target.epoch + 7,
            ..stale_target
        };
        let wrong = Lease {
            epoch: two_epochs.epoch - 1,
            ..two_epochs
        };
        let unknown = Lease {
            job_id: JobId(doomed.job_id.0 + 1000),
            epoch: 1,
        };
        let batch = [
            (fresh, metrics(0.1)),
            (done_before, metrics(0.9)),
            (stale, metrics(0.9)),
            (fresh, metrics(0.8)),
            (wrong, metrics(0.9)),
            (two_epochs, metrics(0.3)),
            (doomed, metrics(0.9)),
            (unknown, metrics(0.9)),
        ];
        assert_eq!(
            complete(&t.store, later, &batch).await,
            [
                CompleteOutcome::Accepted,
                CompleteOutcome::AlreadyAccepted,
                CompleteOutcome::Stale,
                CompleteOutcome::AlreadyAccepted,
                CompleteOutcome::Stale,
                CompleteOutcome::Accepted,
                CompleteOutcome::Cancelled,
                CompleteOutcome::NotFound,
            ]
        );
        let result = |j: Job| (j.state, j.result, j.finished_at);
        assert_eq!(
            result(job(&t.store, fresh.job_id).await),
            (JobState::Done, Some(metrics(0.1)), Some(later))
        );
        assert_eq!(
            result(job(&t.store, done_before.job_id).await),
            (JobState::Done, Some(metrics(0.0)), Some(now))
        );
        assert_eq!(
            result(job(&t.store, stale_target.job_id).await),
            (JobState::Leased, None, None)
        );
        assert_eq!(
            result(job(&t.store, two_epochs.job_id).await),
            (JobState::Done, Some(metrics(0.3)), Some(later))
        );
        assert_eq!(
            result(job(&t.store, doomed.job_id).await),
            (JobState::Cancelled, None, Some(now))
        );
        assert!(complete(&t.store, later, &[]).await.is_empty());
    }

    /// Two callers on separate connections complete the same leases at once, in opposite orders and different
    /// batch sizes (a retry racing the original): each job accepts exactly one, whose result is stored, and the
    /// other hears already-accepted.
    pub async fn concurrent_repeats_accept_exactly_once<S: JobStore>(t: Bundle<S>) {
        const JOBS: usize = 120;
        let cells = grid(JOBS - 1);
        create_run(&t, &as_refs(&cells), false, 3).await;
        let now = t.clock.now();
        let w = register(&t.store, now, "w").await;
        let leases: Vec<Lease> = claim(&t.store, now, &vec![w; JOBS])
            .await
            .iter()
            .map(|c| c.lease)
            .collect();
        assert_eq!(leases.len(), JOBS);

        let spawn = |store: S, leases: Vec<Lease>, batch: usize, tag: &'static str| {
            tokio::spawn(async move {
                let mut outcomes = BTreeMap::new();
                for chunk in leases.chunks(batch) {
                    let items: Vec<_> = chunk.iter().map(|l| (*l, json!({ "by": tag }))).collect();
                    for (lease, outcome) in chunk.iter().zip(complete(&store, now, &items).await) {
                        outcomes.insert(lease.job_id, outcome);
                    }
                    tokio::task::yield_now().await;
                }
                outcomes
            })
        };
        let reversed: Vec<_> = leases.iter().rev().copied().collect();
        let a = spawn(t.store.clone(), leases.clone(), 7, "a");
        let b = spawn(t.peer.clone(), reversed, 5, "b");
        let (a, b) = (a.await.unwrap(), b.await.unwrap());

        let tag_of = ["a", "b"];
        let mut won = [0, 0];
        for lease in &leases {
            let stored = job(&t.store, lease.job_id).await;
            let winner = match (a[&lease.job_id], b[&lease.job_id]) {
                (CompleteOutcome::Accepted, CompleteOutcome::AlreadyAccepted) => 0,
                (CompleteOutcome::AlreadyAccepted, CompleteOutcome::Accepted) => 1,
                other => panic!("job {}: {other:?}", lease.job_id),
            };
            won[winner] += 1;
            assert_eq!(
                stored.result,
                Some(json!({ "by": tag_of[winner] })),
                "job {}",
                lease.job_id
            );
        }
        assert_eq!(won[0] + won[1], JOBS);
    }
}

pub mod job_fail {
    use super::*;

    /// Each retryable failure queues the job again after min(base * 2^(attempt - 1), cap); the run's last
    /// attempt fails it for good, keeping the attempt count and its error; a repeated failure changes nothing.
    pub async fn retries_with_backoff_then_fails_with_the_last_error<S: JobStore>(t: Bundle<S>) {
        create_run(&t, &[], false, 3).await;
        let w = register(&t.store, t.clock.now(), "w").await;

        let first = claim_one(&t.store, t.clock.now(), w).await.unwrap().lease;
        let now = t.clock.advance(Duration::from_secs(2));
        let retry_at = now + Duration::from_secs(10);
        let outcome = fail(&t.store, now, first, "CUDA out of memory", true).await;
        assert_eq!(
            outcome,
            FailOutcome::Retrying {
                attempt: 1,
                available_at: retry_at
            }
        );
        let stored = job(&t.store, first.job_id).await;
        assert_eq!(
            (stored.state, stored.attempt, stored.available_at),
            (JobState::Queued, 1, retry_at)
        );
        assert_eq!(
            (stored.last_error.as_deref(), stored.lease_owner, stored.finished_at),
            (Some("CUDA out of memory"), None, None)
        );
        assert_eq!(
            fail(&t.store, now, first, "CUDA out of memory", true).await,
            FailOutcome::Stale,
            "repeated"
        );

        let now = t.clock.set(retry_at - Duration::from_micros(1));
        assert_eq!(claim_one(&t.store, now, w).await, None, "backing off");
        let now = t.clock.set(retry_at);
        let second = claim_one(&t.store, now, w).await.unwrap();
        assert_eq!((second.lease.epoch, second.attempt), (2, 2));
        // 10 s * 2 = 20 s, capped at 15 s.
        let retry_at = now + Duration::from_secs(15);
        let outcome = fail(&t.store, now, second.lease, "worker restarted", true).await;
        assert_eq!(
            outcome,
            FailOutcome::Retrying {
                attempt: 2,
                available_at: retry_at
            }
        );

        let now = t.clock.set(retry_at);
        let third = claim_one(&t.store, now, w).await.unwrap();
        assert_eq!((third.lease.epoch, third.attempt), (3, 3));
        let now = t.clock.advance(Duration::from_secs(1));
        assert_eq!(
            fail(&t.store, now, third.lease, "dataset checksum mismatch", true).await,
            FailOutcome::Failed { attempt: 3 }
        );
        let failed = job(&t.store, third.lease.job_id).await;
        assert_eq!(
            (failed.state, failed.attempt, failed.lease_epoch),
            (JobState::Failed, 3, 3)
        );
        assert_eq!(
            (failed.last_error.as_deref(), failed.finished_at),
            (Some("dataset checksum mismatch"), Some(now))
        );
        assert_eq!(
            (failed.lease_owner, failed.lease_deadline, failed.result.clone()),
            (None, None, None)
        );

        let later = t.clock.advance(Duration::from_secs(3600));
        assert_eq!(claim_one(&t.store, later, w).await, None);
        assert_eq!(
            fail(&t.store, later, third.lease, "again", true).await,
            FailOutcome::Stale
        );
        assert_eq!(
            complete(&t.store, later, &[(third.lease, metrics(0.1))]).await,
            [CompleteOutcome::Stale]
        );
        assert_eq!(job(&t.store, third.lease.job_id).await, failed);
        let unknown = Lease {
            job_id: JobId(third.lease.job_id.0 + 1000),
            epoch: 1,
        };
        assert_eq!(fail(&t.store, later, unknown, "?", true).await, FailOutcome::NotFound);
    }

    /// A failure that will not go away on retry fails the job at its first attempt.
    pub async fn not_retryable_fails_at_once<S: JobStore>(t: Bundle<S>) {
        create_run(&t, &[], false, 3).await;
        let now = t.clock.now();
        let w = register(&t.store, now, "w").await;
        let lease = claim_one(&t.store, now, w).await.unwrap().lease;
        let error = "node 'p2o.LSTM.0' (LSTM): unsupported op";
        assert_eq!(
            fail(&t.store, now, lease, error, false).await,
            FailOutcome::Failed { attempt: 1 }
        );
        let stored = job(&t.store, lease.job_id).await;
        assert_eq!(
            (stored.state, stored.attempt, stored.last_error.as_deref()),
            (JobState::Failed, 1, Some(error))
        );
    }
}

pub mod job_skip {
    use super::*;

    /// An early stop skips the group's queued cells above the ratio, with the reason and a finish time; the
    /// leased cell above it still completes, the done one keeps its result, other groups are untouched, and a
    /// repeat skips nothing.
    pub async fn skips_queued_cells_above_the_ratio_only<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let cells = [("a", 0.1), ("a", 0.2), ("a", 0.3), ("a", 0.4), ("b", 0.1), ("b", 0.2)];
        let run = create_run(&t, &cells, false, 3).await;
        let w = register(&t.store, now, "w").await;
        let baseline = claim_one(&t.store, now, w).await.unwrap();
        let a1 = claim_one(&t.store, now, w).await.unwrap();
        let a2 = claim_one(&t.store, now, w).await.unwrap();
        assert_eq!(label(a2.kind, &a2.group_key, a2.ratio), "cell a 0.2");
        complete(
            &t.store,
            now,
            &[(baseline.lease, metrics(0.0)), (a1.lease, metrics(0.6))],
        )
        .await;

        let later = t.clock.advance(Duration::from_secs(3));
        let reason = "early stop: loss 0.6000 at ratio 0.1 exceeds early_stop_loss 0.5";
        let skip = |group: &str, above_ratio: f64| JobSkipParams {
            now: later,
            run_id: run,
            group_key: group.into(),
            above_ratio,
            reason: reason.into(),
        };
        assert_eq!(t.store.job_skip(skip("a", 0.1)).await.unwrap(), 2);
        assert_eq!(
            t.store.job_skip(skip("a", 0.1)).await.unwrap(),
            0,
            "a repeat skips nothing"
        );
        assert_eq!(t.store.job_skip(skip("zz", 0.1)).await.unwrap(), 0);

        let jobs = t.store.job_list_by_run(run).await.unwrap();
        let state: BTreeMap<String, (JobState, Option<String>, Option<OffsetDateTime>)> = jobs
            .iter()
            .map(|j| {
                (
                    label(j.kind, &j.group_key, j.ratio),
                    (j.state, j.last_error.clone(), j.finished_at),
                )
            })
            .collect();
        let skipped = (JobState::Skipped, Some(reason.to_owned()), Some(later));
        assert_eq!(state["cell a 0.3"], skipped);
        assert_eq!(state["cell a 0.4"], skipped);
        assert_eq!(state["cell a 0.2"], (JobState::Leased, None, None));
        assert_eq!(state["cell a 0.1"], (JobState::Done, None, Some(now)));
        assert_eq!(state["cell b 0.1"], (JobState::Queued, None, None));
        assert_eq!(state["cell b 0.2"], (JobState::Queued, None, None));
        let done = jobs.iter().find(|j| j.id == a1.lease.job_id).unwrap();
        assert_eq!(done.result, Some(metrics(0.6)), "a done cell keeps its real result");

        assert_eq!(
            complete(&t.store, later, &[(a2.lease, metrics(0.7))]).await,
            [CompleteOutcome::Accepted],
            "a leased cell above the ratio still completes"
        );
        let next = claim_one(&t.store, later, w).await.unwrap();
        assert_eq!(label(next.kind, &next.group_key, next.ratio), "cell b 0.1");
        let summary = t.store.run_list(None).await.unwrap();
        assert_eq!(summary[0].jobs.skipped, 2);
    }
}

pub mod run_cancel {
    use super::*;

    /// Cancelling stops dispatch at once: queued and leased jobs become cancelled, done ones keep their result;
    /// the leased job's worker hears "cancelled" and its late completion or failure is refused and dropped.
    /// Another run is untouched; cancelling again or an unknown run changes nothing.
    pub async fn stops_dispatch_and_refuses_the_leased_result<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("a", 0.1), ("a", 0.2), ("b", 0.1)], true, 3).await;
        let other = create_run(&t, &[("a", 0.1)], false, 3).await;
        let now = t.clock.now();
        let w = register(&t.store, now, "w").await;
        let claimed = claim(&t.store, now, &[w, w]).await;
        let (baseline, leased) = (claimed[0].lease, claimed[1].lease);
        assert_eq!(
            complete(&t.store, now, &[(baseline, metrics(0.0))]).await,
            [CompleteOutcome::Accepted]
        );

        let now = t.clock.advance(Duration::from_secs(1));
        let outcome = t.store.run_cancel(RunCancelParams { now, run_id: run }).await.unwrap();
        assert_eq!(
            outcome,
            RunCancelOutcome::Cancelled { queued: 3, leased: 1 },
            "two cells and the export queued"
        );
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!((stored.state, stored.finished_at), (RunState::Cancelled, Some(now)));
        let jobs = t.store.job_list_by_run(run).await.unwrap();
        let states: Vec<_> = jobs.iter().map(|j| (j.kind, j.state)).collect();
        assert_eq!(
            states,
            [
                (JobKind::Baseline, JobState::Done),
                (JobKind::Cell, JobState::Cancelled),
                (JobKind::Cell, JobState::Cancelled),
                (JobKind::Cell, JobState::Cancelled),
                (JobKind::Export, JobState::Cancelled)
            ]
        );
        assert_eq!(jobs[0].result, Some(metrics(0.0)));
        assert!(
            jobs[1..]
                .iter()
                .all(|j| j.finished_at == Some(now) && j.lease_owner.is_none() && j.result.is_none())
        );

        let later = t.clock.advance(Duration::from_secs(1));
        let next = claim(&t.store, later, &[w, w, w]).await;
        let runs: Vec<_> = next.iter().map(|c| c.run_id).collect();
        assert_eq!(runs, [other, other], "only the other run's baseline and cell");

        assert_eq!(heartbeat(&t.store, later, leased).await, HeartbeatOutcome::Cancelled);
        assert_eq!(
            complete(&t.store, later, &[(leased, metrics(0.2))]).await,
            [CompleteOutcome::Cancelled]
        );
        assert_eq!(
            fail(&t.store, later, leased, "stopped", true).await,
            FailOutcome::Cancelled
        );
        let refused = job(&t.store, leased.job_id).await;
        assert_eq!(
            (refused.state, refused.result, refused.last_error),
            (JobState::Cancelled, None, None)
        );
        let stale = Lease {
            epoch: leased.epoch + 1,
            ..leased
        };
        assert_eq!(heartbeat(&t.store, later, stale).await, HeartbeatOutcome::Lost);

        let far = t.clock.advance(LEASE * 10);
        let rescued: Vec<_> = rescue(&t.store, far, 10).await.into_iter().map(|(l, ..)| l).collect();
        assert_eq!(
            rescued,
            next.iter().map(|c| c.lease).collect::<Vec<_>>(),
            "only the other run's leases"
        );

        let again = t
            .store
            .run_cancel(RunCancelParams { now: far, run_id: run })
            .await
            .unwrap();
        assert_eq!(again, RunCancelOutcome::AlreadyFinal(RunState::Cancelled));
        assert_eq!(t.store.run_get(run).await.unwrap().unwrap().finished_at, Some(now));
        let missing = RunId(other.0 + 1000);
        assert_eq!(
            t.store
                .run_cancel(RunCancelParams {
                    now: far,
                    run_id: missing
                })
                .await
                .unwrap(),
            RunCancelOutcome::NotFound
        );
    }
}

pub mod run_create {
    use super::*;

    /// A run stores its fields and its grid exactly (float8 ratios: 0.1 reads back as 0.1), all queued at
    /// `now`; bad parameters and unknown artifacts are refused, naming the field.
    pub async fn stores_the_run_and_its_grid<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let cells = [
            ("conv2d_3.w_0", 0.1),
            ("conv2d_3.w_0", 1.0 / 3.0),
            ("conv2d_0.w_0", 0.7),
        ];
        let run = create_run(&t, &cells, true, 4).await;

        let stored = t.store.run_get(run).await.unwrap().unwrap();
        let expected = run_params(now, &cells, true, 4);
        assert_eq!(stored.id, run);
        assert_eq!(
            (stored.state, stored.created_at, stored.finished_at),
            (RunState::Running, now, None)
        );
        assert_eq!(
            (
                &stored.config_yaml,
                &stored.model_digest,
                &stored.dataset_digest,
                &stored.criterion,
                stored.max_attempts
            ),
            (
                &expected.config_yaml,
                &expected.model_digest,
                &expected.dataset_digest,
                &expected.criterion,
                4
            )
        );

        let jobs = t.store.job_list_by_run(run).await.unwrap();
        let grid: Vec<_> = jobs.iter().map(|j| (j.kind, j.group_key.as_deref(), j.ratio)).collect();
        assert_eq!(
            grid,
            [
                (JobKind::Baseline, None, None),
                (JobKind::Cell, Some("conv2d_3.w_0"), Some(0.1)),
                (JobKind::Cell, Some("conv2d_3.w_0"), Some(1.0 / 3.0)),
                (JobKind::Cell, Some("conv2d_0.w_0"), Some(0.7)),
                (JobKind::Export, None, None),
            ]
        );
        for j in &jobs {
            assert_eq!(
                (j.run_id, j.state, j.attempt, j.lease_epoch),
                (run, JobState::Queued, 0, 0)
            );
            assert_eq!((j.available_at, j.created_at, j.finished_at), (now, now, None));
            assert_eq!(
                (j.lease_owner, j.lease_deadline, &j.result, &j.last_error),
                (None, None, &None, &None)
            );
        }
        assert_eq!(t.store.run_get(RunId(run.0 + 1000)).await.unwrap(), None);
        assert!(t.store.job_list_by_run(RunId(run.0 + 1000)).await.unwrap().is_empty());

        let mut unknown = run_params(now, &cells, false, 3);
        unknown.dataset_digest = "3".repeat(64);
        match t.store.run_create(unknown).await {
            Err(StoreError::ArtifactNotFound { field, digest, .. }) => {
                assert_eq!((field, digest), ("dataset_digest", "3".repeat(64)))
            }
            other => panic!("expected ArtifactNotFound, got {other:?}"),
        }
        match t.store.run_create(run_params(now, &[("a", 0.0)], false, 3)).await {
            Err(StoreError::InvalidInput { field, .. }) => assert_eq!(field, "cells[0].ratio"),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
        // Nothing half-made: claims see only the first run's jobs.
        let w = register(&t.store, now, "w").await;
        let all = claim(&t.store, now, &[w; 10]).await;
        assert!(all.iter().all(|c| c.run_id == run));
        assert_eq!(all.len(), 4, "baseline and cells; the export waits");
    }
}

pub mod worker_register {
    use super::*;

    /// Each registration gets its own id and reads back as written.
    pub async fn gives_each_worker_an_id<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let a = t
            .store
            .worker_register(WorkerRegisterParams {
                now,
                name: "node-1".into(),
                device: "cuda:0".into(),
            })
            .await
            .unwrap();
        let b = t
            .store
            .worker_register(WorkerRegisterParams {
                now,
                name: "node-1".into(),
                device: "cuda:1".into(),
            })
            .await
            .unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(
            (a.name.as_str(), a.device.as_str(), a.registered_at, a.last_seen_at),
            ("node-1", "cuda:0", now, now)
        );
        assert_eq!(t.store.worker_get(b.id).await.unwrap(), Some(b.clone()));
        assert_eq!(t.store.worker_get(WorkerId(b.id.0 + 1000)).await.unwrap(), None);
    }
}

pub mod artifact_put {
    use super::*;

    /// Storing the same artifact twice is a no-op; the same digest with another size is refused; a digest that
    /// is not a sha256 is refused.
    pub async fn is_idempotent_and_refuses_conflicts<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let params = |digest: &str, size_bytes| ArtifactPutParams {
            now,
            digest: digest.into(),
            size_bytes,
            media_type: "application/onnx".into(),
        };
        assert_eq!(
            t.store.artifact_put(params(MODEL, 42)).await.unwrap(),
            ArtifactPutOutcome::Created
        );
        let later = ArtifactPutParams {
            now: t.clock.advance(Duration::from_secs(1)),
            ..params(MODEL, 42)
        };
        assert_eq!(
            t.store.artifact_put(later).await.unwrap(),
            ArtifactPutOutcome::AlreadyStored
        );
        let stored = t.store.artifact_get(MODEL).await.unwrap().unwrap();
        assert_eq!(
            (stored.size_bytes, stored.media_type.as_str(), stored.created_at),
            (42, "application/onnx", now)
        );

        match t.store.artifact_put(params(MODEL, 43)).await {
            Err(StoreError::ArtifactConflict { stored_size, size, .. }) => assert_eq!((stored_size, size), (42, 43)),
            other => panic!("expected ArtifactConflict, got {other:?}"),
        }
        match t
            .store
            .artifact_put(params(&MODEL.to_uppercase().replace('1', "A"), 1))
            .await
        {
            Err(StoreError::InvalidInput { field, .. }) => assert_eq!(field, "digest"),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
        assert_eq!(t.store.artifact_get(DATASET).await.unwrap(), None);
    }
}

pub mod run_finish {
    use super::*;

    /// A failed run keeps its done jobs and skips the rest in the same statement: nothing is claimable
    /// afterwards, a skipped lease's heartbeat is lost, and finishing again changes nothing.
    pub async fn fails_a_run_and_skips_what_is_left<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("conv2d_0.w_0", 0.5), ("conv2d_1.w_0", 0.5)], false, 3).await;
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        let baseline = claim_one(&t.store, now, worker).await.unwrap();
        let completion = JobCompletion {
            lease: baseline.lease,
            result: json!({"metrics": {"hmean": 0.0}}),
        };
        t.store
            .job_complete(JobCompleteParams {
                now,
                completions: vec![completion],
            })
            .await
            .unwrap();
        let leased = claim_one(&t.store, now, worker).await.unwrap();

        let failed = RunFinishParams {
            now,
            run_id: run,
            state: RunState::Failed,
            error: Some("the baseline's hmean is 0".into()),
        };
        assert!(t.store.run_finish(failed.clone()).await.unwrap());
        assert!(!t.store.run_finish(failed).await.unwrap(), "a final run does not move");
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.error.as_deref(), stored.finished_at),
            (RunState::Failed, Some("the baseline's hmean is 0"), Some(now))
        );
        let states: Vec<JobState> = t
            .store
            .job_list_by_run(run)
            .await
            .unwrap()
            .iter()
            .map(|j| j.state)
            .collect();
        assert_eq!(states, [JobState::Done, JobState::Skipped, JobState::Skipped]);
        assert!(claim_one(&t.store, now, worker).await.is_none());
        let beat = JobHeartbeatParams {
            now,
            lease: leased.lease,
            lease_duration: LEASE,
        };
        assert_eq!(t.store.job_heartbeat(beat).await.unwrap(), HeartbeatOutcome::Lost);

        let refused = t
            .store
            .run_finish(RunFinishParams {
                now,
                run_id: run,
                state: RunState::Failed,
                error: None,
            })
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("needs its error"), "{refused}");
    }

    /// A run finishes done only once none of its jobs is queued or leased: a finish decided from jobs read
    /// before more were queued leaves the run running.
    pub async fn done_waits_for_queued_and_leased_jobs<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("a", 0.5)], false, 3).await;
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        let done = RunFinishParams {
            now,
            run_id: run,
            state: RunState::Done,
            error: None,
        };
        assert!(!t.store.run_finish(done.clone()).await.unwrap(), "queued");
        let baseline = claim_one(&t.store, now, worker).await.unwrap();
        complete(&t.store, now, &[(baseline.lease, json!({"metrics": {"hmean": 0.5}}))]).await;
        let cell = claim_one(&t.store, now, worker).await.unwrap();
        assert!(!t.store.run_finish(done.clone()).await.unwrap(), "leased");
        assert_eq!(t.store.run_get(run).await.unwrap().unwrap().state, RunState::Running);
        assert_eq!(job(&t.store, cell.lease.job_id).await.state, JobState::Leased);
        complete(&t.store, now, &[(cell.lease, json!({"metrics": {"hmean": 0.5}}))]).await;
        assert!(t.store.run_finish(done).await.unwrap());
        assert_eq!(t.store.run_get(run).await.unwrap().unwrap().state, RunState::Done);
    }
}

pub mod run_plan {
    use super::*;

    /// A requested plan (`PlanMode::Replace`) stores the plan; with an export it queues one export job (reset
    /// in place when planned again) and a done run runs again until it ends. A cancelled run is not planned.
    pub async fn stores_the_plan_and_queues_one_export<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[], false, 3).await;
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        let baseline = claim_one(&t.store, now, worker).await.unwrap();
        let result = json!({"metrics": {"hmean": 0.5}});
        let complete = |lease| JobCompleteParams {
            now,
            completions: vec![JobCompletion {
                lease,
                result: result.clone(),
            }],
        };
        t.store.job_complete(complete(baseline.lease)).await.unwrap();
        let done = RunFinishParams {
            now,
            run_id: run,
            state: RunState::Done,
            error: None,
        };
        assert!(t.store.run_finish(done).await.unwrap());

        let plan = |export| RunPlanParams {
            now,
            run_id: run,
            plan: json!({"conv2d_0.w_0": 0.25}),
            export,
            mode: PlanMode::Replace,
        };
        assert_eq!(t.store.run_plan(plan(false)).await.unwrap(), RunPlanOutcome::Planned);
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.plan),
            (RunState::Done, Some(json!({"conv2d_0.w_0": 0.25})))
        );

        assert_eq!(t.store.run_plan(plan(true)).await.unwrap(), RunPlanOutcome::Planned);
        assert_eq!(t.store.run_get(run).await.unwrap().unwrap().state, RunState::Running);
        let export = claim_one(&t.store, now, worker).await.expect("the export");
        assert_eq!(export.kind, JobKind::Export);
        t.store.job_complete(complete(export.lease)).await.unwrap();
        // Planned again: the same export job, queued anew under a later epoch.
        assert_eq!(t.store.run_plan(plan(true)).await.unwrap(), RunPlanOutcome::Planned);
        let again = claim_one(&t.store, now, worker).await.expect("the export again");
        assert_eq!(again.lease.job_id, export.lease.job_id);
        assert!(again.lease.epoch > export.lease.epoch);
        let exports = t.store.job_list_by_run(run).await.unwrap();
        assert_eq!(exports.iter().filter(|j| j.kind == JobKind::Export).count(), 1);

        t.store.run_cancel(RunCancelParams { now, run_id: run }).await.unwrap();
        assert_eq!(
            t.store.run_plan(plan(true)).await.unwrap(),
            RunPlanOutcome::NotPlannable(RunState::Cancelled)
        );
        let missing = RunPlanParams {
            run_id: RunId(run.0 + 1000),
            ..plan(false)
        };
        assert_eq!(t.store.run_plan(missing).await.unwrap(), RunPlanOutcome::NotFound);
    }

    /// A run whose grid is done, its baseline and one cell completed: ready for its pipeline to plan.
    async fn grid_done_run<S: JobStore>(t: &Bundle<S>, worker: WorkerId) -> RunId {
        let run = create_run(t, &[("a", 0.5)], false, 3).await;
        let now = t.clock.now();
        for _ in 0..2 {
            let job = claim_one(&t.store, now, worker)
                .await
                .expect("the baseline, then the cell");
            complete(&t.store, now, &[(job.lease, json!({"metrics": {"hmean": 0.5}}))]).await;
        }
        run
    }

    fn pipeline_plan(t: &Bundle<impl JobStore>, run_id: RunId, ratio: f64) -> RunPlanParams {
        RunPlanParams {
            now: t.clock.now(),
            run_id,
            plan: json!({ "a": ratio }),
            export: true,
            mode: PlanMode::Initial,
        }
    }

    /// Two coordinators' pipelines plan the same run from what each read: the second plan finds the run
    /// planned and changes nothing, so the export a worker holds stays its lease (same epoch, one attempt),
    /// the first plan stays, and once the export is done and the run finished, planning again neither reopens
    /// the run nor queues the export again.
    pub async fn pipeline_plans_once_and_never_requeues_the_export<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        let run = grid_done_run(&t, worker).await;
        assert_eq!(
            t.store.run_plan(pipeline_plan(&t, run, 0.25)).await.unwrap(),
            RunPlanOutcome::Planned
        );
        let export = claim_one(&t.store, now, worker).await.expect("the export");
        assert_eq!(export.kind, JobKind::Export);

        assert_eq!(
            t.peer.run_plan(pipeline_plan(&t, run, 0.75)).await.unwrap(),
            RunPlanOutcome::AlreadyPlanned,
            "the second coordinator's plan"
        );
        let held = job(&t.store, export.lease.job_id).await;
        assert_eq!(
            (held.state, held.lease_epoch, held.attempt),
            (JobState::Leased, export.lease.epoch, 1),
            "the leased export is not queued again"
        );
        assert_eq!(
            t.store.run_get(run).await.unwrap().unwrap().plan,
            Some(json!({"a": 0.25}))
        );
        assert!(
            claim_one(&t.store, now, worker).await.is_none(),
            "nothing to compute twice"
        );
        assert!(matches!(
            heartbeat(&t.store, now, export.lease).await,
            HeartbeatOutcome::Extended { .. }
        ));
        assert_eq!(
            complete(&t.store, now, &[(export.lease, json!({"metrics": {"hmean": 0.5}}))]).await,
            [CompleteOutcome::Accepted]
        );
        let done = RunFinishParams {
            now,
            run_id: run,
            state: RunState::Done,
            error: None,
        };
        assert!(t.store.run_finish(done).await.unwrap());

        assert_eq!(
            t.peer.run_plan(pipeline_plan(&t, run, 0.75)).await.unwrap(),
            RunPlanOutcome::AlreadyPlanned,
            "a late round on the done run"
        );
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.plan),
            (RunState::Done, Some(json!({"a": 0.25}))),
            "the done run is not reopened"
        );
        let exports: Vec<Job> = t
            .store
            .job_list_by_run(run)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == JobKind::Export)
            .collect();
        assert_eq!(exports.len(), 1);
        assert_eq!((exports[0].state, exports[0].attempt), (JobState::Done, 1));
        assert!(claim_one(&t.store, now, worker).await.is_none());
    }

    /// Both coordinators' plans at once, each on its own connection: one is stored, with one export.
    pub async fn concurrent_pipeline_plans_store_one<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        let run = grid_done_run(&t, worker).await;
        let (first, second) = tokio::join!(
            t.store.run_plan(pipeline_plan(&t, run, 0.25)),
            t.peer.run_plan(pipeline_plan(&t, run, 0.75))
        );
        let mut outcomes = [first.unwrap(), second.unwrap()];
        outcomes.sort_by_key(|o| *o != RunPlanOutcome::Planned);
        assert_eq!(outcomes, [RunPlanOutcome::Planned, RunPlanOutcome::AlreadyPlanned]);
        let jobs = t.store.job_list_by_run(run).await.unwrap();
        assert_eq!(jobs.iter().filter(|j| j.kind == JobKind::Export).count(), 1);
    }

    /// The pipeline's plan keeps an export the run was created with as it is; a requested plan with an export
    /// queues it anew unless a worker holds it, and one without an export leaves the exported plan alone.
    pub async fn requested_plan_spares_a_leased_export<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        let run = create_run(&t, &[], true, 3).await;
        let baseline = claim_one(&t.store, now, worker).await.expect("the baseline");
        complete(&t.store, now, &[(baseline.lease, json!({"metrics": {"hmean": 0.5}}))]).await;
        let export = claim_one(&t.store, now, worker).await.expect("the export");
        assert_eq!(
            t.store.run_plan(pipeline_plan(&t, run, 0.25)).await.unwrap(),
            RunPlanOutcome::Planned,
            "the first plan"
        );
        let requested = |export| RunPlanParams {
            mode: PlanMode::Replace,
            export,
            ..pipeline_plan(&t, run, 0.75)
        };
        assert_eq!(
            t.store.run_plan(requested(true)).await.unwrap(),
            RunPlanOutcome::ExportLeased
        );
        assert_eq!(
            t.store.run_plan(requested(false)).await.unwrap(),
            RunPlanOutcome::Exported
        );
        let held = job(&t.store, export.lease.job_id).await;
        assert_eq!((held.state, held.lease_epoch), (JobState::Leased, export.lease.epoch));
        assert_eq!(
            t.store.run_get(run).await.unwrap().unwrap().plan,
            Some(json!({"a": 0.25}))
        );

        fail(&t.store, now, export.lease, "gone", false).await;
        assert_eq!(
            t.store.run_plan(requested(true)).await.unwrap(),
            RunPlanOutcome::Planned
        );
        let again = claim_one(&t.store, now, worker).await.expect("the export, queued anew");
        assert_eq!(again.lease.job_id, export.lease.job_id);
        assert!(again.lease.epoch > export.lease.epoch);
        assert_eq!(
            t.store.run_get(run).await.unwrap().unwrap().plan,
            Some(json!({"a": 0.75}))
        );
    }
}

pub mod job_probe_add {
    use super::*;

    /// Probes queue once per step, carry their plan to the claim's reader, go after the cells in dispatch, and
    /// are refused once the run is planned or over; a bad step is refused by name.
    pub async fn queues_each_step_once_until_the_run_is_planned<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("a", 0.5)], true, 3).await;
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        let plan = |r: f64| json!({"a": r});
        let add = |probes: Vec<(u32, Value)>| JobProbeAddParams {
            now,
            run_id: run,
            probes,
        };
        assert_eq!(
            t.store
                .job_probe_add(add(vec![(2, plan(0.5)), (1, plan(0.25))]))
                .await
                .unwrap(),
            2
        );
        // A restarted pipeline queuing the same round again adds only what is new.
        assert_eq!(
            t.store
                .job_probe_add(add(vec![(2, plan(0.5)), (3, plan(0.75))]))
                .await
                .unwrap(),
            1
        );
        for bad in [vec![(0, plan(0.1))], vec![(4, plan(0.1)), (4, plan(0.2))]] {
            let error = t.store.job_probe_add(add(bad)).await.unwrap_err();
            assert!(
                matches!(error, StoreError::InvalidInput { ref field, .. } if field.starts_with("probes[")),
                "{error}"
            );
        }
        let jobs = t.store.job_list_by_run(run).await.unwrap();
        let probes: Vec<(Option<u32>, Option<Value>)> = jobs
            .iter()
            .filter(|j| j.kind == JobKind::Probe)
            .map(|j| (j.probe_step, j.plan.clone()))
            .collect();
        assert_eq!(
            probes,
            [
                (Some(2), Some(plan(0.5))),
                (Some(1), Some(plan(0.25))),
                (Some(3), Some(plan(0.75)))
            ]
        );
        let kinds: Vec<JobKind> = claim(&t.store, now, &[worker, worker, worker, worker, worker])
            .await
            .iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                JobKind::Baseline,
                JobKind::Cell,
                JobKind::Probe,
                JobKind::Probe,
                JobKind::Probe
            ],
            "the export waits for the probes"
        );
        let planned = RunPlanParams {
            now,
            run_id: run,
            plan: plan(0.5),
            export: false,
            mode: PlanMode::Initial,
        };
        t.store.run_plan(planned).await.unwrap();
        assert_eq!(
            t.store.job_probe_add(add(vec![(5, plan(0.1))])).await.unwrap(),
            0,
            "planned"
        );
    }
}

pub mod run_replan {
    use super::*;

    /// A done run takes a new spec and runs again with no plan and no export; its cells stay. A leased
    /// export, a cancelled run and a missing one are refused.
    pub async fn reopens_a_finished_run_without_its_plan_and_export<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("a", 0.5)], false, 3).await;
        let now = t.clock.now();
        let worker = register(&t.store, now, "w").await;
        let planned = |export| RunPlanParams {
            now,
            run_id: run,
            plan: json!({"a": 0.5}),
            export,
            mode: PlanMode::Initial,
        };
        t.store.run_plan(planned(true)).await.unwrap();
        let spec = json!({"name": "replanned", "metric": "hmean"});
        let replan = |run_id| RunReplanParams {
            run_id,
            spec: spec.clone(),
        };
        for _ in 0..2 {
            let job = claim_one(&t.store, now, worker).await.unwrap(); // baseline, cell
            complete(&t.store, now, &[(job.lease, json!({"metrics": {"hmean": 0.5}}))]).await;
        }
        let export = claim_one(&t.store, now, worker).await.expect("the export");
        assert_eq!(
            t.store.run_replan(replan(run)).await.unwrap(),
            RunPlanOutcome::ExportLeased
        );
        t.store
            .job_fail(JobFailParams {
                now,
                lease: export.lease,
                error: "gone".into(),
                retryable: false,
                backoff: BACKOFF,
            })
            .await
            .unwrap();
        assert_eq!(t.store.run_replan(replan(run)).await.unwrap(), RunPlanOutcome::Planned);
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.plan, stored.spec),
            (RunState::Running, None, spec.clone())
        );
        let jobs = t.store.job_list_by_run(run).await.unwrap();
        assert!(jobs.iter().all(|j| j.kind != JobKind::Export), "the export stayed");
        assert_eq!(jobs.len(), 2, "baseline and cell stay");

        t.store.run_cancel(RunCancelParams { now, run_id: run }).await.unwrap();
        assert_eq!(
            t.store.run_replan(replan(run)).await.unwrap(),
            RunPlanOutcome::NotPlannable(RunState::Cancelled)
        );
        assert_eq!(
            t.store.run_replan(replan(RunId(run.0 + 1000))).await.unwrap(),
            RunPlanOutcome::NotFound
        );
    }
}

pub mod run_list {
    use super::*;

    /// Runs come newest first with their jobs counted by state; a state filter keeps only those runs. Cells
    /// created with a known result are done from the start and never claimed.
    pub async fn counts_jobs_by_state_and_filters<S: JobStore>(t: Bundle<S>) {
        let first = create_run(&t, &[("a", 0.5)], false, 3).await;
        let now = t.clock.now();
        let mut params = run_params(now, &[("a", 0.5), ("b", 0.5)], false, 3);
        params.cells[1].result = Some(json!({"loss": 0.125}));
        let second = t.store.run_create(params).await.unwrap();
        let runs = t.store.run_list(None).await.unwrap();
        assert_eq!(runs.iter().map(|s| s.run.id).collect::<Vec<_>>(), [second, first]);
        assert_eq!(
            (runs[0].jobs.queued, runs[0].jobs.done, runs[0].jobs.total()),
            (2, 1, 3)
        );
        let imported = t.store.job_list_by_run(second).await.unwrap();
        let b = imported.iter().find(|j| j.group_key.as_deref() == Some("b")).unwrap();
        assert_eq!(
            (b.state, b.result.clone(), b.finished_at),
            (JobState::Done, Some(json!({"loss": 0.125})), Some(now))
        );

        t.store
            .run_cancel(RunCancelParams { now, run_id: first })
            .await
            .unwrap();
        let running = t.store.run_list(Some(RunState::Running)).await.unwrap();
        assert_eq!(running.iter().map(|s| s.run.id).collect::<Vec<_>>(), [second]);
        let cancelled = t.store.run_list(Some(RunState::Cancelled)).await.unwrap();
        assert_eq!(cancelled[0].jobs.cancelled, 2);
    }
}

pub mod worker_list {
    use super::*;

    /// Workers list with the leases they hold; a completion records who computed the job; a heartbeat is a
    /// sign of life.
    pub async fn lists_leases_and_records_who_completed<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("a", 0.5)], false, 3).await;
        let now = t.clock.now();
        let w1 = register(&t.store, now, "w1").await;
        let w2 = register(&t.store, now, "w2").await;
        let baseline = claim_one(&t.store, now, w1).await.unwrap();
        let cell = claim_one(&t.store, now, w2).await.unwrap();
        let listed = t.store.worker_list().await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|w| (w.worker.id, w.leases.clone()))
                .collect::<Vec<_>>(),
            [
                (w1, vec![(baseline.lease.job_id, run)]),
                (w2, vec![(cell.lease.job_id, run)])
            ]
        );
        let later = now + time::Duration::seconds(5);
        let beat = JobHeartbeatParams {
            now: later,
            lease: cell.lease,
            lease_duration: LEASE,
        };
        t.store.job_heartbeat(beat).await.unwrap();
        assert_eq!(t.store.worker_get(w2).await.unwrap().unwrap().last_seen_at, later);
        t.store
            .job_complete(JobCompleteParams {
                now,
                completions: vec![JobCompletion {
                    lease: baseline.lease,
                    result: json!({"metrics": {}}),
                }],
            })
            .await
            .unwrap();
        let done = t.store.job_get(baseline.lease.job_id).await.unwrap().unwrap();
        assert_eq!((done.done_by, done.leased_at), (Some(w1), Some(now)));
        assert!(t.store.worker_list().await.unwrap()[0].leases.is_empty());
    }
}

pub mod job_release {
    use super::*;
    use sensgrid_coordinator::store::{JobReleaseParams, ReleaseOutcome};

    async fn release<S: JobStore>(store: &S, now: OffsetDateTime, lease: Lease, error: &str) -> ReleaseOutcome {
        let params = JobReleaseParams {
            now,
            lease,
            error: error.into(),
        };
        store.job_release(params).await.unwrap()
    }

    /// A lease given back (a worker's disk full) queues the job again at once with its attempt taken back and
    /// its epoch kept: any number of hand-backs spend none of the run's attempts, the releasing worker's lease is
    /// stale afterwards, and the next claim is attempt 1.
    pub async fn hands_back_without_spending_the_attempt<S: JobStore>(t: Bundle<S>) {
        create_run(&t, &[("a", 0.5)], false, 2).await;
        let now = t.clock.now();
        let full = register(&t.store, now, "full").await;
        let healthy = register(&t.store, now, "healthy").await;
        let error = "worker 1 (full): cache/models: No space left on device (os error 28)";
        let mut last = None;
        for _ in 0..5 {
            let claimed = claim_one(&t.store, now, full)
                .await
                .expect("the baseline, back in the queue");
            assert_eq!((claimed.kind, claimed.attempt), (JobKind::Baseline, 1));
            assert_eq!(
                release(&t.store, now, claimed.lease, error).await,
                ReleaseOutcome::Released
            );
            last = Some(claimed.lease);
        }
        let last = last.unwrap();
        let stored = job(&t.store, last.job_id).await;
        assert_eq!(
            (
                stored.state,
                stored.attempt,
                stored.lease_epoch,
                stored.lease_owner,
                stored.lease_deadline,
                stored.available_at,
                stored.last_error.as_deref()
            ),
            (JobState::Queued, 0, 5, None, None, now, Some(error))
        );
        assert_eq!(
            release(&t.store, now, last, error).await,
            ReleaseOutcome::Stale,
            "released already"
        );
        assert_eq!(heartbeat(&t.store, now, last).await, HeartbeatOutcome::Lost);

        let taken = claim_one(&t.store, now, healthy).await.expect("claimable at once");
        assert_eq!(
            (taken.lease.job_id, taken.attempt, taken.lease.epoch),
            (last.job_id, 1, 6)
        );
        assert_eq!(
            fail(&t.store, now, taken.lease, "diverged", true).await,
            FailOutcome::Retrying {
                attempt: 1,
                available_at: now + BACKOFF.delay(1)
            },
            "the hand-backs spent none of the 2 attempts"
        );
    }

    /// A released lease of a cancelled run answers cancelled; an unknown job, not found.
    pub async fn refuses_a_cancelled_run_and_an_unknown_job<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[], false, 3).await;
        let now = t.clock.now();
        let w = register(&t.store, now, "w").await;
        let lease = claim_one(&t.store, now, w).await.unwrap().lease;
        t.store.run_cancel(RunCancelParams { now, run_id: run }).await.unwrap();
        assert_eq!(release(&t.store, now, lease, "full").await, ReleaseOutcome::Cancelled);
        assert_eq!(job(&t.store, lease.job_id).await.state, JobState::Cancelled);
        let unknown = Lease {
            job_id: JobId(lease.job_id.0 + 1000),
            epoch: 1,
        };
        assert_eq!(release(&t.store, now, unknown, "full").await, ReleaseOutcome::NotFound);
    }
}

pub mod run_retry {
    use super::*;
    use sensgrid_coordinator::store::{RunRetryOutcome, RunRetryParams};

    async fn retry<S: JobStore>(store: &S, now: OffsetDateTime, run_id: RunId) -> RunRetryOutcome {
        store.run_retry(RunRetryParams { now, run_id }).await.unwrap()
    }

    /// A run that ended done with a failed cell runs again: the cell is queued with a fresh attempt, claimable
    /// at once, its last error kept; once it is done the run can finish again. Retrying with nothing failed
    /// changes nothing, and a done run without failures stays done.
    pub async fn requeues_failed_jobs_and_reopens_a_done_run<S: JobStore>(t: Bundle<S>) {
        let run = create_run(&t, &[("a", 0.5), ("b", 0.5)], false, 1).await;
        let now = t.clock.now();
        let w = register(&t.store, now, "w").await;
        let baseline = claim_one(&t.store, now, w).await.unwrap();
        complete(&t.store, now, &[(baseline.lease, metrics(0.0))]).await;
        let a = claim_one(&t.store, now, w).await.unwrap();
        let error = "cache/bundles: No space left on device (os error 28)";
        assert_eq!(
            fail(&t.store, now, a.lease, error, true).await,
            FailOutcome::Failed { attempt: 1 }
        );
        let b = claim_one(&t.store, now, w).await.unwrap();
        complete(&t.store, now, &[(b.lease, metrics(0.1))]).await;
        let done = RunFinishParams {
            now,
            run_id: run,
            state: RunState::Done,
            error: None,
        };
        assert!(t.store.run_finish(done.clone()).await.unwrap());

        let later = now + Duration::from_secs(60);
        assert_eq!(
            retry(&t.store, later, run).await,
            RunRetryOutcome::Requeued {
                requeued: 1,
                reopened: true
            }
        );
        let stored = t.store.run_get(run).await.unwrap().unwrap();
        assert_eq!((stored.state, stored.finished_at), (RunState::Running, None));
        let cell = job(&t.store, a.lease.job_id).await;
        assert_eq!(
            (
                cell.state,
                cell.attempt,
                cell.available_at,
                cell.finished_at,
                cell.last_error.as_deref()
            ),
            (JobState::Queued, 0, later, None, Some(error))
        );
        let again = claim_one(&t.store, later, w)
            .await
            .expect("the failed cell, queued again");
        assert_eq!((again.lease.job_id, again.attempt), (a.lease.job_id, 1));
        assert_eq!(
            retry(&t.store, later, run).await,
            RunRetryOutcome::Requeued {
                requeued: 0,
                reopened: false
            },
            "a leased cell is not failed"
        );
        complete(&t.store, later, &[(again.lease, metrics(0.2))]).await;
        assert!(
            t.store
                .run_finish(RunFinishParams { now: later, ..done })
                .await
                .unwrap()
        );
        assert_eq!(
            retry(&t.store, later, run).await,
            RunRetryOutcome::Requeued {
                requeued: 0,
                reopened: false
            }
        );
        assert_eq!(t.store.run_get(run).await.unwrap().unwrap().state, RunState::Done);
    }

    /// A failed or cancelled run is never reopened and its failed jobs stay failed; an unknown run is not found.
    pub async fn leaves_failed_and_cancelled_runs_as_they_are<S: JobStore>(t: Bundle<S>) {
        let now = t.clock.now();
        let w = register(&t.store, now, "w").await;
        let failed_run = create_run(&t, &[("a", 0.5)], false, 1).await;
        let baseline = claim_one(&t.store, now, w).await.unwrap();
        fail(&t.store, now, baseline.lease, "bad model", false).await;
        let failed = RunFinishParams {
            now,
            run_id: failed_run,
            state: RunState::Failed,
            error: Some("the baseline failed: bad model".into()),
        };
        assert!(t.store.run_finish(failed).await.unwrap());
        assert_eq!(
            retry(&t.store, now, failed_run).await,
            RunRetryOutcome::NotRetryable(RunState::Failed)
        );
        assert_eq!(job(&t.store, baseline.lease.job_id).await.state, JobState::Failed);

        let cancelled_run = create_run(&t, &[("a", 0.5)], false, 1).await;
        let baseline = claim_one(&t.store, now, w).await.unwrap();
        fail(&t.store, now, baseline.lease, "out of memory", true).await;
        t.store
            .run_cancel(RunCancelParams {
                now,
                run_id: cancelled_run,
            })
            .await
            .unwrap();
        assert_eq!(
            retry(&t.store, now, cancelled_run).await,
            RunRetryOutcome::NotRetryable(RunState::Cancelled)
        );
        assert_eq!(job(&t.store, baseline.lease.job_id).await.state, JobState::Failed);
        assert_eq!(
            t.store.run_get(cancelled_run).await.unwrap().unwrap().state,
            RunState::Cancelled
        );
        assert_eq!(
            retry(&t.store, now, RunId(cancelled_run.0 + 1000)).await,
            RunRetryOutcome::NotFound
        );
    }
}

/// Runs each listed case against Postgres: its own database (`#[sqlx::test]`, migrated), two single-connection
/// pools onto it (the store and its peer), and a manual clock.
macro_rules! pg_conformance {
    ($($group:ident { $($case:ident),* $(,)? })*) => {
        mod pg {
            $(
                mod $group {
                    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
                    $(
                        #[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
                        async fn $case(pool: PgPoolOptions, connect: PgConnectOptions) {
                            super::super::run_pg(pool, connect, super::super::$group::$case).await;
                        }
                    )*
                }
            )*
        }
    };
}

pub(crate) async fn run_pg<F, Fut>(pool: PgPoolOptions, connect: PgConnectOptions, case: F)
where
    F: FnOnce(Bundle<PgStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = pool
        .clone()
        .max_connections(1)
        .connect_with(connect.clone())
        .await
        .expect("connecting the store");
    let peer = pool
        .max_connections(1)
        .connect_with(connect)
        .await
        .expect("connecting the peer");
    let clock = ManualClock::new(start_time());
    case(Bundle {
        store: PgStore::new(store.clone()),
        peer: PgStore::new(peer.clone()),
        clock,
    })
    .await;
    store.close().await;
    peer.close().await;
}

/// Runs each listed case against SQLite: a fresh database file in its own temporary directory, the store and
/// its peer opened on it separately (two pools each, as two processes would), and a manual clock.
macro_rules! sqlite_conformance {
    ($($group:ident { $($case:ident),* $(,)? })*) => {
        mod sqlite {
            $(
                mod $group {
                    $(
                        #[tokio::test]
                        async fn $case() {
                            super::super::run_sqlite(super::super::$group::$case).await;
                        }
                    )*
                }
            )*
        }
    };
}

pub(crate) async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Bundle<SqliteStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("store.sqlite");
    let store = SqliteStore::open(&path).await.expect("opening the store");
    let peer = SqliteStore::open(&path).await.expect("opening the peer");
    let clock = ManualClock::new(start_time());
    case(Bundle {
        store: store.clone(),
        peer: peer.clone(),
        clock,
    })
    .await;
    store.close().await;
    peer.close().await;
}

// Other modules' store cases run on both stores by the same runners.
pub(crate) use {pg_conformance, sqlite_conformance};

/// Every case of the suite, by operation, handed to each store's runner (`pg_conformance`,
/// `sqlite_conformance`), so both stores run the same list.
macro_rules! conformance_cases {
    ($runner:ident) => {
        $runner! {
            artifact_put { is_idempotent_and_refuses_conflicts }
            job_claim {
                batch_leases_one_job_per_worker,
                affinity_prefers_the_group_then_the_run,
                concurrent_claimers_never_share_a_job,
                dispatch_order_baseline_cells_export,
            }
            job_complete {
                batch_mixed_outcomes,
                concurrent_repeats_accept_exactly_once,
                stale_epoch_refused_and_repeat_is_a_no_op,
            }
            job_fail {
                not_retryable_fails_at_once,
                retries_with_backoff_then_fails_with_the_last_error,
            }
            job_heartbeat { extends_a_current_lease }
            job_release {
                hands_back_without_spending_the_attempt,
                refuses_a_cancelled_run_and_an_unknown_job,
            }
            job_rescue_expired {
                fails_the_last_attempt_and_respects_the_limit,
                reclaims_after_the_lease_with_the_next_attempt,
            }
            job_probe_add { queues_each_step_once_until_the_run_is_planned }
            job_skip { skips_queued_cells_above_the_ratio_only }
            run_cancel { stops_dispatch_and_refuses_the_leased_result }
            run_create { stores_the_run_and_its_grid }
            run_finish {
                done_waits_for_queued_and_leased_jobs,
                fails_a_run_and_skips_what_is_left,
            }
            run_list { counts_jobs_by_state_and_filters }
            run_plan {
                concurrent_pipeline_plans_store_one,
                pipeline_plans_once_and_never_requeues_the_export,
                requested_plan_spares_a_leased_export,
                stores_the_plan_and_queues_one_export,
            }
            run_replan { reopens_a_finished_run_without_its_plan_and_export }
            run_retry {
                leaves_failed_and_cancelled_runs_as_they_are,
                requeues_failed_jobs_and_reopens_a_done_run,
            }
            worker_list { lists_leases_and_records_who_completed }
            worker_register { gives_each_worker_an_id }
        }
    };
}

conformance_cases!(pg_conformance);
conformance_cases!(sqlite_conformance);

/// Postgres only: creating a run refreshes the planner's statistics, so a claim walks `job_queued` in dispatch
/// order and stops at its size. With the statistics autovacuum leaves between runs (an empty queue) the planner
/// would sort every queued job on each claim instead: about 40 ms per claim for the dispatch benchmark's
/// 20,000-job runs, until autovacuum's next analyze.
#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn pg_run_create_keeps_the_claim_an_ordered_index_walk(pool: sqlx::PgPool) {
    sqlx::query("ANALYZE job").execute(&pool).await.unwrap();
    let store = PgStore::new(pool.clone());
    let now = start_time();
    seed_artifacts(&store, now).await;
    let cells = grid(5_000);
    store
        .run_create(run_params(now, &as_refs(&cells), false, 3))
        .await
        .unwrap();

    // The claim's scan (store/queries/job.sql, job_claim), for a batch of 16.
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM job WHERE state = 'queued' AND available_at <= 'infinity'::timestamptz
         ORDER BY run_id, kind, group_key, ratio, id LIMIT 16 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("Index Scan using job_queued"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
}

/// The names quoted in `text` (`'done'`), in order.
fn quoted(text: &str) -> Vec<&str> {
    text.split('\'').skip(1).step_by(2).collect()
}

/// The job states [`JobState::is_final`] calls final, by name.
fn final_job_states() -> Vec<&'static str> {
    JobState::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect()
}

/// Postgres only: its enum types hold the contract's names, in its order (a claim's `ORDER BY kind` is dispatch
/// order), and the rule that a job has `finished_at` exactly when it is final lists the final states.
#[sqlx::test(migrator = "sensgrid_coordinator::MIGRATOR")]
async fn pg_schema_spells_states_and_kinds_as_the_contract(pool: sqlx::PgPool) {
    for (pg_type, names) in [
        ("job_kind", JobKind::NAMES),
        ("job_state", JobState::NAMES),
        ("run_state", RunState::NAMES),
    ] {
        let labels: Vec<String> = sqlx::query_scalar(&format!("SELECT unnest(enum_range(NULL::{pg_type}))::text"))
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(labels, names, "{pg_type}");
    }
    let rule: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'job_finished_iff_final'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(quoted(&rule), final_job_states(), "{rule}");
}

/// SQLite only: the CHECKs on the job and run columns list the contract's names, and the rule that a job has
/// `finished_at` exactly when it is final lists the final states.
#[tokio::test]
async fn sqlite_schema_spells_states_and_kinds_as_the_contract() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("store.sqlite");
    SqliteStore::open(&path).await.expect("opening the store").close().await;
    let connect = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let pool = sqlx::SqlitePool::connect_with(connect).await.unwrap();
    let table = |name: &'static str| {
        sqlx::query_scalar::<_, String>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(name)
            .fetch_one(&pool)
    };
    // The names listed in the first `(...)` after `marker`.
    fn listed<'t>(sql: &'t str, marker: &str) -> Vec<&'t str> {
        let start = sql.find(marker).unwrap_or_else(|| panic!("no '{marker}' in {sql}")) + marker.len();
        let end = start + sql[start..].find(')').unwrap();
        let mut names = quoted(&sql[start..end]);
        names.sort_unstable();
        names
    }
    let sorted = |names: &[&'static str]| {
        let mut names = names.to_vec();
        names.sort_unstable();
        names
    };
    let job = table("job").await.unwrap();
    let run = table("run").await.unwrap();
    assert_eq!(listed(&job, "kind IN ("), sorted(JobKind::NAMES));
    assert_eq!(listed(&job, "CHECK (state IN ("), sorted(JobState::NAMES));
    assert_eq!(listed(&run, "CHECK (state IN ("), sorted(RunState::NAMES));
    assert_eq!(listed(&job, "job_finished_iff_final"), sorted(&final_job_states()));
    pool.close().await;
}
