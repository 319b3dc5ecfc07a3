//! What `coordinator results RUN --out DIR` writes, from the run as `GetRun` answers it:
//!
//! - `sen.pickle`: `{group key: {ratio: loss}}` of the done cells, str keys and Python floats, as PaddleSlim's
//!   `sensitivity()` saves it (readable by `pickle.load`, also with `encoding='bytes'`); cells an early stop
//!   skipped are left out, never filled in;
//! - `sensitivities.csv`: one row per cell (group, ratio, channels pruned, metric, loss, state);
//! - `sensitivities.json`: the baseline's metric dict, and per group its members, channels, params and FLOPs
//!   with each cell's metric dict, loss, state, worker, device and seconds (a skipped cell's `error` says
//!   why); at the top, the eval subset (`eval_samples`: count, of, seed), `early_stop_loss` and `precision`;
//! - after a plan, `plan.json`; after an export, `prune_report.json` (and the CLI fetches `pruned.onnx`);
//! - the plots of [`crate::plots`]: `sensitivity.png` and `.svg`, `heatmap.png`, after a plan `pruned.png`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sensgrid_model::prune::pruned_count;
use sensgrid_proto::v1 as pb;
use serde_json::{Value, json};

use crate::spec::{GroupSpec, PruneTarget, RunSpec};
use crate::{plots, sensitivity};

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

    fn jobs(&self, kind: &str) -> impl Iterator<Item = &pb::JobStatus> {
        let kind = kind.to_owned();
        self.run.jobs.iter().filter(move |j| j.kind == kind)
    }

    /// The baseline's stored result, when it is done.
    pub fn baseline(&self) -> Option<Value> {
        self.jobs("baseline").find(|j| j.state == "done").and_then(Self::result)
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
            .jobs("cell")
            .filter(|j| j.state == "done")
            .filter_map(|j| Some((j.group_key.clone(), j.ratio, Self::result(j)?)))
            .collect();
        sensitivity::sensitivities(
            baseline,
            &self.spec.metric,
            results.iter().map(|(g, r, v)| (g.as_str(), *r, v)),
        )
    }

    /// Writes every file into `out` (created).
    ///
    /// # Errors
    ///
    /// A file that cannot be written, naming it.
    pub fn write(&self, out: &Path) -> Result<Written> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let mut written = Written::default();
        let mut put = |name: &str, bytes: Vec<u8>| -> Result<()> {
            let path = out.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            written.files.push(path);
            Ok(())
        };
        put("sen.pickle", self.sen_pickle()?)?;
        put("sensitivities.csv", self.csv()?)?;
        put("sensitivities.json", pretty(&self.json())?)?;
        if !self.run.plan_json.is_empty() {
            let plan: Value = serde_json::from_str(&self.run.plan_json).context("the run's plan is not JSON")?;
            put("plan.json", pretty(&plan)?)?;
        }
        let export = self.jobs("export").find(|j| j.state == "done").and_then(Self::result);
        if let Some(export) = export {
            put("prune_report.json", pretty(&self.prune_report(&export))?)?;
            written.pruned_model = export.get("artifact_digest").and_then(Value::as_str).map(str::to_owned);
        }
        // Last, and never an error: a missing font (or a plot that cannot be drawn) loses no result.
        match plots::write(&self.plot_grid(), out) {
            Ok(files) => written.files.extend(files),
            Err(error) => tracing::warn!(error = format!("{error:#}"), "the plots are not written"),
        }
        Ok(written)
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
        for job in self.jobs("cell") {
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
        for job in self.jobs("cell") {
            let Some(col) = ratios.iter().position(|r| same_ratio(*r, job.ratio)) else {
                continue;
            };
            let cell = match job.state.as_str() {
                "done" => Self::result(job)
                    .zip(baseline)
                    .and_then(|(r, b)| sensitivity::cell_loss(&r, b, &self.spec.metric))
                    .map_or(plots::Cell::Pending, plots::Cell::Done),
                "skipped" => plots::Cell::Skipped,
                "failed" | "cancelled" => plots::Cell::Failed,
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

    /// `sen.pickle`'s bytes.
    ///
    /// # Errors
    ///
    /// The pickler's error (none is expected for this shape).
    pub fn sen_pickle(&self) -> Result<Vec<u8>> {
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
        serde_pickle::value_to_vec(&Pickle::Dict(table), serde_pickle::SerOptions::new())
            .context("pickling the sensitivities")
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
                job.state.clone(),
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
        let mut cells: Vec<&pb::JobStatus> = self.jobs("cell").collect();
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
                "state": job.state,
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
            "state": self.run.state,
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
            "latency_input_shape": self.spec.input_shape,
            "device": export.get("device"),
            "pruned_model": export.get("artifact_digest"),
        })
    }
}

/// Whether a job's ratio is one of the spec's (both went through JSON, but from different writers).
fn same_ratio(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn pretty(value: &Value) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(value).context("serialising JSON")?;
    text.push(b'\n');
    Ok(text)
}
