//! A run's progress from `GetRun`: cells finished, by state, probes finished (a measured `Prune` target), the
//! workers holding its leases, elapsed time, an ETA and the jobs that failed for good. `coordinator status` and `watch` print it; the dashboard's JSON API serves it.

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
