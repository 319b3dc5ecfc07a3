//! What `coordinator results RUN --out DIR` writes, from the run as `GetRun` answers it:
//!
//! - `sen.pickle`: `{group key: {ratio: loss}}` of the done cells, str keys and Python floats, as PaddleSlim's
//!   `sensitivity()` saves it (readable by `pickle.load`, also with `encoding='bytes'`); cells an early stop
//!   skipped are left out, never filled in;
//! - `sen_status.pickle`: the same table inside the `Status` object of PaddleSlim's dygraph pruners, the
//!   `sen_file` that PaddleOCR's `sensitivity_anal.py` hands to `FPGMFilterPruner.sensitive` (see
//!   [`paddleslim_status`]);
//! - `sensitivities.csv`: one row per cell (group, ratio, channels pruned, metric, loss, state);
//! - `sensitivities.json`: the baseline's metric dict, and per group its members, channels, params and FLOPs
//!   with each cell's metric dict, loss, state, worker, device and seconds (a skipped cell's `error` says
//!   why); at the top, the eval subset (`eval_samples`: count, of, seed), `early_stop_loss` and `precision`;
//! - after a plan, `plan.json`; after an export, `prune_report.json` (and the CLI fetches `pruned.onnx`), whose
//!   `target` says how the plan met the `Prune` target;
//! - after a recovery (a `Recover` section), `recover_report.json`, the worker's report (metric before pruning,
//!   after pruning and after recovery, the options, steps, wall time, device, and the loss and metric by step),
//!   `recover.png` (see [`plots::recover`]), and the CLI fetches `recovered.onnx`;
//! - with probe jobs (a measured target), `probes.csv` and `probes.json`: one row per probe in step order, its
//!   plan, FLOPs, params and latency, metric, loss, worker, and `chosen` for the one whose plan is the run's;
//! - the plots of [`crate::plots`]: `sensitivity.png` and `.svg`, `heatmap.png`, after a plan `pruned.png`,
//!   with done probes `tradeoff.png` and `.svg`.
//!
//! Every file is written whole or not at all (issue 26): all are written and synced under temporary names
//! first ([`Staged`]), and renamed into place only once every one of them is, so a full disk leaves the earlier
//! results as they were, never a 0-byte or truncated file, nor new files beside old ones.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sensgrid_model::prune::pruned_count;
use sensgrid_proto::v1::{self as pb, JobKind, JobState};
use serde_json::{Map, Value, json};

use crate::spec::{GroupSpec, MeasuredSpec, PruneTarget, RunSpec};
use crate::{planning, plots, sensitivity};
use sensgrid_client::atomic_file::AtomicFile;

/// A run read for its results.
pub struct RunResults<'a> {
    pub run: &'a pb::GetRunResponse,
    pub spec: RunSpec,
    /// Registered workers by id, to name who computed each cell.
    pub workers: HashMap<i64, &'a pb::WorkerSummary>,
}

/// What [`RunResults::write`] wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The export's pruned model digest, when the export is done: the caller downloads it to `pruned.onnx`.
    pub pruned_model: Option<String>,
}

/// The files of a run's results written and synced under temporary names, not yet in place: nothing in the
/// folder has changed until [`Staged::commit`], and dropped before it they are removed. So a file that cannot
/// be written (a full disk) leaves every earlier result as it was, never a mix of new and old files.
pub struct Staged {
    files: Vec<AtomicFile>,
    /// The export's pruned model digest, when the export is done: the caller downloads it (staged too, with
    /// [`Staged::add`]) to `pruned.onnx`.
    pub pruned_model: Option<String>,
    /// The recovered model's digest, when the recovery is done: the caller downloads it to `recovered.onnx`.
    pub recovered_model: Option<String>,
}

impl Staged {
    /// Adds a file written elsewhere (the downloaded `pruned.onnx`), committed with the others.
    pub fn add(&mut self, file: AtomicFile) {
        self.files.push(file);
    }

    /// Renames every file into place; answers their paths.
    ///
    /// # Errors
    ///
    /// A file that cannot be renamed or synced, naming it.
    pub fn commit(self) -> Result<Vec<PathBuf>> {
        let mut paths = Vec::with_capacity(self.files.len());
        for file in self.files {
            let path = file.dest().to_owned();
            file.commit()?;
            paths.push(path);
        }
        Ok(paths)
    }
}

impl<'a> RunResults<'a> {
    /// # Errors
    ///
    /// A run whose spec does not read.
    pub fn new(run: &'a pb::GetRunResponse, workers: &'a [pb::WorkerSummary]) -> Result<Self> {
        let spec_json: Value = serde_json::from_str(&run.spec_json).context("the run's spec is not JSON")?;
        let spec = RunSpec::from_json(&spec_json).map_err(anyhow::Error::msg)?;
        Ok(Self {
            run,
            spec,
            workers: workers.iter().map(|w| (w.worker_id, w)).collect(),
        })
    }

    fn result(job: &pb::JobStatus) -> Option<Value> {
        serde_json::from_str(&job.result_json).ok()
    }

