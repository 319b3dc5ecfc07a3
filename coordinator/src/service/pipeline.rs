//! The run pipeline: moves each running run on once its jobs allow, so a run needs nobody to babysit it.
//!
//! - The baseline failed, or its metric is missing or 0 (every loss would divide by zero): the run fails with
//!   that reason and its unfinished cells are skipped.
//! - An early stop (`Sensitivity.early_stop_loss`, [`RunSpec::early_stop_loss`]): once a done cell of a group
//!   has a loss above the threshold, the group's queued cells at larger ratios are skipped
//!   ([`JobStore::job_skip`]), the reason as their error. Cells already leased or done stay as they are, so a
//!   skipped cell never has a result, and none is made up. Claims run a group's ratios in ascending order, so
//!   the stop saves the larger ones.
//! - Every cell is final and the run has a `Prune` section: the planner chooses the ratios; with `export` the
//!   export job is queued, else the run is done with its plan.
//! - A measured target (`Prune.max_model_loss`, `latency_reduction`): before planning, the search
//!   ([`planning::probe_round`]) queues probes, as many a round as workers are connected, and reads their
//!   results once every probe is final, round after round (every round as wide as the first, see
//!   [`round_width`]), until it chooses a measured plan (planned as
//!   above) or finds the target out of reach (the run fails saying why). A failed probe fails the run. The
//!   probes are jobs in the store, so a restarted coordinator goes on from the ones already measured.
//! - Every cell is final and there is nothing to plan, or the export is done: the run is done.
//! - The export failed: the run fails (its cells and plan stay).
//! - The export is done and the run has a `Recover` section ([`RunSpec::recover`]): its recover job is queued
//!   ([`JobStore::job_recover_add`]); the run is done when the recovery is, and fails when it fails.
//!
//! Every decision is read from the store, so a restarted coordinator picks up where the last one stopped. The
//! task looks at the running runs every `interval` and whenever a job finished ([`PipelineHandle::wake`]); a
//! run with an early stop has its cells read again whenever its count of done jobs moved.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::dispatcher::DispatcherHandle;
use super::metrics::Metrics;
use crate::clock::Clock;
use crate::planning::{self, PlanRequest, Planned, ProbeRound};
use crate::spec::{PruneTarget, RunSpec};
use crate::store::{
    Job, JobKind, JobProbeAddParams, JobRecoverAddParams, JobSkipParams, JobState, JobStore, PlanMode, Run,
    RunFinishParams, RunId, RunPlanOutcome, RunPlanParams, RunState, StoreError,
};

/// The least time between two rounds of the pipeline.
const MIN_ROUND_GAP: Duration = Duration::from_millis(200);

/// Wakes the pipeline. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct PipelineHandle {
    notify: Arc<Notify>,
}

impl PipelineHandle {
    /// Asks the pipeline to look at the running runs now (a job finished).
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// The pipeline task.
pub struct Pipeline<S> {
    store: S,
    clock: Arc<dyn Clock>,
    /// Where the models live, for the FLOPs of a planned prune.
    artifact_dir: PathBuf,
    dispatcher: DispatcherHandle,
    /// Which workers count as connected: a round of probes has one per worker.
    workforce: Workforce,
}

/// How the pipeline counts the connected workers (as `/metrics` does).
#[derive(Clone)]
pub struct Workforce {
    pub metrics: Arc<Metrics>,
    /// The workers' heartbeat interval.
    pub heartbeat: Duration,
}

/// What the pipeline remembers between rounds; all of it is rebuilt from the store after a restart.
#[derive(Debug, Default)]
pub struct Rounds {
    /// Runs whose baseline is done and usable: until their cells are all final, the job counts that `run_list`
    /// gives say everything (no job list is read while thousands of cells complete).
    baseline_ok: HashSet<RunId>,
    /// Runs with an early stop: their count of done jobs when their cells were last checked.
    early_stop_checked: HashMap<RunId, u64>,
}

/// What the pipeline did with one run.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Jobs are still running; nothing to do yet. Says whether the baseline is done with a usable metric.
    Waiting { baseline_ok: bool },
    /// The run ended in this state (with this error).
    Finished(RunState, Option<String>),
    /// The plan is stored and the export queued.
    ExportQueued,
    /// A measured target's search queued this many probes.
    Probing(u64),
    /// The export is done and the recovery queued.
    RecoverQueued,
}

