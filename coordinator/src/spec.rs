//! What a submission says about its run beyond the config: the metric the loss is computed on, the ratios,
//! the channel groups the client found (with their members, params and FLOPs), and the Prune target. The
//! client computes it once (`coordinator submit`), the store keeps it as the run's `spec`, the pipeline plans
//! from it and `coordinator results` reports it.

use serde::{Deserialize, Serialize};

/// A run's description. Only `name` and `metric` are required: a run created by a client that analysed
/// nothing (a benchmark, a test) is a bare grid that the pipeline ends as done once its cells are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSpec {
    /// A name for people (`--name`, else the config's file name).
    pub name: String,
    /// The config file it was submitted from, as the client named it.
    pub config_path: String,
    /// The key of the metric dict the loss is computed on (`Sensitivity.metric`).
    pub metric: String,
    /// The ratios tried on every group.
    pub ratios: Vec<f64>,
    /// The shape groups and FLOPs were computed at (N, C, H, W).
    pub input_shape: Vec<usize>,
    /// The whole model's parameters and multiply-accumulates at `input_shape`.
    pub params: u64,
    pub flops: u64,
    /// The groups analysed, in model order.
    pub groups: Vec<GroupSpec>,
    /// Groups left out by `Sensitivity.skip`, in model order.
    pub skipped: Vec<GroupSpec>,
    /// Convs whose channels cannot be pruned, with the reason.
    pub excluded: Vec<ExcludedSpec>,
    /// `Prune`: how the plan is chosen, and whether the run ends with an export.
    pub prune: Option<PruneSpec>,
    /// `Sensitivity.eval_samples`: the fixed subset of the eval set every job scores; `None` for all of it.
    pub eval_samples: Option<EvalSubset>,
    /// `Sensitivity.early_stop_loss`: once a group's loss at some ratio exceeds it, the group's larger ratios
    /// are skipped (the pipeline's early stop).
    pub early_stop_loss: Option<f64>,
    /// `Sensitivity.precision` every job of the run evaluates in: `fp32` or `fp16` (empty in specs written
    /// before it was kept, which ran in fp32; [`RunSpec::precision`] says so).
    #[serde(rename = "precision")]
    pub precision_name: String,
    /// Set when the config has a `Recover` section: the run ends with a recover job once its export is done.
    pub recover: Option<RecoverSpec>,
}

/// What a run's recovery trains on. Its options are the config's `Recover` section, read by the worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverSpec {
    /// The training images bundled at submit (`Recover.data_dir` + `label_file_list`, else `Train.dataset`):
    /// never the eval set.
    pub train_set_digest: String,
}

/// The eval set's subset a run scores (`Sensitivity.eval_samples` and `Sensitivity.seed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalSubset {
    /// Samples scored: `Sensitivity.eval_samples`, or every line when the set has fewer.
    pub count: usize,
    /// Lines of the eval set it is chosen from (after `ratio_list`).
    pub of: usize,
    /// Seeds the shuffle that chooses them: the same seed chooses the same lines on every worker and run.
    pub seed: u64,
}

/// One channel group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// The weight of its first conv: the key of sen.pickle and plans.
    pub key: String,
    /// Its place among all the model's groups, skipped ones included (0 in specs written before it was kept).
    #[serde(default)]
    pub index: usize,
    pub channels: usize,
    /// Parameters and FLOPs that pruning every channel would remove.
    pub params: u64,
    pub flops: u64,
    /// The nodes of the convs (and other weighted ops) whose weights lose channels with it.
    pub convs: Vec<String>,
}

/// A conv that cannot be pruned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExcludedSpec {
    pub conv: String,
    pub reason: String,
}

/// The `Prune` section.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruneSpec {
    pub target: PruneTarget,
    /// Whether the run ends with the export job.
    pub export: bool,
}

/// How per-group ratios are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneTarget {
    /// PaddleSlim's `get_ratios_by_loss` at this loss threshold.
    MaxLoss(f64),
    /// The smallest loss threshold whose plan removes at least this share of the FLOPs.
    FlopsReduction(f64),
    /// Chosen among candidate plans evaluated for real (probe jobs): `Prune.max_model_loss`,
    /// `latency_reduction`, and `flops_reduction` with `max_model_loss`.
    Measured(MeasuredSpec),
}

/// A measured target (see `sensgrid_model::prune::search`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredSpec {
    pub max_model_loss: Option<f64>,
    pub flops_reduction: Option<f64>,
    pub latency_reduction: Option<f64>,
    pub tolerance: f64,
}

impl MeasuredSpec {
    /// The search's target.
    pub fn target(&self) -> sensgrid_model::prune::search::Target {
        use sensgrid_model::prune::search::{Reduction, Target};
        Target {
            max_model_loss: self.max_model_loss,
            reduction: self
                .flops_reduction
                .map(Reduction::Flops)
                .or(self.latency_reduction.map(Reduction::Latency)),
            tolerance: self.tolerance,
        }
    }
}

impl RunSpec {
    /// `Sensitivity.precision` the run's jobs evaluate in: `fp32` or `fp16`.
    pub fn precision(&self) -> &str {
        if self.precision_name.is_empty() {
            "fp32"
        } else {
            &self.precision_name
        }
    }

    /// Every group, analysed or skipped (`true`), in model order.
    pub fn all_groups(&self) -> Vec<(&GroupSpec, bool)> {
        let mut all: Vec<(&GroupSpec, bool)> = self
            .groups
            .iter()
            .map(|g| (g, false))
            .chain(self.skipped.iter().map(|g| (g, true)))
            .collect();
        // Stable: specs without indices keep the analysed groups first.
        all.sort_by_key(|(g, _)| g.index);
        all
    }

    /// The spec stored with a run, or an error naming what is wrong with it.
    ///
    /// # Errors
    ///
    /// JSON that is not a [`RunSpec`].
    pub fn from_json(value: &serde_json::Value) -> Result<RunSpec, String> {
        serde_json::from_value(value.clone()).map_err(|error| format!("the run's spec: {error}"))
    }

    /// The spec of a run as `GetRun` answers it, for what a client shows; the default for a spec that does not
    /// read (an older client's, a bare test run), which shows none of its settings.
    pub fn shown(run: &sensgrid_proto::v1::GetRunResponse) -> RunSpec {
        serde_json::from_str::<serde_json::Value>(&run.spec_json)
            .ok()
            .and_then(|spec| RunSpec::from_json(&spec).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(key: &str, index: usize) -> GroupSpec {
        GroupSpec {
            key: key.into(),
            index,
            channels: 8,
            params: 0,
            flops: 0,
            convs: Vec::new(),
        }
    }

    #[test]
    fn all_groups_put_skipped_groups_back_in_model_order() {
        let spec = RunSpec {
            groups: vec![group("a", 0), group("c", 2)],
            skipped: vec![group("b", 1), group("d", 3)],
            ..RunSpec::default()
        };
        let order: Vec<(&str, bool)> = spec
            .all_groups()
            .into_iter()
            .map(|(g, s)| (g.key.as_str(), s))
            .collect();
        assert_eq!(order, [("a", false), ("b", true), ("c", false), ("d", true)]);
        // A spec written before indices were kept: analysed groups, then the skipped ones.
        let old = RunSpec {
            groups: vec![group("a", 0), group("c", 0)],
            skipped: vec![group("b", 0)],
            ..RunSpec::default()
        };
        let order: Vec<&str> = old.all_groups().into_iter().map(|(g, _)| g.key.as_str()).collect();
        assert_eq!(order, ["a", "c", "b"]);
    }
}
