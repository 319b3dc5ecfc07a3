//! Losses from results: `loss = (baseline - pruned) / baseline` on the run's metric, PaddleSlim's definition
//! (a negative loss, a pruned model that scores better, is kept as it is).
//!
//! A cell's stored result is either the worker's `{"metrics": {...}}` or, for a cell imported from a
//! `sen.pickle`, `{"loss": x}`: the loss itself, with no metrics to recompute it from.

use sensgrid_model::prune::planner::{Ratio, Sensitivities};
use serde_json::Value;

/// The value of `metric` in a stored result's metric dict.
pub fn metric(result: &Value, metric: &str) -> Option<f64> {
    result.get("metrics")?.get(metric)?.as_f64()
}

/// `(baseline - pruned) / baseline`.
pub fn loss(baseline: f64, pruned: f64) -> f64 {
    (baseline - pruned) / baseline
}

/// A cell's loss from its stored result: recomputed from its metric, or the imported loss.
pub fn cell_loss(result: &Value, baseline: f64, metric_key: &str) -> Option<f64> {
    match metric(result, metric_key) {
        Some(pruned) => Some(loss(baseline, pruned)),
        None => result.get("loss")?.as_f64(),
    }
}

/// A figure of the `report` a probe or export job stores (`flops_before`, `latency_ms_after`, ...).
pub fn report(result: &Value, key: &str) -> Option<f64> {
    result.get("report")?.get(key)?.as_f64()
}

/// The share of `before` that `after` removes (a FLOPs or latency reduction); 0 when `before` is not positive,
/// a report with nothing to reduce.
pub fn reduction(before: f64, after: f64) -> f64 {
    if before > 0.0 { 1.0 - after / before } else { 0.0 }
}

/// The sensitivities of done cells, given as (group key, ratio, stored result): PaddleSlim's `sensitivities`
/// dict. A cell without the metric (nor an imported loss), or with a ratio outside (0, 1), is left out.
pub fn sensitivities<'a>(
    baseline: f64,
    metric_key: &str,
    cells: impl IntoIterator<Item = (&'a str, f64, &'a Value)>,
) -> Sensitivities {
    let mut table = Sensitivities::new();
    for (group, ratio, result) in cells {
        if let (Some(loss), Ok(ratio)) = (cell_loss(result, baseline, metric_key), Ratio::new(ratio)) {
            table.entry(group.to_owned()).or_default().insert(ratio, loss);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn losses_come_from_metrics_or_imports_and_keep_their_sign() {
        let better = json!({"metrics": {"hmean": 0.9, "num_samples": 4.0}});
        let worse = json!({"metrics": {"hmean": 0.6}});
        let imported = json!({"loss": 0.125});
        let table = sensitivities(
            0.8,
            "hmean",
            [("b", 0.5, &worse), ("b", 0.1, &better), ("a", 0.2, &imported)],
        );
        let pairs = |key: &str| -> Vec<(f64, f64)> { table[key].iter().map(|(r, &l)| (r.get(), l)).collect() };
        assert_eq!(pairs("a"), [(0.2, 0.125)]);
        assert_eq!(pairs("b"), [(0.1, (0.8 - 0.9) / 0.8), (0.5, (0.8 - 0.6) / 0.8)]);
        assert!(pairs("b")[0].1 < 0.0, "a cell that scores better has a negative loss");
        assert_eq!(cell_loss(&json!({"metrics": {}}), 0.8, "hmean"), None);
    }
}