    fn jobs(&self, kind: JobKind) -> impl Iterator<Item = &pb::JobStatus> {
        self.run.jobs.iter().filter(move |j| j.kind() == kind)
    }

    /// The baseline's stored result, when it is done.
    pub fn baseline(&self) -> Option<Value> {
        self.jobs(JobKind::Baseline)
            .find(|j| j.state() == JobState::Done)
            .and_then(Self::result)
    }

    /// The value of the run's metric in the baseline.
    pub fn baseline_metric(&self) -> Option<f64> {
        sensitivity::metric(&self.baseline()?, &self.spec.metric)
    }

    /// The sensitivities of the done cells.
    pub fn sensitivities(&self) -> sensgrid_model::prune::planner::Sensitivities {
        let Some(baseline) = self.baseline_metric() else {
            return Default::default();
        };
        let results: Vec<(String, f64, Value)> = self
            .jobs(JobKind::Cell)
            .filter(|j| j.state() == JobState::Done)
            .filter_map(|j| Some((j.group_key.clone(), j.ratio, Self::result(j)?)))
            .collect();
        sensitivity::sensitivities(
            baseline,
            &self.spec.metric,
            results.iter().map(|(g, r, v)| (g.as_str(), *r, v)),
        )
    }

    /// Writes every file into `out` (created): [`RunResults::stage`], then [`Staged::commit`].
    ///
    /// # Errors
    ///
    /// A file that cannot be written, naming it.
    pub fn write(&self, out: &Path) -> Result<Written> {
        let staged = self.stage(out)?;
        let pruned_model = staged.pruned_model.clone();
        Ok(Written {
            files: staged.commit()?,
            pruned_model,
        })
    }

