//! `coordinator status`: every run in a table, or one run's cells by state, active workers, elapsed time and
//! ETA; text or `--json`. `watch` shows a run's progress with the same words.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_coordinator::progress::{Progress, Recovery};
use sensgrid_coordinator::spec::RunSpec;
use sensgrid_proto::v1 as pb;
use serde_json::json;

use super::connection::Connection;

#[derive(Args)]
pub struct StatusArgs {
    /// One run's detail; every run when left out.
    run: Option<i64>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

/// A duration as minutes and seconds (`3m07s`).
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

pub async fn run(args: StatusArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    // Written in one go once complete: a reader that leaves early (`| head -1`) ends the command quietly.
    let mut out = String::new();
    let Some(run_id) = args.run else {
        let runs = admin.list_runs(pb::ListRunsRequest::default()).await?.into_inner().runs;
        if args.json {
            let runs: Vec<_> = runs
                .iter()
                .map(|r| {
                    json!({"run_id": r.run_id, "name": r.name, "state": r.state().as_str(), "jobs": r.jobs,
                    "created_at": r.created_at, "finished_at": r.finished_at, "error": r.error})
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&runs)?)?;
            return write_stdout(&out);
        }
        writeln!(
            out,
            "{:>5}  {:<24} {:<10} {:>11}  {:<25} error",
            "run", "name", "state", "jobs done", "created"
        )?;
        for r in runs {
            let total: u64 = r.jobs.values().sum();
            let done = r.jobs.get(pb::JobState::Done.as_str()).copied().unwrap_or(0);
            // A done run's failed jobs are missing from its results: the error column says so.
            let failed = r.jobs.get(pb::JobState::Failed.as_str()).copied().unwrap_or(0);
            let error = if r.error.is_empty() && failed > 0 {
                format!("{failed} failed jobs (`coordinator retry {}`)", r.run_id)
            } else {
                r.error.clone()
            };
            writeln!(
                out,
                "{:>5}  {:<24} {:<10} {:>5}/{:<5}  {:<25} {}",
                r.run_id,
                r.name,
                r.state(),
                done,
                total,
                r.created_at,
                error
            )?;
        }
        return write_stdout(&out);
    };
    let run = admin.get_run(pb::GetRunRequest { run_id }).await?.into_inner();
    let p = Progress::of(&run);
    let job_state = |kind: pb::JobKind| {
        run.jobs
            .iter()
            .find(|j| j.kind() == kind)
            .map_or("none", |j| j.state().as_str())
    };
    let spec = RunSpec::shown(&run);
    let early_stopped = run
        .jobs
        .iter()
        .filter(|j| {
            j.kind() == pb::JobKind::Cell
                && j.state() == pb::JobState::Skipped
                && j.last_error.starts_with("early stop")
        })
        .count();
    let recovery = Recovery::of(&run, &spec.metric);
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({
                "recover": recovery.as_ref().map(Recovery::json),
                "run_id": run_id, "state": p.state.as_str(), "error": p.error,
                "failed": p.failed.iter().map(|j| j.json()).collect::<Vec<_>>(),
                "baseline": job_state(pb::JobKind::Baseline), "export": job_state(pb::JobKind::Export),
                "cells": {"total": p.cells_total, "finished": p.cells_finished, "by_state": p.by_state},
                "probes": {"total": p.probes_total, "finished": p.probes_finished},
                "eval_samples": spec.eval_samples,
                "early_stop": spec.early_stop_loss.map(|loss| json!({"loss": loss, "skipped": early_stopped})),
                "precision": spec.precision(),
                "active_workers": p.workers, "elapsed_s": p.elapsed.as_secs_f64(),
                "eta_s": p.eta.map(|d| d.as_secs_f64()),
            }))?
        )?;
        return write_stdout(&out);
    }
    let name = run.summary.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    if p.failed.is_empty() {
        writeln!(out, "run {run_id} '{name}': {}", p.state)?;
    } else {
        writeln!(out, "run {run_id} '{name}': {} ({})", p.state, p.failed_text())?;
    }
    if !p.error.is_empty() {
        writeln!(out, "  error: {}", p.error)?;
    }
    writeln!(
        out,
        "  baseline: {}   export: {}",
        job_state(pb::JobKind::Baseline),
        job_state(pb::JobKind::Export)
    )?;
    if let Some(recovery) = &recovery {
        writeln!(out, "  recover: {}", recovery.text())?;
    }
    let states: Vec<String> = p.by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
    writeln!(
        out,
        "  cells: {}/{} finished ({})",
        p.cells_finished,
        p.cells_total,
        states.join(", ")
    )?;
    if !p.failed.is_empty() {
        writeln!(
            out,
            "  failed: {} (`coordinator retry {run_id}` queues them again)",
            p.failed_text()
        )?;
        for job in &p.failed {
            writeln!(out, "    {job}")?;
        }
    }
    if p.probes_total > 0 {
        writeln!(
            out,
            "  probes: {}/{} finished (candidate plans of the measured Prune target)",
            p.probes_finished, p.probes_total
        )?;
    }
    match spec.eval_samples {
        Some(subset) => writeln!(
            out,
            "  eval set: {} of {} samples (Sensitivity.seed {})",
            subset.count, subset.of, subset.seed
        )?,
        None => writeln!(out, "  eval set: every sample")?,
    }
    writeln!(out, "  precision: {}", spec.precision())?;
    if let Some(loss) = spec.early_stop_loss {
        writeln!(
            out,
            "  early stop: a group's larger ratios skipped once its loss exceeds {loss} ({early_stopped} cells skipped)"
        )?;
    }
    writeln!(out, "  active workers: {}", describe_workers(&p.workers))?;
    writeln!(
        out,
        "  elapsed: {}   ETA: {}",
        seconds(p.elapsed),
        p.eta.map_or_else(|| "-".into(), seconds)
    )?;
    write_stdout(&out)
}

/// The workers holding a run's jobs (`#3 #7`), or `none`.
pub fn describe_workers(workers: &[i64]) -> String {
    if workers.is_empty() {
        "none".into()
    } else {
        workers.iter().map(|w| format!("#{w}")).collect::<Vec<_>>().join(" ")
    }
}
