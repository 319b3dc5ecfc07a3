//! A run's progress from `GetRun`: cells finished, by state, probes finished (a measured `Prune` target), the
//! workers holding its leases, elapsed time, an ETA and the jobs that failed for good. `coordinator status` and `watch` print it; the dashboard's JSON API serves it.
//! A run's [`Recovery`] is the same for its recover job, for `status` and the dashboard.

use std::collections::BTreeMap;
use std::time::Duration;

use sensgrid_proto::v1::{self as pb, JobKind, JobState, RunState};
use serde_json::{Value, json};

/// A job of the run that failed for good (attempts used up, or an error no attempt gets past), as every surface
/// names it: a cell by its group and ratio, another job by its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedJob {
    pub job_id: i64,
    pub kind: JobKind,
    /// Cells only.
    pub group_key: String,
    /// Cells only.
    pub ratio: f64,
    /// The attempt that failed last.
    pub attempt: i32,
    pub error: String,
}

impl FailedJob {
    fn of(job: &pb::JobStatus) -> Self {
        Self {
            job_id: job.job_id,
            kind: job.kind(),
            group_key: job.group_key.clone(),
            ratio: job.ratio,
            attempt: job.attempt,
            error: job.last_error.clone(),
        }
    }

    /// `cell <group> at <ratio>`, or the job's kind.
    pub fn label(&self) -> String {
        if self.kind == JobKind::Cell {
            format!("cell {} at {}", self.group_key, self.ratio)
        } else {
            format!("{} (job {})", self.kind, self.job_id)
        }
    }

    /// The dashboard API's and `status --json`'s form.
    pub fn json(&self) -> Value {
        json!({
            "job_id": self.job_id,
            "kind": self.kind.as_str(),
            "group_key": (self.kind == JobKind::Cell).then_some(&self.group_key),
            "ratio": (self.kind == JobKind::Cell).then_some(self.ratio),
            "attempt": self.attempt,
            "error": self.error,
        })
    }
}

impl std::fmt::Display for FailedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let error = if self.error.is_empty() {
            "no error recorded"
        } else {
            &self.error
        };
        write!(f, "{} (attempt {}): {error}", self.label(), self.attempt)
    }
}

/// A run's progress.
pub struct Progress {
    pub run_id: i64,
    pub name: String,
    pub state: RunState,
    pub cells_total: u64,
    /// Cells in a final state ([`JobState::is_final`]).
    pub cells_finished: u64,
    /// Cells by state, by the state's name.
    pub by_state: BTreeMap<&'static str, u64>,
    /// Probe jobs queued so far (the search adds them round by round), and those in a final state.
    pub probes_total: u64,
    pub probes_finished: u64,
    /// The workers holding a lease on one of its jobs.
    pub workers: Vec<i64>,
    pub elapsed: Duration,
    /// Remaining cells at the pace of the cells computed so far; none until one is, or once the run ended.
    pub eta: Option<Duration>,
    pub error: String,
    pub created_at: String,
    pub finished_at: String,
    /// Its jobs that failed for good, by id. A run can end done with failed cells: every surface says so, and
    /// `coordinator retry` queues them again.
    pub failed: Vec<FailedJob>,
}

impl Progress {
    pub fn of(run: &pb::GetRunResponse) -> Self {
        let cells: Vec<&pb::JobStatus> = run.jobs.iter().filter(|j| j.kind() == JobKind::Cell).collect();
        let mut by_state = BTreeMap::new();
        for job in &cells {
            *by_state.entry(job.state().as_str()).or_insert(0) += 1;
        }
        let mut workers: Vec<i64> = run
            .jobs
            .iter()
            .filter(|j| j.lease_owner != 0)
            .map(|j| j.lease_owner)
            .collect();
        workers.sort_unstable();
        workers.dedup();
        let summary = run.summary.clone().unwrap_or_default();
        let parse = |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok();
        let created = parse(&summary.created_at);
        let end = parse(&summary.finished_at).unwrap_or_else(time::OffsetDateTime::now_utc);
        let elapsed = created.map_or(Duration::ZERO, |c| (end - c).try_into().unwrap_or(Duration::ZERO));
        let finished = cells.iter().filter(|j| j.state().is_final()).count() as u64;
        // Cells computed in this run (not imported) set the pace.
        let computed = cells
            .iter()
            .filter(|j| !j.leased_at.is_empty() && j.state().is_final())
            .count() as u64;
        let probes: Vec<&pb::JobStatus> = run.jobs.iter().filter(|j| j.kind() == JobKind::Probe).collect();
        let remaining = cells.len() as u64 - finished;
        let eta = (computed > 0 && run.state() == RunState::Running)
            .then(|| elapsed.mul_f64(remaining as f64 / computed as f64));
        Self {
            run_id: run.run_id,
            name: summary.name,
            state: run.state(),
            cells_total: cells.len() as u64,
            cells_finished: finished,
            by_state,
            probes_total: probes.len() as u64,
            probes_finished: probes.iter().filter(|j| j.state().is_final()).count() as u64,
            workers,
            elapsed,
            eta,
            error: summary.error,
            created_at: summary.created_at,
            finished_at: summary.finished_at,
            failed: run
                .jobs
                .iter()
                .filter(|j| j.state() == JobState::Failed)
                .map(FailedJob::of)
                .collect(),
        }
    }