    /// Writes every file into `out` (created) under temporary names, synced: see [`Staged`]. A plot that cannot
    /// be drawn (no font) is left out with a warning, and loses no result; one that cannot be written is an
    /// error like any other file.
    ///
    /// # Errors
    ///
    /// A file that cannot be written, naming it.
    pub fn stage(&self, out: &Path) -> Result<Staged> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            ("sen.pickle", self.sen_pickle()?),
            ("sen_status.pickle", self.sen_status_pickle()?),
            ("sensitivities.csv", self.csv()?),
            ("sensitivities.json", pretty(&self.json())?),
        ];
        let probes = self.probes();
        if !probes.is_empty() {
            files.push(("probes.csv", self.probes_csv(&probes)?));
            files.push(("probes.json", pretty(&self.probes_json(&probes))?));
        }
        if !self.run.plan_json.is_empty() {
            let plan: Value = serde_json::from_str(&self.run.plan_json).context("the run's plan is not JSON")?;
            files.push(("plan.json", pretty(&plan)?));
        }
        let export = self
            .jobs(JobKind::Export)
            .find(|j| j.state() == JobState::Done)
            .and_then(Self::result);
        let mut pruned_model = None;
        if let Some(export) = export {
            files.push(("prune_report.json", pretty(&self.prune_report(&export))?));
            pruned_model = export.get("artifact_digest").and_then(Value::as_str).map(str::to_owned);
        }
        let recovery = self
            .jobs(JobKind::Recover)
            .find(|j| j.state() == JobState::Done)
            .and_then(Self::result);
        let mut recovered_model = None;
        let mut recovery_plot = None;
        if let Some(recovery) = recovery {
            if let Some(report) = recovery.get("recover_report") {
                files.push(("recover_report.json", pretty(report)?));
                recovery_plot = plots::recover::Recovery::from_report(self.title(), report);
            }
            recovered_model = recovery
                .get("artifact_digest")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        let mut plots = match plots::draw(&self.plot_grid()) {
            Ok(plots) => plots,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "the plots are not drawn");
                Vec::new()
            }
        };
        if let Some(tradeoff) = self.tradeoff_from(&probes) {
            match plots::tradeoff::render(&tradeoff) {
                Ok(drawn) => plots.extend(drawn),
                Err(error) => tracing::warn!(error = format!("{error:#}"), "the trade-off plot is not drawn"),
            }
        }
        if let Some(recovery) = &recovery_plot {
            match plots::recover::render(recovery) {
                Ok(drawn) => plots.extend(drawn),
                Err(error) => tracing::warn!(error = format!("{error:#}"), "the recovery plot is not drawn"),
            }
        }
        files.extend(plots.into_iter().map(|plot| (plot.name, plot.bytes)));
        let mut staged = Staged {
            files: Vec::with_capacity(files.len()),
            pruned_model,
            recovered_model,
        };
        for (name, bytes) in files {
            let mut file = AtomicFile::create(out.join(name))?;
            file.write_all(&bytes)?;
            file.sync()?;
            staged.add(file);
        }
        Ok(staged)
    }

    /// What the plots are drawn from: every group in model order, the skipped ones marked; each cell's
    /// loss or state; `Prune.max_loss`; and the plan with each group's channels.
    pub fn plot_grid(&self) -> plots::Grid {
        let mut ratios = self.spec.ratios.clone();
        let mut keys: Vec<(String, usize, bool)> = self
            .spec
            .all_groups()
            .into_iter()
            .map(|(g, skipped)| (g.key.clone(), g.channels, skipped))
            .collect();
        // A bare grid (a run submitted without analysis) has its ratios and groups only in its jobs.
        for job in self.jobs(JobKind::Cell) {
            if !ratios.iter().any(|r| same_ratio(*r, job.ratio)) {
                ratios.push(job.ratio);
            }
            if !keys.iter().any(|k| k.0 == job.group_key) {
                keys.push((job.group_key.clone(), 0, false));
            }
        }
        ratios.sort_by(f64::total_cmp);
        let baseline = self.baseline_metric();
        let mut cells: HashMap<&str, Vec<plots::Cell>> = HashMap::new();
        for job in self.jobs(JobKind::Cell) {
            let Some(col) = ratios.iter().position(|r| same_ratio(*r, job.ratio)) else {
                continue;
            };
            let cell = match job.state() {
                JobState::Done => Self::result(job)
                    .zip(baseline)
                    .and_then(|(r, b)| sensitivity::cell_loss(&r, b, &self.spec.metric))
                    .map_or(plots::Cell::Pending, plots::Cell::Done),
                JobState::Skipped => plots::Cell::Skipped,
                JobState::Failed | JobState::Cancelled => plots::Cell::Failed,
                _ => plots::Cell::Pending,
            };
            cells
                .entry(job.group_key.as_str())
                .or_insert_with(|| vec![plots::Cell::Pending; ratios.len()])[col] = cell;
        }
        let groups = keys
            .into_iter()
            .map(|(key, channels, skipped)| plots::Group {
                cells: cells
                    .remove(key.as_str())
                    .unwrap_or_else(|| vec![plots::Cell::Pending; ratios.len()]),
                key,
                channels,
                skipped,
            })
            .collect();
        let plan = serde_json::from_str::<Value>(&self.run.plan_json)
            .ok()
            .and_then(|plan| {
                let plan = plan.as_object()?;
                let rows = self.spec.groups.iter().map(|g| {
                    let ratio = plan.get(&g.key).and_then(Value::as_f64).unwrap_or(0.0);
                    plots::PlannedGroup {
                        key: g.key.clone(),
                        ratio,
                        channels_before: g.channels,
                        channels_after: g.channels - pruned_count(g.channels, ratio),
                    }
                });
                Some(rows.collect())
            });
        plots::Grid {
            metric: self.spec.metric.clone(),
            max_loss: match self.spec.prune.map(|p| p.target) {
                Some(PruneTarget::MaxLoss(loss)) => Some(loss),
                _ => None,
            },
            ratios,
            groups,
            plan,
        }
    }

    /// `sen.pickle`'s bytes: [`Self::sen_table`] pickled.
    ///
    /// # Errors
    ///
    /// The pickler's error (none is expected for this shape).
    pub fn sen_pickle(&self) -> Result<Vec<u8>> {
        serde_pickle::value_to_vec(&self.sen_table(), serde_pickle::SerOptions::new())
            .context("pickling the sensitivities")
    }

    /// `sen_status.pickle`'s bytes: [`Self::sen_table`] in PaddleSlim's dygraph `Status` ([`paddleslim_status`]).
    ///
    /// # Errors
    ///
    /// The pickler's error (none is expected for this shape).
    pub fn sen_status_pickle(&self) -> Result<Vec<u8>> {
        paddleslim_status(self.sen_table())
    }

    /// The sensitivities of the done cells as the Python dict both pickles hold: `{group key: {ratio: loss}}`,
    /// str keys, float ratios and losses.
    fn sen_table(&self) -> serde_pickle::Value {
        use serde_pickle::{HashableValue, Value as Pickle};
        let table = self
            .sensitivities()
            .into_iter()
            .map(|(key, losses)| {
                let losses = losses
                    .into_iter()
                    .map(|(ratio, loss)| (HashableValue::F64(ratio.get()), Pickle::F64(loss)))
                    .collect();
                (HashableValue::String(key), Pickle::Dict(losses))
            })
            .collect();
        Pickle::Dict(table)
    }

    fn group(&self, key: &str) -> Option<&GroupSpec> {
        self.spec.groups.iter().chain(&self.spec.skipped).find(|g| g.key == key)
    }

    fn csv(&self) -> Result<Vec<u8>> {
        let baseline = self.baseline_metric();
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["group", "ratio", "channels_pruned", &self.spec.metric, "loss", "state"])?;
        for job in self.ordered_cells() {
            let result = Self::result(job);
            let metric = result.as_ref().and_then(|r| sensitivity::metric(r, &self.spec.metric));
            let loss = result
                .as_ref()
                .zip(baseline)
                .and_then(|(r, b)| sensitivity::cell_loss(r, b, &self.spec.metric));
            let pruned = self.group(&job.group_key).map(|g| pruned_count(g.channels, job.ratio));
            writer.write_record([
                job.group_key.clone(),
                // `{:?}` keeps a float a float (0.0, not 0), so CSV readers type the column alike.
                format!("{:?}", job.ratio),
                pruned.map(|n| n.to_string()).unwrap_or_default(),
                metric.map(|m| format!("{m:?}")).unwrap_or_default(),
                loss.map(|l| format!("{l:?}")).unwrap_or_default(),
                job.state().as_str().to_owned(),
            ])?;
        }
        writer.into_inner().context("writing sensitivities.csv")
    }

    /// The cells in model order of their groups, then by ratio.
    fn ordered_cells(&self) -> Vec<&pb::JobStatus> {
        let order: HashMap<&str, usize> = self
            .spec
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.key.as_str(), i))
            .collect();
        let mut cells: Vec<&pb::JobStatus> = self.jobs(JobKind::Cell).collect();
        cells.sort_by(|a, b| {
            let rank = |j: &pb::JobStatus| order.get(j.group_key.as_str()).copied().unwrap_or(usize::MAX);
            rank(a).cmp(&rank(b)).then(a.ratio.total_cmp(&b.ratio))
        });
        cells
    }

    fn worker(&self, id: i64) -> Value {
        match self.workers.get(&id) {
            Some(w) => json!({"id": id, "name": w.name, "device": w.device}),
            None if id == 0 => Value::Null,
            None => json!({"id": id}),
        }
    }

    /// `sensitivities.json`'s content (also the dashboard API's `results`).
    pub fn json(&self) -> Value {
        let baseline = self.baseline_metric();
        let mut cells_by_group: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for job in self.ordered_cells() {
            let result = Self::result(job);
            let loss = result
                .as_ref()
                .zip(baseline)
                .and_then(|(r, b)| sensitivity::cell_loss(r, b, &self.spec.metric));
            let field = |name: &str| {
                result
                    .as_ref()
                    .and_then(|r| r.get(name))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let channels = self.group(&job.group_key).map(|g| g.channels);
            cells_by_group.entry(job.group_key.as_str()).or_default().push(json!({
                "ratio": job.ratio,
                "channels_pruned": channels.map(|c| pruned_count(c, job.ratio)),
                "state": job.state().as_str(),
                "metrics": field("metrics"),
                "loss": loss,
                "imported": result.as_ref().is_some_and(|r| r.get("metrics").is_none()),
                "worker": self.worker(job.done_by),
                "device": field("device"),
                "seconds": field("seconds"),
                "attempt": job.attempt,
                "error": (!job.last_error.is_empty()).then_some(&job.last_error),
            }));
        }
        let group = |g: &GroupSpec, skipped: bool| {
            json!({
                "key": g.key,
                "skipped": skipped,
                "convs": g.convs,
                "channels": g.channels,
                "params": g.params,
                "flops": g.flops,
                "cells": cells_by_group.get(g.key.as_str()).cloned().unwrap_or_default(),
            })
        };
        let summary = self.run.summary.clone().unwrap_or_default();
        json!({
            "run_id": self.run.run_id,
            "name": self.spec.name,
            "state": self.run.state().as_str(),
            "error": (!summary.error.is_empty()).then_some(summary.error),
            "metric": self.spec.metric,
            "criterion": self.run.criterion,
            "ratios": self.spec.ratios,
            "input_shape": self.spec.input_shape,
            "eval_samples": self.spec.eval_samples,
            "early_stop_loss": self.spec.early_stop_loss,
            "precision": self.spec.precision(),
            "model": {"digest": self.run.model_digest, "params": self.spec.params, "flops": self.spec.flops},
            "baseline": self.baseline().and_then(|b| b.get("metrics").cloned()),
            "groups": self.spec.all_groups().into_iter().map(|(g, skipped)| group(g, skipped))
                .collect::<Vec<_>>(),
            "excluded": self.spec.excluded,
        })
    }

    fn prune_report(&self, export: &Value) -> Value {
        let report = export.get("report").cloned().unwrap_or(Value::Null);
        let number = |key: &str| report.get(key).cloned().unwrap_or(Value::Null);
        // Params and FLOPs are counts: the report carries every figure as a double, they read back as integers.
        let count = |key: &str| report.get(key).and_then(Value::as_f64).map(|v| v as u64);
        json!({
            "metric": self.spec.metric,
            "metric_before": self.baseline_metric(),
            "metric_after": sensitivity::metric(export, &self.spec.metric),
            "metrics_before": self.baseline().and_then(|b| b.get("metrics").cloned()),
            "metrics_after": export.get("metrics"),
            "params_before": count("params_before"),
            "params_after": count("params_after"),
            "flops_before": count("flops_before"),
            "flops_after": count("flops_after"),
            "latency_ms_before": number("latency_ms_before"),
            "latency_ms_after": number("latency_ms_after"),
            // The median of pruned/unpruned run pairs timed back to back, and its pessimistic counterpart (the
            // upper quartile of the ratios) that a latency target is judged by.
            "latency_reduction": number("latency_reduction"),
            "latency_reduction_low": number("latency_reduction_low"),
            "latency_input_shape": self.spec.input_shape,
            "device": export.get("device"),
            "pruned_model": export.get("artifact_digest"),
            "target": self.target_report(export),
        })
    }

    /// The run's measured target, when it has one.
    fn measured_target(&self) -> Option<MeasuredSpec> {
        match self.spec.prune?.target {
            PruneTarget::Measured(measured) => Some(measured),
            _ => None,
        }
    }

    /// The run's probe jobs in step order, each with its loss and reductions as the search measured them
    /// ([`planning::measurement`]).
    pub fn probes(&self) -> Vec<Probe<'_>> {
        let baseline = self.baseline_metric();
        let metric = &self.spec.metric;
        let run_plan = plan_map(&self.run.plan_json);
        let mut probes: Vec<Probe> = self
            .jobs(JobKind::Probe)
            .map(|job| {
                let result = Self::result(job);
                let plan = plan_map(&job.plan_json);
                let measured = result
                    .as_ref()
                    .zip(baseline)
                    .and_then(|(r, b)| planning::measurement(job.probe_step as usize, r, b, metric).ok());
                // A result the search could not read (its report lacks a latency figure) still shows its loss
                // and FLOPs, which mean the same either way; its latency reduction is left out, not guessed.
                let loss = measured.map(|m| m.loss).or_else(|| {
                    let (result, baseline) = result.as_ref().zip(baseline)?;
                    sensitivity::cell_loss(result, baseline, metric)
                });
                let flops_reduction = measured.map(|m| m.flops_reduction).or_else(|| {
                    let result = result.as_ref()?;
                    Some(sensitivity::reduction(
                        sensitivity::report(result, "flops_before")?,
                        sensitivity::report(result, "flops_after")?,
                    ))
                });
                // Only a measured probe can have been chosen: a failed one may share the plan of its retry.
                let chosen = job.state() == JobState::Done
                    && run_plan
                        .as_ref()
                        .zip(plan.as_ref())
                        .is_some_and(|(run, probe)| same_plan(run, probe));
                Probe {
                    flops_reduction,
                    latency_reduction: measured.map(|m| m.latency_reduction),
                    job,
                    result,
                    plan,
                    loss,
                    chosen,
                }
            })
            .collect();
        probes.sort_by_key(|p| (p.job.probe_step, p.job.job_id));
        probes
    }

    /// `probes.csv`: one row per probe, the plan last as compact JSON.
    fn probes_csv(&self, probes: &[Probe]) -> Result<Vec<u8>> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record([
            "step",
            "state",
            "groups_cut",
            "flops_before",
            "flops_after",
            "flops_reduction",
            "params_after",
            "latency_ms_before",
            "latency_ms_after",
            "latency_reduction",
            &self.spec.metric,
            "loss",
            "worker",
            "device",
            "seconds",
            "chosen",
            "plan",
        ])?;
        // `{:?}` keeps a float a float (0.0, not 0), as in sensitivities.csv.
        let float = |v: Option<f64>| v.map(|v| format!("{v:?}")).unwrap_or_default();
        let count = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        for probe in probes {
            let job = probe.job;
            let worker = match self.workers.get(&job.done_by) {
                Some(w) => w.name.clone(),
                None if job.done_by == 0 => String::new(),
                None => job.done_by.to_string(),
            };
            let plan = match &probe.plan {
                Some(plan) => Value::Object(plan.clone()).to_string(),
                None => job.plan_json.clone(),
            };
            writer.write_record([
                job.probe_step.to_string(),
                job.state().as_str().to_owned(),
                count(probe.groups_cut().map(|n| n as u64)),
                count(probe.count("flops_before")),
                count(probe.count("flops_after")),
                float(probe.flops_reduction),
                count(probe.count("params_after")),
                float(probe.report("latency_ms_before")),
                float(probe.report("latency_ms_after")),
                float(probe.latency_reduction),
                float(
                    probe
                        .result
                        .as_ref()
                        .and_then(|r| sensitivity::metric(r, &self.spec.metric)),
                ),
                float(probe.loss),
                worker,
                probe.field("device").as_str().unwrap_or_default().to_owned(),
                float(probe.field("seconds").as_f64()),
                probe.chosen.to_string(),
                plan,
            ])?;
        }
        writer.into_inner().context("writing probes.csv")
    }

    /// `probes.json`: the `Prune` section at the top, then one object per probe.
    fn probes_json(&self, probes: &[Probe]) -> Value {
        let rows: Vec<Value> = probes
            .iter()
            .map(|probe| {
                let job = probe.job;
                json!({
                    "step": job.probe_step,
                    "job_id": job.job_id,
                    "state": job.state().as_str(),
                    "chosen": probe.chosen,
                    "plan": probe.plan,
                    "groups_cut": probe.groups_cut(),
                    "flops_before": probe.count("flops_before"),
                    "flops_after": probe.count("flops_after"),
                    "flops_reduction": probe.flops_reduction,
                    "params_before": probe.count("params_before"),
                    "params_after": probe.count("params_after"),
                    "latency_ms_before": probe.report("latency_ms_before"),
                    "latency_ms_after": probe.report("latency_ms_after"),
                    "latency_reduction": probe.latency_reduction,
                    "metrics": probe.field("metrics"),
                    "loss": probe.loss,
                    "worker": self.worker(job.done_by),
                    "device": probe.field("device"),
                    "seconds": probe.field("seconds"),
                    "attempt": job.attempt,
                    "error": (!job.last_error.is_empty()).then_some(&job.last_error),
                })
            })
            .collect();
        json!({
            "run_id": self.run.run_id,
            "name": self.spec.name,
            "prune": self.spec.prune,
            "metric": self.spec.metric,
            "baseline": self.baseline().and_then(|b| b.get("metrics").cloned()),
            "chosen_step": probes.iter().find(|p| p.chosen).map(|p| p.job.probe_step),
            "probes": rows,
        })
    }

    /// What `tradeoff.png` is drawn from: the done probes with a loss, against the FLOPs reduction, or the
    /// latency reduction when that is the target; `None` without one.
    pub fn tradeoff(&self) -> Option<plots::tradeoff::Tradeoff> {
        self.tradeoff_from(&self.probes())
    }

    /// The run as plot titles name it: its name and id.
    fn title(&self) -> String {
        if self.spec.name.is_empty() {
            format!("run {}", self.run.run_id)
        } else {
            format!("{} (run {})", self.spec.name, self.run.run_id)
        }
    }

    fn tradeoff_from(&self, probes: &[Probe]) -> Option<plots::tradeoff::Tradeoff> {
        use crate::plots::tradeoff::{Axis, Point, Tradeoff};
        let target = self.measured_target();
        let axis = match target {
            Some(t) if t.latency_reduction.is_some() => Axis::Latency,
            _ => Axis::Flops,
        };
        let points: Vec<Point> = probes
            .iter()
            .filter(|p| p.job.state() == JobState::Done)
            .filter_map(|p| {
                Some(Point {
                    step: p.job.probe_step,
                    reduction: match axis {
                        Axis::Flops => p.flops_reduction?,
                        Axis::Latency => p.latency_reduction?,
                    },
                    loss: p.loss?,
                    chosen: p.chosen,
                })
            })
            .collect();
        if points.is_empty() {
            return None;
        }
        let run = self.title();
        Some(Tradeoff {
            run,
            metric: self.spec.metric.clone(),
            axis,
            points,
            max_model_loss: target.and_then(|t| t.max_model_loss),
            reduction_target: target.and_then(|t| match axis {
                Axis::Flops => t.flops_reduction,
                Axis::Latency => t.latency_reduction,
            }),
        })
    }

    /// `prune_report.json`'s `target`: how the exported plan met the `Prune` target. A measured target is read
    /// from the chosen probe (the bounds that held, and by how much); the others from the export's own report.
    fn target_report(&self, export: &Value) -> Value {
        let export_loss = self
            .baseline_metric()
            .and_then(|b| sensitivity::cell_loss(export, b, &self.spec.metric));
        let export_flops_reduction = sensitivity::report(export, "flops_before")
            .zip(sensitivity::report(export, "flops_after"))
            .map(|(before, after)| sensitivity::reduction(before, after));
        let Some(prune) = self.spec.prune else {
            return Value::Null;
        };
        let measured = match prune.target {
            PruneTarget::MaxLoss(max_loss) => {
                return json!({
                    "kind": "max_loss",
                    "max_loss": max_loss,
                    "export_loss": export_loss,
                    "flops_reduction": export_flops_reduction,
                });
            }
            PruneTarget::FlopsReduction(share) => {
                return json!({
                    "kind": "flops_reduction",
                    "target": share,
                    "reached": export_flops_reduction,
                    "export_loss": export_loss,
                });
            }
            PruneTarget::Measured(measured) => measured,
        };
        let probes = self.probes();
        let chosen = probes.iter().find(|p| p.chosen);
        let measured_loss = chosen.and_then(|p| p.loss);
        let flops = chosen.and_then(|p| p.flops_reduction);
        let latency = chosen.and_then(|p| p.latency_reduction);
        if let (Some(probe), Some(measured_loss), Some(export_loss)) = (chosen, measured_loss, export_loss) {
            // The export prunes by the chosen probe's plan and scores the same eval subset: a different loss
            // means the evaluation is not deterministic, or the two ran on devices that score differently.
            if (measured_loss - export_loss).abs() > 1e-9 {
                let probe_device = probe.field("device");
                // Bound out here: tracing's macro brings its own `Value` trait into scope.
                let export_device = export.get("device").and_then(Value::as_str).unwrap_or_default();
                tracing::warn!(
                    run_id = self.run.run_id,
                    probe_step = probe.job.probe_step,
                    measured_loss,
                    export_loss,
                    probe_device = probe_device.as_str().unwrap_or_default(),
                    export_device,
                    "the exported model's loss differs from its probe's"
                );
            }
        }
        // How far each bound held: a loss is bounded from above, a reduction from below, so a positive margin
        // holds either way.
        let loss_margin = measured.max_model_loss.zip(measured_loss).map(|(x, l)| x - l);
        let reduction_margin = |target: Option<f64>, reached: Option<f64>| target.zip(reached).map(|(y, r)| r - y);
        let flops_margin = reduction_margin(measured.flops_reduction, flops);
        let latency_margin = reduction_margin(measured.latency_reduction, latency);
        let held: Vec<&str> = [
            ("max_model_loss", loss_margin),
            ("flops_reduction", flops_margin),
            ("latency_reduction", latency_margin),
        ]
        .into_iter()
        .filter_map(|(bound, margin)| margin.is_some_and(|m| m >= 0.0).then_some(bound))
        .collect();
        json!({
            "kind": "measured",
            "max_model_loss": measured.max_model_loss,
            "flops_reduction_target": measured.flops_reduction,
            "latency_reduction_target": measured.latency_reduction,
            "tolerance": measured.tolerance,
            "held": held,
            "measured_loss": measured_loss,
            "export_loss": export_loss,
            "loss_margin": loss_margin,
            "flops_reduction": flops,
            "flops_margin": flops_margin,
            "latency_reduction": latency,
            "latency_margin": latency_margin,
            "probe_step": chosen.map(|p| p.job.probe_step),
            "probes": probes.iter().filter(|p| p.job.state() == JobState::Done).count(),
        })
    }
}