impl<S: JobStore> Pipeline<S> {
    /// Starts the task: it advances every running run each `interval` and on every wake, until `stop`.
    pub fn start(
        store: S,
        clock: Arc<dyn Clock>,
        artifact_dir: PathBuf,
        dispatcher: DispatcherHandle,
        workforce: Workforce,
        interval: Duration,
        stop: CancellationToken,
    ) -> (PipelineHandle, JoinHandle<()>) {
        let handle = PipelineHandle::default();
        let notify = handle.notify.clone();
        let pipeline = Self {
            store,
            clock,
            artifact_dir,
            dispatcher,
            workforce,
        };
        let task = tokio::spawn(async move {
            let mut rounds = Rounds::default();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = notify.notified() => {}
                    () = tokio::time::sleep(interval) => {}
                }
                if let Err(error) = pipeline.advance_all(&mut rounds).await {
                    tracing::error!(%error, retry_in = ?interval, "advancing the runs failed; retrying");
                }
                // Completions arrive in bursts: one round per MIN_ROUND_GAP is as quick as anyone can see.
                tokio::time::sleep(MIN_ROUND_GAP.min(interval)).await;
            }
        });
        (handle, task)
    }

    /// Advances every running run once. `rounds` (the caller keeps it between rounds) remembers the runs whose
    /// baseline is done and usable: they are looked at only once none of their jobs is queued or leased, or,
    /// with an early stop, when more of their jobs are done than when their cells were last checked.
    ///
    /// # Errors
    ///
    /// The store's error; runs advanced before it stay advanced.
    pub async fn advance_all(&self, rounds: &mut Rounds) -> Result<(), StoreError> {
        let running = self.store.run_list(Some(RunState::Running)).await?;
        rounds.baseline_ok.retain(|id| running.iter().any(|s| s.run.id == *id));
        rounds
            .early_stop_checked
            .retain(|id, _| running.iter().any(|s| s.run.id == *id));
        for summary in running {
            let run = summary.run;
            if rounds.baseline_ok.contains(&run.id) && summary.jobs.queued + summary.jobs.leased > 0 {
                match rounds.early_stop_checked.get(&run.id) {
                    Some(&done) if done != summary.jobs.done => {}
                    _ => continue,
                }
            }
            let step = self.advance(&run).await?;
            if let Step::Waiting { baseline_ok: true } = step
                && RunSpec::from_json(&run.spec).is_ok_and(|spec| spec.early_stop_loss.is_some())
            {
                // Counted before the cells were read: a cell done in between is checked next round.
                rounds.early_stop_checked.insert(run.id, summary.jobs.done);
            }
            match step {
                Step::Waiting { baseline_ok: true } => {
                    rounds.baseline_ok.insert(run.id);
                }
                Step::Waiting { .. } => {}
                Step::ExportQueued => tracing::info!(run_id = run.id.0, "run planned; export queued"),
                Step::Probing(n) => tracing::info!(run_id = run.id.0, probes = n, "probes queued"),
                Step::RecoverQueued => tracing::info!(run_id = run.id.0, "export done; recovery queued"),
                Step::Finished(state, error) => tracing::info!(
                    run_id = run.id.0,
                    state = %state,
                    error = error.as_deref(),
                    "run ended"
                ),
            }
        }
        Ok(())
    }

    /// Advances one running run as far as its jobs allow.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn advance(&self, run: &Run) -> Result<Step, StoreError> {
        let mut jobs = self.store.job_list_by_run(run.id).await?;
        if let Decision::Wait { baseline_ok: true } = decide(run, &jobs)
            && apply_early_stop(&self.store, self.clock.as_ref(), run, &jobs).await? > 0
        {
            // Skipped cells may have been the last unfinished ones.
            jobs = self.store.job_list_by_run(run.id).await?;
        }
        let step = decide(run, &jobs);
        match step {
            Decision::Wait { baseline_ok } => Ok(Step::Waiting { baseline_ok }),
            Decision::Finish(state, error) => self.finish(run, state, error).await,
            Decision::Recover => {
                let queued = self
                    .store
                    .job_recover_add(JobRecoverAddParams {
                        now: self.clock.now(),
                        run_id: run.id,
                    })
                    .await?;
                if queued {
                    self.dispatcher.wake();
                }
                Ok(Step::RecoverQueued)
            }
            Decision::Plan(spec) => {
                let prune = spec.prune.expect("decide plans only runs with a Prune section");
                let request = PlanRequest {
                    run: run.clone(),
                    jobs,
                    spec: *spec,
                    target: prune.target,
                    model: self.artifact_dir.join(&run.model_digest),
                };
                let planned = match prune.target {
                    PruneTarget::Measured(target) => {
                        let workers = match round_width(&request.jobs) {
                            Some(width) => width,
                            None => self.connected_workers().await?,
                        };
                        let round =
                            tokio::task::spawn_blocking(move || planning::probe_round(&request, &target, workers))
                                .await
                                .unwrap_or_else(|panic| Err(format!("the planner panicked: {panic}")));
                        match round {
                            Ok(ProbeRound::Probe(probes)) => {
                                let queued = self
                                    .store
                                    .job_probe_add(JobProbeAddParams {
                                        now: self.clock.now(),
                                        run_id: run.id,
                                        probes,
                                    })
                                    .await?;
                                self.dispatcher.wake();
                                return Ok(Step::Probing(queued));
                            }
                            Ok(ProbeRound::Chosen { planned, step, why }) => {
                                tracing::info!(run_id = run.id.0, step, why, "measured plan chosen");
                                Ok(planned)
                            }
                            Ok(ProbeRound::Unreachable(why)) => Err(why),
                            Err(error) => Err(error),
                        }
                    }
                    _ => tokio::task::spawn_blocking(move || planning::plan(&request))
                        .await
                        .unwrap_or_else(|panic| Err(format!("the planner panicked: {panic}"))),
                };
                let planned: Planned = match planned {
                    Ok(planned) => planned,
                    Err(error) => {
                        return self
                            .finish(run, RunState::Failed, Some(format!("planning: {error}")))
                            .await;
                    }
                };
                let outcome = self
                    .store
                    .run_plan(RunPlanParams {
                        now: self.clock.now(),
                        run_id: run.id,
                        plan: planned.plan_json(),
                        export: prune.export,
                        mode: PlanMode::Initial,
                    })
                    .await?;
                if outcome != RunPlanOutcome::Planned {
                    // Planned meanwhile (another coordinator's pipeline on the same database) or ended: the
                    // next round reads what it became.
                    return Ok(Step::Waiting { baseline_ok: true });
                }
                if prune.export {
                    self.dispatcher.wake();
                    Ok(Step::ExportQueued)
                } else {
                    self.finish(run, RunState::Done, None).await
                }
            }
        }
    }

    /// The workers connected now, at least 1 (a round waits for whoever comes).
    async fn connected_workers(&self) -> Result<usize, StoreError> {
        let workers = self.store.worker_list().await?;
        let connected = workers
            .iter()
            .filter(|w| self.workforce.metrics.is_connected(w, self.workforce.heartbeat))
            .count();
        Ok(connected.max(1))
    }

    async fn finish(&self, run: &Run, state: RunState, error: Option<String>) -> Result<Step, StoreError> {
        self.store
            .run_finish(RunFinishParams {
                now: self.clock.now(),
                run_id: run.id,
                state,
                error: error.clone(),
            })
            .await?;
        Ok(Step::Finished(state, error))
    }
}

