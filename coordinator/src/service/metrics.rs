//! The coordinator's Prometheus metrics, served at `GET /metrics` by [`super::http`].
//!
//! Counters and histograms are updated where things happen (the worker service, the sweeper); the gauges of
//! jobs by run and state and of connected workers are read from the store and from the workers' last calls
//! when scraped, so they equal the store's counts at that moment. A recover job's progress (its step of steps,
//! loss, and last and best eval metric) is set from each heartbeat that reports it.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use sensgrid_proto::v1::RecoverProgress;

use super::worker::MAX_POLL_WAIT;
use crate::store::{JobId, JobStore, WorkerId, WorkerSummary};

/// The labels of `sensgrid_jobs`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    run: i64,
    state: &'static str,
}

/// The labels of the recover gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecoverLabels {
    job: i64,
}

/// A recover job's progress as `/metrics` shows it.
#[derive(Clone, Default)]
struct RecoverGauges {
    step: Family<RecoverLabels, Gauge>,
    steps: Family<RecoverLabels, Gauge>,
    loss: Family<RecoverLabels, Gauge<f64, AtomicU64>>,
    metric: Family<RecoverLabels, Gauge<f64, AtomicU64>>,
    best: Family<RecoverLabels, Gauge<f64, AtomicU64>>,
}

/// Every metric, registered once in its registry.
pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Gauge>,
    workers_connected: Gauge,
    claims: Counter,
    completions: Counter,
    completions_rejected: Counter,
    lease_expiries: Counter,
    eval_seconds: Histogram,
    dispatch_latency: Histogram,
    recover: RecoverGauges,
    /// Each worker's last call (register, poll, heartbeat, complete, fail).
    last_call: Mutex<HashMap<WorkerId, Instant>>,
    /// One scrape at a time refreshes the gauges and encodes them.
    scrape: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register(
            "sensgrid_jobs",
            "Jobs by run and state, as the store holds them",
            jobs.clone(),
        );
        let workers_connected = Gauge::default();
        registry.register(
            "sensgrid_workers_connected",
            "Workers holding a lease or that polled within the longest poll plus two heartbeats",
            workers_connected.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let claims = counter(
            &mut registry,
            "sensgrid_job_claims",
            "Jobs handed to workers (leases given)",
        );
        let completions = counter(
            &mut registry,
            "sensgrid_job_completions",
            "Completions accepted (a job's result stored)",
        );
        let completions_rejected = counter(
            &mut registry,
            "sensgrid_job_completions_rejected",
            "Completions refused: a stale lease, or a cancelled run",
        );
        let lease_expiries = counter(
            &mut registry,
            "sensgrid_lease_expiries",
            "Leases taken back by the sweeper after their deadline",
        );
        // 10 ms to about 11 minutes: a cell of a small rec model to a det export on CPU.
        let eval_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 17));
        registry.register(
            "sensgrid_eval_seconds",
            "Seconds a worker spent on a job, as its completion reports them",
            eval_seconds.clone(),
        );
        // 100 µs to about 52 s: a claim's round trip up to a long poll's wait for work.
        let dispatch_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 20));
        registry.register(
            "sensgrid_dispatch_latency_seconds",
            "Seconds from a poll's arrival to the job it is answered with",
            dispatch_latency.clone(),
        );
        let recover = RecoverGauges::default();
        registry.register(
            "sensgrid_recover_step",
            "A recover job's last step, as its heartbeats report it",
            recover.step.clone(),
        );
        registry.register(
            "sensgrid_recover_steps",
            "A recover job's steps in all",
            recover.steps.clone(),
        );
        registry.register(
            "sensgrid_recover_loss",
            "A recover job's distillation loss at its last step",
            recover.loss.clone(),
        );
        registry.register(
            "sensgrid_recover_metric",
            "A recover job's last eval metric (NaN before its first eval)",
            recover.metric.clone(),
        );
        registry.register(
            "sensgrid_recover_best",
            "A recover job's best metric so far, the pruned model's included",
            recover.best.clone(),
        );
        Self {
            registry,
            jobs,
            workers_connected,
            claims,
            completions,
            completions_rejected,
            lease_expiries,
            eval_seconds,
            dispatch_latency,
            recover,
            last_call: Mutex::new(HashMap::new()),
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// A worker called.
    pub fn worker_called(&self, worker: WorkerId) {
        self.last_call
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(worker, Instant::now());
    }

    /// A poll was answered with a job after `waited`.
    pub fn job_claimed(&self, waited: Duration) {
        self.claims.inc();
        self.dispatch_latency.observe(waited.as_secs_f64());
    }

    /// A completion was stored; the worker spent `seconds` on the job.
    pub fn completion_accepted(&self, seconds: f64) {
        self.completions.inc();
        self.eval_seconds.observe(seconds);
    }

    pub fn completion_rejected(&self) {
        self.completions_rejected.inc();
    }

    /// A recover job's heartbeat reported its progress.
    pub fn recover_progress(&self, job: JobId, progress: &RecoverProgress) {
        let labels = RecoverLabels { job: job.0 };
        self.recover
            .step
            .get_or_create(&labels)
            .set(i64::try_from(progress.step).unwrap_or(i64::MAX));
        self.recover.loss.get_or_create(&labels).set(progress.loss);
        self.recover.metric.get_or_create(&labels).set(progress.metric);
        self.recover
            .steps
            .get_or_create(&labels)
            .set(i64::try_from(progress.steps).unwrap_or(i64::MAX));
        self.recover.best.get_or_create(&labels).set(progress.best);
    }

    pub fn leases_expired(&self, count: usize) {
        self.lease_expiries.inc_by(count as u64);
    }

    /// The text exposition of every metric, the store's gauges read now.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn scrape<S: JobStore>(&self, store: &S, heartbeat: Duration) -> crate::store::Result<String> {
        let _one_at_a_time = self.scrape.lock().await;
        for summary in store.run_list(None).await? {
            for (state, count) in summary.jobs.by_state() {
                let labels = JobLabels {
                    run: summary.run.id.0,
                    state: state.as_str(),
                };
                self.jobs.get_or_create(&labels).set(count as i64);
            }
        }
        let workers = store.worker_list().await?;
        let connected = workers.iter().filter(|w| self.is_connected(w, heartbeat)).count();
        self.workers_connected.set(connected as i64);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing into a String does not fail");
        Ok(text)
    }

    /// The time since `worker` last registered or polled through this coordinator.
    pub fn since_last_call(&self, worker: WorkerId) -> Option<Duration> {
        self.last_call
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&worker)
            .map(Instant::elapsed)
    }

    /// Whether `worker` counts as connected: it holds a lease (a dead one's is taken back when it expires), or
    /// it registered or polled within the longest poll plus two heartbeats (an idle worker polls again as soon
    /// as a poll ends).
    pub fn is_connected(&self, worker: &WorkerSummary, heartbeat: Duration) -> bool {
        !worker.leases.is_empty()
            || self
                .since_last_call(worker.worker.id)
                .is_some_and(|since| since <= MAX_POLL_WAIT + 2 * heartbeat)
    }
}