    /// The failed cells among [`Self::failed`].
    pub fn failed_cells(&self) -> usize {
        self.failed.iter().filter(|j| j.kind == JobKind::Cell).count()
    }

    /// Whether the run ended done with failed jobs: its results miss them, so it did not end well.
    pub fn done_with_failures(&self) -> bool {
        self.state == RunState::Done && !self.failed.is_empty()
    }

    /// `2 of 4 cells failed` (or `1 job failed` when no cell did), empty when none failed: what `watch`,
    /// `status` and `results` say of a run's failures.
    pub fn failed_text(&self) -> String {
        match (self.failed.len(), self.failed_cells()) {
            (0, _) => String::new(),
            (n, 0) => format!("{n} job{} failed", if n == 1 { "" } else { "s" }),
            (_, cells) => format!("{cells} of {} cells failed", self.cells_total),
        }
    }

    /// ", 3/6 probes" once the run has probes, else nothing: what `watch` adds to its line.
    pub fn probes_text(&self) -> String {
        if self.probes_total == 0 {
            String::new()
        } else {
            format!(", {}/{} probes", self.probes_finished, self.probes_total)
        }
    }

    /// The dashboard API's form (README, "Dashboard").
    pub fn json(&self) -> Value {
        json!({
            "run_id": self.run_id,
            "name": self.name,
            "state": self.state.as_str(),
            "cells_total": self.cells_total,
            "cells_finished": self.cells_finished,
            "by_state": self.by_state,
            "probes_total": self.probes_total,
            "probes_finished": self.probes_finished,
            "active_workers": self.workers,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "eta_s": self.eta.map(|d| d.as_secs_f64()),
            "error": (!self.error.is_empty()).then_some(&self.error),
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "failed": self.failed.iter().map(FailedJob::json).collect::<Vec<_>>(),
        })
    }
}

/// A run's recovery (its newest recover job) as `coordinator status` and the dashboard show it: the job's state
/// and worker, steps done of all, the last step's distillation loss, the last eval metric and the best so far,
/// and the metric before and after pruning. While it runs these are the worker's last report (the job's
/// progress); once done, its `recover_report`.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    pub job_id: i64,
    pub state: JobState,
    /// The worker holding its lease, 0 when none.
    pub worker: i64,
    pub attempt: i32,
    /// Steps done, none before the first report.
    pub step: Option<u64>,
    /// The steps it runs, none before the first report.
    pub steps: Option<u64>,
    /// The distillation loss of the last step.
    pub loss: Option<f64>,
    /// The name of the metric below (the run's metric, or the one the report names).
    pub metric: String,
    /// The last eval metric, none before the first eval.
    pub last_metric: Option<f64>,
    /// The best eval metric so far, the pruned model's included: a recovery exports the best weights it saw,
    /// which may be the pruned ones.
    pub best_metric: Option<f64>,
    /// Before pruning (the baseline) and after pruning (the export), when known.
    pub baseline_metric: Option<f64>,
    pub pruned_metric: Option<f64>,
    pub error: String,
}