/// One probe job of a run, read for `probes.csv`, `probes.json`, the trade-off plot and the target report.
pub struct Probe<'a> {
    pub job: &'a pb::JobStatus,
    /// Its stored result, when done.
    pub result: Option<Value>,
    /// Its plan, `{"<group key>": ratio}`.
    pub plan: Option<Map<String, Value>>,
    /// `(baseline - metric) / baseline` on the run's metric, as the search measured it.
    pub loss: Option<f64>,
    pub flops_reduction: Option<f64>,
    pub latency_reduction: Option<f64>,
    /// Its plan is the run's plan.
    pub chosen: bool,
}

impl Probe<'_> {
    /// A figure of its report.
    pub fn report(&self, key: &str) -> Option<f64> {
        sensitivity::report(self.result.as_ref()?, key)
    }

    /// A count of its report (params, FLOPs): the report carries every figure as a double.
    fn count(&self, key: &str) -> Option<u64> {
        self.report(key).map(|v| v as u64)
    }

    fn field(&self, name: &str) -> Value {
        self.result
            .as_ref()
            .and_then(|r| r.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The groups its plan cuts (a ratio above 0).
    pub fn groups_cut(&self) -> Option<usize> {
        let plan = self.plan.as_ref()?;
        Some(plan.values().filter(|r| r.as_f64().is_some_and(|r| r > 0.0)).count())
    }
}

/// A plan stored as JSON (`{"<group key>": ratio}`), `None` when empty or not an object.
fn plan_map(plan_json: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(plan_json).ok()? {
        Value::Object(plan) => Some(plan),
        _ => None,
    }
}

/// Whether two plans cut alike: every ratio within 1e-12 (both went through JSON as doubles), a group one
/// leaves out counting as left whole (0.0), as it is pruned.
fn same_plan(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let ratio = |plan: &Map<String, Value>, key: &str| match plan.get(key) {
        None => Some(0.0),
        Some(ratio) => ratio.as_f64(),
    };
    a.keys()
        .chain(b.keys())
        .all(|key| match (ratio(a, key), ratio(b, key)) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12,
            _ => false,
        })
}

