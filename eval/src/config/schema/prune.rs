//! `Prune`: sensgrid's own section, how per-group ratios are planned from the finished grid and whether the
//! pruned model is exported. Optional: without it the run stops at `sen.pickle`.

use crate::config::error::Result;
use crate::config::read::{Field, Section};
use crate::config::tree::Entry;

/// The `Prune` section.
#[derive(Clone, Debug, PartialEq)]
pub struct Prune {
    pub target: PruneTarget,
    /// Write the pruned model once planned (default: true).
    pub export: bool,
}

/// What the plan aims for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PruneTarget {
    /// `max_loss` alone: PaddleSlim's per-group rule, each group's loss alone under this, in (0, 1).
    MaxLoss(f64),
    /// `flops_reduction` alone: remove this share of the model's FLOPs, in (0, 1), at the least per-group loss
    /// threshold; nothing is measured.
    FlopsReduction(f64),
    /// `max_model_loss` and/or `latency_reduction` (with `flops_reduction` or not): chosen among candidate
    /// plans evaluated for real (probe jobs).
    Measured(MeasuredTarget),
}

/// A target checked on the jointly pruned model by evaluating it: at least `max_model_loss` or
/// `latency_reduction`; at most one of the two reductions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeasuredTarget {
    /// The pruned model's measured loss on the eval set is at most this, in (0, 1).
    pub max_model_loss: Option<f64>,
    /// Remove at least this share of the FLOPs, in (0, 1).
    pub flops_reduction: Option<f64>,
    /// Remove at least this share of the latency measured on the workers' device, in (0, 1).
    pub latency_reduction: Option<f64>,
    /// The search stops once its bracket's FLOPs reductions are this close, in [0, 1) (default 0.01).
    pub tolerance: f64,
}

impl MeasuredTarget {
    pub const DEFAULT_TOLERANCE: f64 = 0.01;
}

/// A share in (0, 1).
fn share(field: Field<'_>) -> Result<f64> {
    field.number_in(0.0, 1.0, false)
}

/// Reads `Prune`; `None` when the config has no such section.
pub(crate) fn read(entry: Option<&Entry>) -> Result<Option<Prune>> {
    let Some(entry) = entry else { return Ok(None) };
    let section = Section::new(
        "Prune",
        &entry.key_origin,
        Some(&entry.value),
        &[
            "max_loss",
            "flops_reduction",
            "max_model_loss",
            "latency_reduction",
            "tolerance",
            "export",
        ],
    )?;
    let max_loss = section.get("max_loss", share)?;
    let flops = section.get("flops_reduction", share)?;
    let max_model_loss = section.get("max_model_loss", share)?;
    let latency = section.get("latency_reduction", share)?;
    let tolerance = section.get("tolerance", |f| {
        let x = f.number_in(0.0, 1.0, true)?;
        if x < 1.0 {
            Ok(x)
        } else {
            Err(f.expected("a number in [0, 1)"))
        }
    })?;
    let measured = max_model_loss.is_some() || latency.is_some();
    if tolerance.is_some() && !measured {
        return Err(section.error("tolerance goes with max_model_loss or latency_reduction (a measured target)"));
    }
    let target = match (max_loss, flops) {
        (Some(_), _) if flops.is_some() || measured => {
            return Err(section.error(
                "max_loss is PaddleSlim's per-group threshold and stands alone: set it, or max_model_loss / \
                 flops_reduction / latency_reduction",
            ));
        }
        (Some(loss), None) => PruneTarget::MaxLoss(loss),
        _ if flops.is_some() && latency.is_some() => {
            return Err(section.error("set one of flops_reduction and latency_reduction, not both"));
        }
        (None, Some(share)) if !measured => PruneTarget::FlopsReduction(share),
        (None, flops) if measured => PruneTarget::Measured(MeasuredTarget {
            max_model_loss,
            flops_reduction: flops,
            latency_reduction: latency,
            tolerance: tolerance.unwrap_or(MeasuredTarget::DEFAULT_TOLERANCE),
        }),
        _ => {
            return Err(section.error(
                "set one of max_loss, flops_reduction, max_model_loss and latency_reduction \
                 (max_model_loss combines with one of the reductions)",
            ));
        }
    };
    Ok(Some(Prune {
        target,
        export: section.get("export", |f| f.bool())?.unwrap_or(true),
    }))
}
