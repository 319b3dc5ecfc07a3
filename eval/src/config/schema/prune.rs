//! `Prune`: sensgrid's own section, how per-group ratios are planned from the finished grid and whether the
//! pruned model is exported. Optional: without it the run stops at `sen.pickle`.

use crate::config::error::Result;
use crate::config::read::Section;
use crate::config::tree::Entry;

/// The `Prune` section.
#[derive(Clone, Debug, PartialEq)]
pub struct Prune {
    pub target: PruneTarget,
    /// Write the pruned model once planned (default: true).
    pub export: bool,
}

/// What the plan aims for; a config names exactly one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PruneTarget {
    /// `max_loss`: prune as much as possible while each group's loss stays under this, in (0, 1).
    MaxLoss(f64),
    /// `flops_reduction`: remove this share of the model's FLOPs, in (0, 1), at the least loss.
    FlopsReduction(f64),
}

/// Reads `Prune`; `None` when the config has no such section.
pub(crate) fn read(entry: Option<&Entry>) -> Result<Option<Prune>> {
    let Some(entry) = entry else { return Ok(None) };
    let section = Section::new(
        "Prune",
        &entry.key_origin,
        Some(&entry.value),
        &["max_loss", "flops_reduction", "export"],
    )?;
    let max_loss = section.get("max_loss", |f| f.number_in(0.0, 1.0, false))?;
    let flops = section.get("flops_reduction", |f| f.number_in(0.0, 1.0, false))?;
    let target = match (max_loss, flops) {
        (Some(loss), None) => PruneTarget::MaxLoss(loss),
        (None, Some(share)) => PruneTarget::FlopsReduction(share),
        (Some(_), Some(_)) => {
            return Err(section.error("set one of max_loss and flops_reduction, not both"));
        }
        (None, None) => return Err(section.error("set one of max_loss and flops_reduction")),
    };
    Ok(Some(Prune {
        target,
        export: section.get("export", |f| f.bool())?.unwrap_or(true),
    }))
}