/// The module and name of PaddleSlim's dygraph `Status` class, as `pickle` records it (`Status.__module__`).
pub const PADDLESLIM_STATUS_CLASS: (&str, &str) = ("paddleslim.dygraph.prune.filter_pruner", "Status");

/// A pickle that Python's `pickle.load` turns into a `paddleslim.dygraph.prune.filter_pruner.Status` holding
/// `sensitivities` (a `{group key: {ratio: loss}}` dict) as a finished analysis saved by PaddleSlim 2.6 does.
///
/// Why: PaddleOCR's `deploy/slim/prune/sensitivity_anal.py` computes its sensitivities with the dygraph
/// `FPGMFilterPruner(...).sensitive(eval_func=..., sen_file=...)`, whose `Status.load` reads the file as a
/// pickled `Status` and takes its attributes, so a plain dict (`sen.pickle`) fails there. Given this file,
/// `sensitive` loads it and evaluates only the (parameter, ratio) cells of its own grid (0.1 to 0.9, step 0.1)
/// that the table lacks, plus one baseline if any is missing: none when sensgrid covered that grid.
///
/// The attributes are those of `Status.__init__` with what a finished `sensitive()` leaves in its file:
/// `sensitivies` (sic) the table; `accumulates` an empty dict (nothing in PaddleSlim 2.6 writes it); `is_ckp`
/// True. `sensitive` saves the file after each cell, before it sets `is_ckp = False` in memory only, so every
/// file PaddleSlim writes says True; and True is what makes `sensitive` go on to skip the held cells and return
/// the table (with False it would return the `Status` object itself instead of the dict).
///
/// serde-pickle writes dicts but no class instance (no GLOBAL, NEWOBJ or BUILD), so the object's opcodes are
/// written here around serde-pickle's pickle of the attribute dict, which is what BUILD takes:
///
/// ```text
/// \x80 \x02                                       PROTO 2 (serde-pickle's header, proto_v2)
/// c paddleslim.dygraph.prune.filter_pruner\n     GLOBAL: push the class, imported by module and name
///   Status\n
/// )                                              EMPTY_TUPLE: no arguments
/// \x81                                           NEWOBJ: Status.__new__(Status), without __init__
/// } ( ... u                                      the attribute dict: serde-pickle's body, no memo opcodes
/// b                                              BUILD: the instance's __dict__ updated from the dict
/// .                                              STOP
/// ```
///
/// This is what `pickle.dumps(status, protocol=2)` writes too, less its memo opcodes: serde-pickle writes
/// none, so the two parts cannot refer to each other's memo (`scripts/oracle/paddleslim_interop.py`
/// disassembles the file with `pickletools` and loads it with the real PaddleSlim).
///
/// # Errors
///
/// The pickler's error (none is expected for a table of str, float and dict).
pub fn paddleslim_status(sensitivities: serde_pickle::Value) -> Result<Vec<u8>> {
    use serde_pickle::{HashableValue, Value as Pickle};
    let attributes = [
        ("sensitivies", sensitivities),
        ("accumulates", Pickle::Dict(BTreeMap::new())),
        ("is_ckp", Pickle::Bool(true)),
    ]
    .into_iter()
    .map(|(name, value)| (HashableValue::String(name.to_owned()), value))
    .collect();
    let state = serde_pickle::value_to_vec(&Pickle::Dict(attributes), serde_pickle::SerOptions::new().proto_v2())
        .context("pickling the Status attributes")?;
    // serde-pickle writes PROTO 2, the value, STOP: the value is what goes between NEWOBJ and BUILD.
    let body = state
        .strip_prefix(PICKLE_PROTO_2)
        .and_then(|rest| rest.strip_suffix(&[PICKLE_STOP]))
        .context("serde-pickle's output is not PROTO 2 ... STOP")?;
    let (module, name) = PADDLESLIM_STATUS_CLASS;
    let mut bytes = Vec::with_capacity(body.len() + module.len() + name.len() + 10);
    bytes.extend_from_slice(PICKLE_PROTO_2);
    bytes.push(b'c'); // GLOBAL
    for line in [module, name] {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    bytes.push(b')'); // EMPTY_TUPLE
    bytes.push(0x81); // NEWOBJ
    bytes.extend_from_slice(body);
    bytes.push(b'b'); // BUILD
    bytes.push(PICKLE_STOP);
    Ok(bytes)
}

/// PROTO 2: the opcode and its argument.
const PICKLE_PROTO_2: &[u8] = b"\x80\x02";
const PICKLE_STOP: u8 = b'.';

/// Whether a job's ratio is one of the spec's (both went through JSON, but from different writers).
fn same_ratio(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn pretty(value: &Value) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(value).context("serialising JSON")?;
    text.push(b'\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_pickle::{DeOptions, HashableValue, Value as Pickle};

    use super::*;

    fn table() -> Pickle {
        let losses = |pairs: &[(f64, f64)]| {
            Pickle::Dict(
                pairs
                    .iter()
                    .map(|&(r, l)| (HashableValue::F64(r), Pickle::F64(l)))
                    .collect(),
            )
        };
        Pickle::Dict(BTreeMap::from([
            (
                HashableValue::String("conv2d_0.w_0".into()),
                losses(&[(0.1, -0.004), (0.9, 0.18)]),
            ),
            (HashableValue::String("conv2d_1.w_0".into()), losses(&[(0.3, 0.06)])),
        ]))
    }

    /// The opcode stream around the attribute dict is the GLOBAL/NEWOBJ/BUILD of a `Status`, and the dict in
    /// between decodes, on its own, to the three attributes with the table untouched.
    #[test]
    fn paddleslim_status_is_a_status_object_around_the_table() {
        let bytes = paddleslim_status(table()).unwrap();
        let head = b"\x80\x02cpaddleslim.dygraph.prune.filter_pruner\nStatus\n)\x81";
        assert!(bytes.starts_with(head), "{bytes:?}");
        assert!(bytes.ends_with(b"b."), "{bytes:?}");
        let body = &bytes[head.len()..bytes.len() - 2];
        assert_eq!(body.first(), Some(&b'}'), "the attributes are a dict (EMPTY_DICT)");
        let state = serde_pickle::value_from_slice(&[PICKLE_PROTO_2, body, b"."].concat(), DeOptions::new())
            .expect("the attribute dict is a pickle of its own");
        let Pickle::Dict(state) = state else {
            panic!("the attributes are not a dict: {state:?}");
        };
        let attribute = |name: &str| state.get(&HashableValue::String(name.into())).cloned();
        assert_eq!(attribute("sensitivies"), Some(table()));
        assert_eq!(attribute("accumulates"), Some(Pickle::Dict(BTreeMap::new())));
        assert_eq!(attribute("is_ckp"), Some(Pickle::Bool(true)));
        assert_eq!(state.len(), 3, "no other attribute: {state:?}");
    }
}
