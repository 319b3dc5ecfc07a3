//! `Sensitivity`: sensgrid's own section, how the sensitivity grid is run (PaddleSlim's `sensitivity()`
//! arguments, plus what a cluster run needs). The whole section is optional; every key has a default.

use sensgrid_model::prune::Criterion;

use crate::config::error::Result;
use crate::config::glob::Glob;
use crate::config::read::{Field, Section};
use crate::config::tree::{Entry, Origin, Value};

use super::metric::{Metric, key_choices};

/// The `Sensitivity` section, with defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Sensitivity {
    /// The pruning ratios tried on every group, each in (0, 1), strictly increasing.
    pub ratios: Vec<f64>,
    /// How filters are ranked for removal (the pruning code's criterion; PaddleSlim's default `l1_norm`).
    pub criterion: Criterion,
    /// Groups whose key matches any of these patterns are not analysed.
    pub skip: Vec<Glob>,
    /// Where `skip` is set (its line, or the override), for errors about it found once the groups are known.
    pub skip_at: Option<Origin>,
    /// The key of the metric's result that the loss is computed on (default: `Metric.main_indicator`).
    pub metric: String,
    /// How many eval samples each job scores; 0 means the whole eval set. They are a fixed subset, chosen by
    /// a shuffle seeded with `seed` (see [`crate::dataset`]).
    pub eval_samples: usize,
    /// Seeds the choice of the `eval_samples` subset: the same seed, the same samples on every worker and run.
    pub seed: u64,
    /// Once a group's loss at some ratio exceeds this, its larger ratios are not run (they are worse still).
    pub early_stop_loss: Option<f64>,
    /// The precision the worker evaluates in.
    pub precision: Precision,
    /// The megabytes a worker may spend keeping the decoded eval set and the activations that cells of one
    /// group share (`None`: the worker's default for its device; 0 turns both off).
    pub cache_mb: Option<usize>,
}

/// The precision of evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Fp16,
}

impl Sensitivity {
    /// PaddleSlim's default ratios: 0.1 to 0.8 in steps of 0.1.
    pub const DEFAULT_RATIOS: [f64; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

    /// Whether the group with this key is left out of the analysis by `skip`.
    pub fn is_skipped(&self, group_key: &str) -> bool {
        self.skip.iter().any(|glob| glob.matches(group_key))
    }
}

impl Precision {
    /// Every precision, in the order configs list them.
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Fp16];

    /// The name as written in configs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }
}

/// Reads `Sensitivity`; `metric` gives the default and the allowed values of `Sensitivity.metric`.
pub(crate) fn read(entry: Option<&Entry>, file: &Origin, metric: &Metric) -> Result<Sensitivity> {
    let (at, node) = entry.map_or((file, None), |e| (&e.key_origin, Some(&e.value)));
    let section = Section::new(
        "Sensitivity",
        at,
        node,
        &[
            "ratios",
            "criterion",
            "skip",
            "metric",
            "eval_samples",
            "seed",
            "early_stop_loss",
            "precision",
            "cache_mb",
        ],
    )?;
    let criteria = Criterion::ALL.map(|c| (c.name(), c));
    let precisions = Precision::ALL.map(|p| (p.as_str(), p));
    // Read in the order of the section's documentation, so that of several bad keys the first is reported.
    let ratios = section
        .get_with_null("ratios", ratios)?
        .unwrap_or_else(|| Sensitivity::DEFAULT_RATIOS.to_vec());
    let criterion = section.get("criterion", |f| f.choice(&criteria))?.unwrap_or_default();
    let (skip, skip_at) = section
        .get("skip", |f| {
            let globs = f.list(|item| Glob::new(item.str()?).map_err(|message| item.error(message)))?;
            Ok((globs, f.node.origin.clone()))
        })?
        .unzip();
    Ok(Sensitivity {
        ratios,
        criterion,
        skip: skip.unwrap_or_default(),
        skip_at,
        metric: section
            .get("metric", |f| f.choice(&key_choices(&metric.kind)))?
            .map_or_else(|| metric.main_indicator.clone(), str::to_owned),
        eval_samples: section.get("eval_samples", |f| f.count())?.unwrap_or(0),
        seed: section.get("seed", |f| f.count())?.map_or(0, |seed| seed as u64),
        early_stop_loss: section.get("early_stop_loss", |f| f.positive_number())?,
        precision: section
            .get("precision", |f| f.choice(&precisions))?
            .unwrap_or(Precision::Fp32),
        cache_mb: section.get("cache_mb", |f| f.count())?,
    })
}

/// A non-empty list of ratios in (0, 1), strictly increasing: the grid's columns, so order and uniqueness matter.
/// A null is refused rather than read as the default: `ratios:` with its list forgotten (or emptied by an
/// override) would otherwise run the eight default ratios, a far larger grid than meant.
fn ratios(field: Field<'_>) -> Result<Vec<f64>> {
    if field.node.value == Value::Null {
        return Err(
            field.error("expected a list of ratios, got null (leave the key out for PaddleSlim's default, 0.1 to 0.8)")
        );
    }
    let items = field.items()?;
    if items.is_empty() {
        return Err(field.error("expected at least one ratio, got an empty list"));
    }
    let mut ratios: Vec<f64> = Vec::with_capacity(items.len());
    for item in &items {
        let item = item.field();
        let ratio = item.number_in(0.0, 1.0, false)?;
        if let Some(&previous) = ratios.last()
            && ratio <= previous
        {
            return Err(item.error(format!(
                "ratios must be strictly increasing, got {ratio} after {previous}"
            )));
        }
        ratios.push(ratio);
    }
    Ok(ratios)
}