/// Skips the queued cells that the run's early stop rules out, given its `jobs` as they are now (see the module
/// docs); answers how many. The pipeline calls it every round, and the worker service after each accepted
/// completion of such a run, before it answers: the worker that reported the loss would otherwise claim its
/// group's next ratio before the pipeline's round.
///
/// # Errors
///
/// The store's error; the cells skipped before it stay skipped.
pub async fn apply_early_stop<S: JobStore>(
    store: &S,
    clock: &dyn Clock,
    run: &Run,
    jobs: &[Job],
) -> Result<u64, StoreError> {
    let Ok(spec) = RunSpec::from_json(&run.spec) else {
        return Ok(0);
    };
    let mut skipped = 0;
    for stop in early_stops(&spec, jobs) {
        let n = store
            .job_skip(JobSkipParams {
                now: clock.now(),
                run_id: run.id,
                group_key: stop.group_key.clone(),
                above_ratio: stop.ratio,
                reason: stop.reason(),
            })
            .await?;
        if n > 0 {
            tracing::info!(
                run_id = run.id.0,
                group = stop.group_key,
                ratio = stop.ratio,
                loss = stop.loss,
                skipped = n,
                "early stop: the group's larger ratios are skipped"
            );
        }
        skipped += n;
    }
    Ok(skipped)
}

