//! Pruning by group: which channels a plan removes ([`Cut`]), masking them in place (and restoring them
//! exactly), and removing them for real ([`structural::prune`]).

pub mod criterion;
pub mod planner;
pub mod search;
pub mod sen_pickle;
pub mod structural;

use std::collections::{BTreeMap, BTreeSet};

pub use criterion::{Criterion, pruned_count};

use crate::analysis::groups::Analysis;
use crate::error::{ModelError, Result};
use crate::ir::{Graph, TensorData};

/// A pruning plan: group key to ratio, as `plan.json` and PaddleSlim's ratios give it.
pub type Plan = BTreeMap<String, f64>;

/// The group channels a plan removes: index into [`Analysis::groups`] to sorted group channels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cut {
    pub channels: BTreeMap<usize, Vec<usize>>,
}

/// Indices removed from each constant axis: (tensor, axis) to sorted indices.
pub type Removed = BTreeMap<(String, usize), BTreeSet<usize>>;

impl Cut {
    /// The channels `plan` removes from the groups of `analysis`, chosen by `criterion`.
    ///
    /// # Errors
    /// A key that names no prunable group (with the reason when its conv was excluded), or a ratio outside
    /// [0, 1).
    pub fn plan(graph: &Graph, analysis: &Analysis, plan: &Plan, criterion: Criterion) -> Result<Self> {
        let mut channels = BTreeMap::new();
        for (key, &ratio) in plan {
            let (index, group) = analysis.prunable_group(key)?;
            if !(0.0..1.0).contains(&ratio) {
                return Err(ModelError::Invalid(format!(
                    "group '{key}': ratio {ratio} is outside [0, 1)"
                )));
            }
            channels.insert(index, criterion.select(graph, group, ratio)?);
        }
        Ok(Self { channels })
    }

    /// The indices this cut removes from each member of its groups.
    pub fn removed(&self, analysis: &Analysis) -> Removed {
        let mut removed = Removed::new();
        for (&group, channels) in &self.channels {
            for member in &analysis.groups[group].members {
                let indices = channels.iter().filter_map(|&g| member.index_map[g]);
                removed
                    .entry((member.tensor.clone(), member.axis))
                    .or_default()
                    .extend(indices);
            }
        }
        removed.retain(|_, indices| !indices.is_empty());
        removed
    }
}

/// The constants a mask overwrote, as they were.
#[must_use = "restore the graph with it"]
pub struct Masked {
    saved: Vec<(String, TensorData)>,
}

impl Masked {
    /// The names of the constants the mask changed.
    pub fn tensors(&self) -> impl Iterator<Item = &str> {
        self.saved.iter().map(|(name, _)| name.as_str())
    }
}

/// Zeroes the removed indices in every member, so the channels contribute exactly nothing downstream:
/// their filters and biases are zero, and so is every weight that reads them.
pub fn mask(graph: &mut Graph, removed: &Removed) -> Masked {
    let mut saved: Vec<(String, TensorData)> = Vec::new();
    for ((tensor, axis), indices) in removed {
        let data = graph
            .constants
            .get_mut(tensor)
            .expect("members are constants of the graph");
        if !saved.iter().any(|(name, _)| name == tensor) {
            saved.push((tensor.clone(), data.clone()));
        }
        data.zero_along(*axis, &indices.iter().copied().collect::<Vec<_>>());
    }
    Masked { saved }
}

/// Puts back what [`mask`] overwrote, bit for bit.
pub fn restore(graph: &mut Graph, masked: Masked) {
    for (name, data) in masked.saved {
        graph.constants.insert(name, data);
    }
}