impl Recovery {
    /// The recovery of `run`, whose metric is `metric` (the spec's); `None` for a run without a recover job.
    pub fn of(run: &pb::GetRunResponse, metric: &str) -> Option<Self> {
        let job = run
            .jobs
            .iter()
            .filter(|j| j.kind() == JobKind::Recover)
            .max_by_key(|j| j.job_id)?;
        let done_metric = |kind: JobKind| {
            run.jobs
                .iter()
                .filter(|j| j.kind() == kind && j.state() == JobState::Done)
                .find_map(|j| crate::sensitivity::metric(&serde_json::from_str(&j.result_json).ok()?, metric))
        };
        let progress: Value = serde_json::from_str(&job.progress_json).unwrap_or_default();
        let reported = |key: &str| progress.get(key).and_then(Value::as_f64);
        let result: Value = serde_json::from_str(&job.result_json).unwrap_or_default();
        let pruned = done_metric(JobKind::Export);
        let mut recovery = Self {
            job_id: job.job_id,
            state: job.state(),
            worker: job.lease_owner,
            attempt: job.attempt,
            step: progress.get("step").and_then(Value::as_u64),
            steps: progress.get("steps").and_then(Value::as_u64),
            loss: reported("loss"),
            metric: metric.to_owned(),
            last_metric: reported("metric"),
            best_metric: match (reported("best"), pruned) {
                (Some(best), Some(pruned)) => Some(best.max(pruned)),
                (best, pruned) => best.or(pruned),
            },
            baseline_metric: done_metric(JobKind::Baseline),
            pruned_metric: pruned,
            error: job.last_error.clone(),
        };
        if let Some(report) = result.get("recover_report") {
            recovery.read_report(report);
        }
        Some(recovery)
    }

    /// Takes what a done recovery's report says over the last progress reported.
    fn read_report(&mut self, report: &Value) {
        let number = |key: &str| report.get(key).and_then(Value::as_f64);
        if let Some(steps) = report.get("steps").and_then(Value::as_u64) {
            (self.step, self.steps) = (Some(steps), Some(steps));
        }
        if let Some(metric) = report.get("metric").and_then(Value::as_str) {
            metric.clone_into(&mut self.metric);
        }
        let history = report
            .get("history")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let last = |key: &str| history.iter().rev().find_map(|h| h.get(key).and_then(Value::as_f64));
        self.loss = last("loss").or(self.loss);
        self.last_metric = last("metric").or(self.last_metric);
        self.best_metric = number("recovered").or(self.best_metric);
        self.baseline_metric = number("baseline").or(self.baseline_metric);
        self.pruned_metric = number("pruned").or(self.pruned_metric);
    }

    /// `running on #3, step 12/40, loss 0.01234, hmean 0.8120 (best 0.8200), baseline 0.9474, pruned 0.0000`:
    /// what `coordinator status` prints after `recover: `.
    pub fn text(&self) -> String {
        let mut parts = vec![match self.state {
            JobState::Leased if self.worker != 0 => format!("running on #{}", self.worker),
            state => state.as_str().to_owned(),
        }];
        if let Some(step) = self.step {
            parts.push(match self.steps {
                Some(steps) => format!("step {step}/{steps}"),
                None => format!("step {step}"),
            });
        }
        if let Some(loss) = self.loss {
            // A distillation loss falls by orders of magnitude: below a thousandth, its digits in exponent form.
            parts.push(if loss.abs() >= 1e-3 {
                format!("loss {loss:.5}")
            } else {
                format!("loss {loss:.3e}")
            });
        }
        match (self.last_metric, self.best_metric) {
            (Some(last), Some(best)) => parts.push(format!("{} {last:.4} (best {best:.4})", self.metric)),
            (Some(last), None) => parts.push(format!("{} {last:.4}", self.metric)),
            (None, Some(best)) => parts.push(format!("best {} {best:.4}", self.metric)),
            (None, None) => {}
        }
        for (name, value) in [("baseline", self.baseline_metric), ("pruned", self.pruned_metric)] {
            if let Some(value) = value {
                parts.push(format!("{name} {value:.4}"));
            }
        }
        if !self.error.is_empty() {
            parts.push(format!("error: {}", self.error));
        }
        parts.join(", ")
    }

