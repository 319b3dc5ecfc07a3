//! The sweeper: every `sweep` it takes back the leases that expired ([`JobStore::job_rescue_expired`]) and
//! tells the dispatcher when each requeued job becomes claimable, so a dead worker's job is back in the queue
//! within heartbeat + lease + sweep, and handed out once its backoff passes.
//!
//! The first sweep waits one lease after the sweeper starts. The leases a restarted coordinator finds were
//! granted before it, and those that lapsed while no coordinator ran may belong to live workers that could
//! neither heartbeat nor deliver a completion meanwhile: one lease from the restart gives each the time a lease
//! gives, to heartbeat (extending it) or complete (accepted: its lease is still current). Only the leases of
//! workers that stay silent through it are taken back.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::dispatcher::DispatcherHandle;
use super::metrics::Metrics;
use crate::clock::Clock;
use crate::store::{Backoff, JobRescueExpiredParams, JobStore, RescueOutcome, Result};

/// Leases taken back per store call; a sweep repeats the call until fewer come back.
pub const RESCUE_BATCH: u32 = 500;

/// The sweeper's settings.
#[derive(Clone, Copy, Debug)]
pub struct SweeperConfig {
    /// Time between sweeps.
    pub interval: Duration,
    /// How long a claim or heartbeat keeps a job leased: the wait before the first sweep.
    pub lease: Duration,
    /// The wait before a rescued job is claimable again.
    pub backoff: Backoff,
}

/// The sweeper task.
pub struct Sweeper<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: SweeperConfig,
    dispatcher: DispatcherHandle,
}

impl<S: JobStore> Sweeper<S> {
    /// Starts sweeping every `config.interval`, the first time after `config.lease` (see the module's docs),
    /// until `stop` is cancelled. A failed sweep is logged and the next one tries again.
    pub fn start(
        store: S,
        clock: Arc<dyn Clock>,
        config: SweeperConfig,
        dispatcher: DispatcherHandle,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let sweeper = Self {
            store,
            clock,
            config,
            dispatcher,
        };
        tokio::spawn(async move {
            let first = tokio::time::Instant::now() + sweeper.config.lease;
            let mut ticks = tokio::time::interval_at(first, sweeper.config.interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                match sweeper.run_once().await {
                    Ok(expired) => metrics.leases_expired(expired),
                    Err(error) => {
                        tracing::error!(%error, retry_in = ?sweeper.config.interval, "sweep failed; retrying");
                    }
                }
            }
        })
    }

    /// One sweep: takes back every lease expired by now, waking the dispatcher for each requeued job. Answers
    /// how many leases were taken back.
    ///
    /// # Errors
    ///
    /// The store's error; leases taken back before it stay taken back.
    pub async fn run_once(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let params = JobRescueExpiredParams {
                now: self.clock.now(),
                limit: RESCUE_BATCH,
                backoff: self.config.backoff,
            };
            let rescued = self.store.job_rescue_expired(params).await?;
            total += rescued.len();
            for job in &rescued {
                let (job_id, epoch, attempt) = (job.lease.job_id.0, job.lease.epoch, job.attempt);
                match job.outcome {
                    RescueOutcome::Requeued { available_at } => {
                        tracing::warn!(job_id, epoch, attempt, "lease expired; job queued again");
                        self.dispatcher.wake_at(available_at);
                    }
                    RescueOutcome::Failed => {
                        tracing::warn!(job_id, epoch, attempt, "lease expired on the last attempt; job failed");
                    }
                }
            }
            if rescued.len() < RESCUE_BATCH as usize {
                return Ok(total);
            }
        }
    }
}
