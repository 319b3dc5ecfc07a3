//! Which channels of a group to prune: the least important ones, by a criterion.

use std::fmt;
use std::str::FromStr;

use crate::analysis::groups::{Group, Member};
use crate::error::{ModelError, Result};
use crate::ir::{Graph, TensorData};
use crate::ops::{self, Weights};

/// How channels are ranked; the lowest are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Criterion {
    /// PaddleSlim's `l1_norm`: the mean absolute value of each filter of the key conv.
    #[default]
    L1Norm,
    /// The channel's L1 norm summed over every member of the group (Torch-Pruning's group magnitude with
    /// p = 1 and sum reduction); BatchNormalization's running mean and variance are statistics, not weights,
    /// and are left out.
    L1NormGroup,
    /// Filter pruning via geometric median: the sum of Euclidean distances from each filter of the key conv
    /// to all the others; filters closest to the rest are the most replaceable.
    Fpgm,
}

impl Criterion {
    /// Every criterion, in the order of [`NAMES`](Self::NAMES).
    pub const ALL: [Self; 3] = [Self::L1Norm, Self::L1NormGroup, Self::Fpgm];

    /// The criteria's names, the one spelling of them: configs (`Sensitivity.criterion`), the worker's
    /// `--criterion` and the contract's `CreateRunRequest.criterion` all use these.
    pub const NAMES: [&'static str; 3] = ["l1_norm", "l1_norm_group", "fpgm"];

    /// The name as configs, the command line and the contract write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::L1Norm => Self::NAMES[0],
            Self::L1NormGroup => Self::NAMES[1],
            Self::Fpgm => Self::NAMES[2],
        }
    }

    /// The importance of each channel of `group`, in group channel order.
    ///
    /// # Errors
    /// A member whose values are not float32.
    pub fn importance(self, graph: &Graph, group: &Group) -> Result<Vec<f64>> {
        match self {
            Self::L1Norm => {
                let filters = filters(graph, group.key_member())?;
                Ok(filters
                    .iter()
                    .map(|f| f.iter().map(|v| f64::from(v.abs())).sum::<f64>() / f.len().max(1) as f64)
                    .collect())
            }
            Self::L1NormGroup => {
                let mut total = vec![0.0; group.channels];
                for member in &group.members {
                    if is_statistic(graph, member) {
                        continue;
                    }
                    for (g, filter) in filters(graph, member)?.iter().enumerate() {
                        total[g] += filter.iter().map(|v| f64::from(v.abs())).sum::<f64>();
                    }
                }
                Ok(total)
            }
            Self::Fpgm => {
                let filters = filters(graph, group.key_member())?;
                Ok(filters
                    .iter()
                    .map(|a| {
                        filters
                            .iter()
                            .map(|b| {
                                a.iter()
                                    .zip(b)
                                    .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                                    .sum::<f64>()
                                    .sqrt()
                            })
                            .sum()
                    })
                    .collect())
            }
        }
    }

    /// The group channels to prune at `ratio`: the [`pruned_count`] least important, ties to the lower
    /// channel index; sorted.
    ///
    /// # Errors
    /// As [`importance`](Self::importance).
    pub fn select(self, graph: &Graph, group: &Group, ratio: f64) -> Result<Vec<usize>> {
        let importance = self.importance(graph, group)?;
        let mut order: Vec<usize> = (0..group.channels).collect();
        order.sort_by(|&a, &b| importance[a].total_cmp(&importance[b]).then(a.cmp(&b)));
        let mut chosen = order[..pruned_count(group.channels, ratio)].to_vec();
        chosen.sort_unstable();
        Ok(chosen)
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Criterion {
    type Err = ModelError;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|c| c.name() == text).ok_or_else(|| {
            ModelError::Invalid(format!(
                "unknown criterion '{text}' (expected one of {})",
                Self::NAMES.join(", ")
            ))
        })
    }
}

/// How many of `channels` a ratio prunes: Python's `round` (half to even) of `channels * ratio`, keeping at
/// least one channel.
pub fn pruned_count(channels: usize, ratio: f64) -> usize {
    ((channels as f64 * ratio).round_ties_even().max(0.0) as usize).min(channels.saturating_sub(1))
}

/// Whether `member` is a running statistic of a normalization (BatchNormalization's mean and variance), by
/// its node's op-table entry.
fn is_statistic(graph: &Graph, member: &Member) -> bool {
    graph
        .nodes
        .iter()
        .filter(|n| n.name == member.node)
        .filter_map(ops::describe)
        .any(|op| matches!(op.weights, Weights::Norm { statistics, .. } if statistics.contains(&member.input)))
}

/// The values of `member` at each group channel (empty where the member does not hold the channel).
fn filters(graph: &Graph, member: &Member) -> Result<Vec<Vec<f32>>> {
    let data: &TensorData = &graph.constants[&member.tensor];
    member
        .index_map
        .iter()
        .map(|k| match k {
            Some(k) => data
                .select_along(member.axis, &[*k])
                .values::<f32>()
                .ok_or_else(|| ModelError::Tensor {
                    tensor: member.tensor.clone(),
                    message: format!("criteria need float32 weights, not {}", data.dtype()),
                }),
            None => Ok(Vec::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_half_to_even_and_keep_one_channel() {
        assert_eq!(pruned_count(10, 0.3), 3);
        assert_eq!(pruned_count(5, 0.5), 2); // 2.5 -> 2
        assert_eq!(pruned_count(7, 0.5), 4); // 3.5 -> 4
        assert_eq!(pruned_count(2, 0.8), 1); // 1.6 -> 2, but one channel stays
        assert_eq!(pruned_count(8, 0.0), 0);
    }

    #[test]
    fn names_round_trip() {
        for (criterion, name) in Criterion::ALL.into_iter().zip(Criterion::NAMES) {
            assert_eq!(name.parse::<Criterion>().unwrap(), criterion);
            assert_eq!(criterion.to_string(), name);
        }
        let err = "l2".parse::<Criterion>().unwrap_err().to_string();
        assert!(err.contains("'l2'") && err.contains("fpgm"), "{err}");
    }
}