    /// The dashboard API's and `status --json`'s form (README, "Dashboard").
    pub fn json(&self) -> Value {
        json!({
            "job_id": self.job_id,
            "state": self.state.as_str(),
            "worker": (self.worker != 0).then_some(self.worker),
            "attempt": self.attempt,
            "step": self.step,
            "steps": self.steps,
            "loss": self.loss,
            "metric": self.metric,
            "last_metric": self.last_metric,
            "best_metric": self.best_metric,
            "baseline_metric": self.baseline_metric,
            "pruned_metric": self.pruned_metric,
            "error": (!self.error.is_empty()).then_some(&self.error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(job_id: i64, kind: JobKind, state: JobState, result: Value) -> pb::JobStatus {
        let mut job = pb::JobStatus {
            job_id,
            result_json: if result.is_null() {
                String::new()
            } else {
                result.to_string()
            },
            ..Default::default()
        };
        job.set_kind(kind);
        job.set_state(state);
        job
    }

    /// A run with a done baseline (hmean 0.9) and export (0.5), and a recover job in `recover`.
    fn run(recover: pb::JobStatus) -> pb::GetRunResponse {
        pb::GetRunResponse {
            jobs: vec![
                job(1, JobKind::Baseline, JobState::Done, json!({"metrics": {"hmean": 0.9}})),
                job(2, JobKind::Export, JobState::Done, json!({"metrics": {"hmean": 0.5}})),
                recover,
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_run_without_a_recover_job_has_no_recovery() {
        let run = pb::GetRunResponse {
            jobs: vec![job(1, JobKind::Baseline, JobState::Done, Value::Null)],
            ..Default::default()
        };
        assert_eq!(Recovery::of(&run, "hmean"), None);
    }

    #[test]
    fn a_running_recovery_shows_its_last_report_and_the_metric_before_and_after_pruning() {
        let mut recover = job(3, JobKind::Recover, JobState::Queued, Value::Null);
        let queued = Recovery::of(&run(recover.clone()), "hmean").unwrap();
        assert_eq!((queued.step, queued.steps, queued.last_metric), (None, None, None));
        assert_eq!(
            queued.best_metric,
            Some(0.5),
            "before any eval, the pruned weights are the best"
        );
        assert_eq!(
            queued.text(),
            "queued, best hmean 0.5000, baseline 0.9000, pruned 0.5000"
        );

        recover.set_state(JobState::Leased);
        recover.lease_owner = 7;
        recover.attempt = 2;
        recover.progress_json = json!({"step": 12, "steps": 40, "loss": 0.25, "metric": 0.4, "best": 0.45}).to_string();
        let running = Recovery::of(&run(recover.clone()), "hmean").unwrap();
        assert_eq!(
            (running.step, running.steps, running.loss),
            (Some(12), Some(40), Some(0.25))
        );
        assert_eq!(
            (running.last_metric, running.best_metric),
            (Some(0.4), Some(0.5)),
            "evals below the pruned model's metric leave the pruned weights the best"
        );
        assert_eq!(
            running.text(),
            "running on #7, step 12/40, loss 0.25000, hmean 0.4000 (best 0.5000), baseline 0.9000, pruned 0.5000"
        );
        let shown = running.json();
        assert_eq!(
            (shown["worker"].clone(), shown["attempt"].clone()),
            (json!(7), json!(2))
        );
        assert_eq!((shown["step"].clone(), shown["steps"].clone()), (json!(12), json!(40)));

        recover.progress_json =
            json!({"step": 20, "steps": 40, "loss": 1.0226e-8, "metric": 0.7, "best": 0.75}).to_string();
        let better = Recovery::of(&run(recover), "hmean").unwrap();
        assert_eq!((better.last_metric, better.best_metric), (Some(0.7), Some(0.75)));
        assert!(better.text().contains("loss 1.023e-8"), "{}", better.text());
    }

    #[test]
    fn a_done_recovery_shows_its_report() {
        let report = json!({
            "metric": "hmean", "baseline": 0.95, "pruned": 0.55, "recovered": 0.85, "steps": 40, "best_step": 30,
            "history": [
                {"step": 39, "loss": 0.11, "metric": null},
                {"step": 40, "loss": 0.1, "metric": 0.8},
            ],
        });
        let mut recover = job(3, JobKind::Recover, JobState::Done, json!({"recover_report": report}));
        recover.progress_json = json!({"step": 40, "steps": 40, "loss": 0.1, "metric": 0.8, "best": 0.85}).to_string();
        let done = Recovery::of(&run(recover), "acc").unwrap();
        assert_eq!(
            done.text(),
            "done, step 40/40, loss 0.10000, hmean 0.8000 (best 0.8500), baseline 0.9500, pruned 0.5500"
        );
        assert_eq!(done.worker, 0);
    }
}