/// The metric of the run's done baseline among `jobs`, that cells' losses are computed against; `None` before
/// the baseline is done, or when its metric is missing or 0 (no loss can be computed).
pub fn baseline_metric(spec: &RunSpec, jobs: &[Job]) -> Option<f64> {
    jobs.iter()
        .find(|j| j.kind == JobKind::Baseline && j.state == JobState::Done)
        .and_then(|j| j.result.as_ref())
        .and_then(|r| crate::sensitivity::metric(r, &spec.metric))
        .filter(|b| *b != 0.0)
}

/// One group's early stop: its smallest ratio whose loss exceeds the threshold.
#[derive(Clone, Debug, PartialEq)]
struct EarlyStop {
    group_key: String,
    ratio: f64,
    loss: f64,
    threshold: f64,
}

impl EarlyStop {
    /// The skipped cells' error.
    fn reason(&self) -> String {
        format!(
            "early stop: loss {:.4} at ratio {} exceeds early_stop_loss {}",
            self.loss, self.ratio, self.threshold
        )
    }
}

/// The early stops that `jobs` call for under `spec`: per group, the smallest ratio of a done cell whose loss
/// (computed as `results` computes it) is above [`RunSpec::early_stop_loss`], where a queued cell of the group
/// has a larger ratio. None without a threshold or a done baseline with the metric.
fn early_stops(spec: &RunSpec, jobs: &[Job]) -> Vec<EarlyStop> {
    let Some(threshold) = spec.early_stop_loss else {
        return Vec::new();
    };
    let Some(baseline) = baseline_metric(spec, jobs) else {
        return Vec::new();
    };
    let mut stops: Vec<EarlyStop> = Vec::new();
    let cells = jobs.iter().filter(|j| j.kind == JobKind::Cell);
    for job in cells.clone().filter(|j| j.state == JobState::Done) {
        let (Some(group), Some(ratio), Some(result)) = (&job.group_key, job.ratio, &job.result) else {
            continue;
        };
        let Some(loss) = crate::sensitivity::cell_loss(result, baseline, &spec.metric) else {
            continue;
        };
        if loss <= threshold {
            continue;
        }
        match stops.iter_mut().find(|s| s.group_key == *group) {
            Some(stop) if stop.ratio <= ratio => {}
            Some(stop) => {
                stop.ratio = ratio;
                stop.loss = loss;
            }
            None => stops.push(EarlyStop {
                group_key: group.clone(),
                ratio,
                loss,
                threshold,
            }),
        }
    }
    stops.retain(|stop| {
        cells.clone().any(|j| {
            j.state == JobState::Queued
                && j.group_key.as_deref() == Some(stop.group_key.as_str())
                && j.ratio.is_some_and(|r| r > stop.ratio)
        })
    });
    stops
}

