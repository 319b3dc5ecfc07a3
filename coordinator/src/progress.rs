//! A run's progress from `GetRun`: cells finished, by state, probes finished (a measured `Prune` target), the
//! workers holding its leases, elapsed time and an ETA. `coordinator status` and `watch` print it; the dashboard's JSON API serves it.

use std::collections::BTreeMap;
use std::time::Duration;

use sensgrid_proto::v1 as pb;
use serde_json::{Value, json};

/// A run's progress.
pub struct Progress {
    pub run_id: i64,
    pub name: String,
    pub state: String,
    pub cells_total: u64,
    /// Cells in a final state (done, failed, cancelled, skipped).
    pub cells_finished: u64,
    /// Cells by state.
    pub by_state: BTreeMap<String, u64>,
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
}

impl Progress {
    pub fn of(run: &pb::GetRunResponse) -> Self {
        let cells: Vec<&pb::JobStatus> = run.jobs.iter().filter(|j| j.kind == "cell").collect();
        let final_state = |s: &str| matches!(s, "done" | "failed" | "cancelled" | "skipped");
        let mut by_state = BTreeMap::new();
        for job in &cells {
            *by_state.entry(job.state.clone()).or_insert(0) += 1;
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
        let finished = cells.iter().filter(|j| final_state(&j.state)).count() as u64;
        // Cells computed in this run (not imported) set the pace.
        let computed = cells
            .iter()
            .filter(|j| !j.leased_at.is_empty() && final_state(&j.state))
            .count() as u64;
        let probes: Vec<&pb::JobStatus> = run.jobs.iter().filter(|j| j.kind == "probe").collect();
        let remaining = cells.len() as u64 - finished;
        let eta = (computed > 0 && run.state == "running").then(|| elapsed.mul_f64(remaining as f64 / computed as f64));
        Self {
            run_id: run.run_id,
            name: summary.name,
            state: run.state.clone(),
            cells_total: cells.len() as u64,
            cells_finished: finished,
            by_state,
            probes_total: probes.len() as u64,
            probes_finished: probes.iter().filter(|j| final_state(&j.state)).count() as u64,
            workers,
            elapsed,
            eta,
            error: summary.error,
            created_at: summary.created_at,
            finished_at: summary.finished_at,
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
            "state": self.state,
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
        })
    }
}
