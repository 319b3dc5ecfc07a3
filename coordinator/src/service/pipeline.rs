//! The run pipeline: moves each running run on once its jobs allow, so a run needs nobody to babysit it.
//!
//! - The baseline failed, or its metric is missing or 0 (every loss would divide by zero): the run fails with
//!   that reason and its unfinished cells are skipped.
//! - Every cell is final and the run has a `Prune` section: the planner chooses the ratios; with `export` the
//!   export job is queued, else the run is done with its plan.
//! - Every cell is final and there is nothing to plan, or the export is done: the run is done.
//! - The export failed: the run fails (its cells and plan stay).
//!
//! Every decision is read from the store, so a restarted coordinator picks up where the last one stopped. The
//! task looks at the running runs every `interval` and whenever a job finished ([`PipelineHandle::wake`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::dispatcher::DispatcherHandle;
use crate::clock::Clock;
use crate::planning::{self, PlanRequest};
use crate::spec::RunSpec;
use crate::store::{
    Job, JobKind, JobState, JobStore, Run, RunFinishParams, RunId, RunPlanOutcome, RunPlanParams, RunState, StoreError,
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
}

impl<S: JobStore> Pipeline<S> {
    /// Starts the task: it advances every running run each `interval` and on every wake, until `stop`.
    pub fn start(
        store: S,
        clock: Arc<dyn Clock>,
        artifact_dir: PathBuf,
        dispatcher: DispatcherHandle,
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
        };
        let task = tokio::spawn(async move {
            // Runs whose baseline is done and usable: until their cells are all final, the job counts that
            // `run_list` gives say everything (no job list is read while thousands of cells complete).
            let mut baseline_ok = HashSet::new();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = notify.notified() => {}
                    () = tokio::time::sleep(interval) => {}
                }
                if let Err(error) = pipeline.advance_all(&mut baseline_ok).await {
                    tracing::error!(%error, retry_in = ?interval, "advancing the runs failed; retrying");
                }
                // Completions arrive in bursts: one round per MIN_ROUND_GAP is as quick as anyone can see.
                tokio::time::sleep(MIN_ROUND_GAP.min(interval)).await;
            }
        });
        (handle, task)
    }

    /// Advances every running run once. `baseline_ok` remembers the runs whose baseline is done and usable
    /// (the caller keeps it between rounds): they are looked at only once none of their jobs is queued or
    /// leased.
    ///
    /// # Errors
    ///
    /// The store's error; runs advanced before it stay advanced.
    pub async fn advance_all(&self, baseline_ok: &mut HashSet<RunId>) -> Result<(), StoreError> {
        let running = self.store.run_list(Some(RunState::Running)).await?;
        baseline_ok.retain(|id| running.iter().any(|s| s.run.id == *id));
        for summary in running {
            let run = summary.run;
            if baseline_ok.contains(&run.id) && summary.jobs.queued + summary.jobs.leased > 0 {
                continue;
            }
            match self.advance(&run).await? {
                Step::Waiting { baseline_ok: true } => {
                    baseline_ok.insert(run.id);
                }
                Step::Waiting { .. } => {}
                Step::ExportQueued => tracing::info!(run_id = run.id.0, "run planned; export queued"),
                Step::Finished(state, error) => tracing::info!(
                    run_id = run.id.0,
                    state = %crate::service::convert::run_state_name(state),
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
        let jobs = self.store.job_list_by_run(run.id).await?;
        let step = decide(run, &jobs);
        match step {
            Decision::Wait { baseline_ok } => Ok(Step::Waiting { baseline_ok }),
            Decision::Finish(state, error) => self.finish(run, state, error).await,
            Decision::Plan(spec) => {
                let prune = spec.prune.expect("decide plans only runs with a Prune section");
                let request = PlanRequest {
                    run: run.clone(),
                    jobs,
                    spec: *spec,
                    target: prune.target,
                    model: self.artifact_dir.join(&run.model_digest),
                };
                let planned = tokio::task::spawn_blocking(move || planning::plan(&request))
                    .await
                    .unwrap_or_else(|panic| Err(format!("the planner panicked: {panic}")));
                let planned = match planned {
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
                    })
                    .await?;
                if outcome != RunPlanOutcome::Planned {
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

/// What a running run's jobs call for.
#[derive(Debug)]
enum Decision {
    Wait { baseline_ok: bool },
    Finish(RunState, Option<String>),
    Plan(Box<RunSpec>),
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
    if jobs.iter().any(|j| j.kind == JobKind::Cell && !j.state.is_final()) {
        return Decision::Wait { baseline_ok: true };
    }
    match jobs.iter().find(|j| j.kind == JobKind::Export) {
        Some(export) => match export.state {
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