/// The probes a round of the run's search queues: as many as its first round did (the workers connected
/// then), so that a restarted coordinator, which sees fewer workers until they poll again, takes the same path
/// through the search. `None` before the first round.
fn round_width(jobs: &[Job]) -> Option<usize> {
    let first = jobs
        .iter()
        .filter(|j| j.kind == JobKind::Probe)
        .map(|j| j.created_at)
        .min()?;
    Some(
        jobs.iter()
            .filter(|j| j.kind == JobKind::Probe && j.created_at == first)
            .count(),
    )
}

/// What a running run's jobs call for.
#[derive(Debug)]
enum Decision {
    Wait {
        baseline_ok: bool,
    },
    Finish(RunState, Option<String>),
    Plan(Box<RunSpec>),
    /// The export is done and the run has a `Recover` section: queue its recover job.
    Recover,
}

fn decide(run: &Run, jobs: &[Job]) -> Decision {
    let spec = match RunSpec::from_json(&run.spec) {
        Ok(spec) => spec,
        Err(error) => return Decision::Finish(RunState::Failed, Some(error)),
    };
    let Some(baseline) = jobs.iter().find(|j| j.kind == JobKind::Baseline) else {
        return Decision::Finish(RunState::Failed, Some("the run has no baseline job".into()));
    };
    match baseline.state {
        JobState::Failed => {
            let error = baseline.last_error.as_deref().unwrap_or("no error recorded");
            return Decision::Finish(RunState::Failed, Some(format!("the baseline failed: {error}")));
        }
        JobState::Done => {
            let result = baseline.result.as_ref().expect("a done job has its result");
            match crate::sensitivity::metric(result, &spec.metric) {
                None => {
                    return Decision::Finish(
                        RunState::Failed,
                        Some(format!("the baseline reported no '{}' metric", spec.metric)),
                    );
                }
                Some(0.0) => {
                    return Decision::Finish(
                        RunState::Failed,
                        Some(format!(
                            "the baseline's {} is 0: every loss (baseline - pruned) / baseline would divide by zero",
                            spec.metric
                        )),
                    );
                }
                Some(_) => {}
            }
        }
        _ => return Decision::Wait { baseline_ok: false },
    }
    if jobs
        .iter()
        .any(|j| matches!(j.kind, JobKind::Cell | JobKind::Probe) && !j.state.is_final())
    {
        return Decision::Wait { baseline_ok: true };
    }
    if let Some(probe) = jobs
        .iter()
        .find(|j| j.kind == JobKind::Probe && j.state != JobState::Done)
    {
        return Decision::Finish(
            RunState::Failed,
            Some(format!(
                "probe {} (step {}) {}: {}",
                probe.id,
                probe.probe_step.unwrap_or_default(),
                probe.state,
                probe.last_error.as_deref().unwrap_or("no error recorded")
            )),
        );
    }
    match jobs.iter().find(|j| j.kind == JobKind::Export) {
        Some(export) => match export.state {
            JobState::Done if spec.recover.is_some() => match jobs.iter().find(|j| j.kind == JobKind::Recover) {
                None => Decision::Recover,
                Some(recover) => match recover.state {
                    JobState::Done => Decision::Finish(RunState::Done, None),
                    JobState::Failed => Decision::Finish(
                        RunState::Failed,
                        Some(format!(
                            "the recovery failed: {}",
                            recover.last_error.as_deref().unwrap_or("no error recorded")
                        )),
                    ),
                    _ => Decision::Wait { baseline_ok: true },
                },
            },
            JobState::Done => Decision::Finish(RunState::Done, None),
            JobState::Failed => Decision::Finish(
                RunState::Failed,
                Some(format!(
                    "the export failed: {}",
                    export.last_error.as_deref().unwrap_or("no error recorded")
                )),
            ),
            _ => Decision::Wait { baseline_ok: true },
        },
        None if spec.prune.is_some() && run.plan.is_none() => Decision::Plan(Box::new(spec)),
        None => Decision::Finish(RunState::Done, None),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::store::JobId;

    fn job(id: i64, kind: JobKind, cell: Option<(&str, f64)>, state: JobState, hmean: Option<f64>) -> Job {
        Job {
            id: JobId(id),
            run_id: RunId(1),
            kind,
            group_key: cell.map(|(g, _)| g.to_owned()),
            ratio: cell.map(|(_, r)| r),
            state,
            attempt: 0,
            lease_epoch: 0,
            lease_owner: None,
            lease_deadline: None,
            available_at: OffsetDateTime::UNIX_EPOCH,
            result: hmean.map(|h| json!({"metrics": {"hmean": h}})),
            last_error: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            finished_at: None,
            done_by: None,
            leased_at: None,
            probe_step: None,
            plan: None,
            checkpoint_digest: None,
            progress: None,
        }
    }

    fn cell(id: i64, group: &str, ratio: f64, state: JobState, hmean: Option<f64>) -> Job {
        job(id, JobKind::Cell, Some((group, ratio)), state, hmean)
    }

    /// The smallest ratio above the threshold stops its group, only where a queued cell lies above it; an
    /// imported loss counts; a loss at the threshold does not stop.
    #[test]
    fn early_stops_take_each_groups_smallest_ratio_above_the_threshold() {
        let spec = RunSpec {
            metric: "hmean".into(),
            early_stop_loss: Some(0.5),
            ..RunSpec::default()
        };
        let mut imported = cell(9, "c", 0.2, JobState::Done, None);
        imported.result = Some(json!({"loss": 0.75}));
        let jobs = [
            job(1, JobKind::Baseline, None, JobState::Done, Some(0.5)),
            cell(2, "a", 0.1, JobState::Done, Some(0.4)),
            cell(3, "a", 0.2, JobState::Done, Some(0.125)),
            cell(4, "a", 0.3, JobState::Done, Some(0.0625)),
            cell(5, "a", 0.4, JobState::Queued, None),
            cell(6, "b", 0.1, JobState::Done, Some(0.25)),
            cell(7, "b", 0.2, JobState::Queued, None),
            cell(8, "c", 0.1, JobState::Done, Some(0.5)),
            imported,
            cell(10, "c", 0.3, JobState::Leased, None),
            cell(11, "c", 0.4, JobState::Queued, None),
            cell(12, "d", 0.4, JobState::Done, Some(0.0)),
        ];
        let stops = early_stops(&spec, &jobs);
        let got: Vec<(&str, f64, f64)> = stops.iter().map(|s| (s.group_key.as_str(), s.ratio, s.loss)).collect();
        assert_eq!(
            got,
            [("a", 0.2, 0.75), ("c", 0.2, 0.75)],
            "b's loss is exactly 0.5; d has nothing left"
        );
        assert_eq!(
            stops[0].reason(),
            "early stop: loss 0.7500 at ratio 0.2 exceeds early_stop_loss 0.5"
        );

        let without = RunSpec {
            early_stop_loss: None,
            ..spec.clone()
        };
        assert!(early_stops(&without, &jobs).is_empty());
        let mut no_baseline = jobs.to_vec();
        no_baseline[0].state = JobState::Leased;
        assert!(early_stops(&spec, &no_baseline).is_empty());
    }
}
