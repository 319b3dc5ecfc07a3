//! Channel dependency groups: the sets of channels that must be removed together.
//!
//! Every channel of every tensor that carries channels is a *slot*. Walking the nodes in order, each op
//! either creates slots (the output channels of a Conv, ConvTranspose, Gemm or MatMul with a constant weight:
//! a *source*), passes its input's slots on (activations, BatchNormalization, pooling, Resize, depthwise
//! convs, ...), rearranges them (Concat, Split, Slice, Transpose, reshapes that keep the channel axis whole),
//! or couples slots that must go together (the operands of Add and Mul, a depthwise conv's input and output,
//! a weight's input axis and the tensor it reads). Coupled slots form a *channel*: one unit of removal.
//! Channels created by the same source (or coupled to it) form a *group*: one unit of the sensitivity grid.
//! A channel that meets an op without a declared channel mapping (Softmax over channels, LSTM, attention,
//! reshapes that merge the channel axis, ...) or a graph output cannot be removed: its group is excluded,
//! with the reason.
//!
//! Each op's entry in the op table names its channel rule ([`crate::ops::Channels`]); `rules` applies them
//! in a walk over the nodes, `assemble` turns the coupled slots into groups.
//!
//! Shapes come from static inference at given input shapes ([`analyse_at`], `analysis::shapes`), or from
//! the caller ([`analyse`]'s `shape_of`).

mod assemble;
mod rules;

use std::collections::BTreeMap;

use crate::analysis::shapes;
use crate::error::{ModelError, Result};
use crate::ir::Graph;

/// One tensor axis that loses a group's channels when the group is pruned.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The constant (weight, bias, BatchNormalization parameter, per-channel constant).
    pub tensor: String,
    /// The node that reads it.
    pub node: String,
    /// Which input of that node it is.
    pub input: usize,
    pub axis: usize,
    /// `index_map[g]`: the index along `axis` that holds group channel `g`, or None when this member
    /// holds only some of the group's channels (after a Split or Slice).
    pub index_map: Vec<Option<usize>>,
}

/// Channels removed together, named after the weight of its first conv.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The weight on the W input of the group's first conv (ONNX node order): the name sen.pickle and
    /// plans use.
    pub key: String,
    /// The node of that conv.
    pub key_node: String,
    /// The axis of `key` that holds its output channels (0 for Conv, 1 for ConvTranspose, ...).
    pub key_axis: usize,
    pub channels: usize,
    pub members: Vec<Member>,
    /// Parameters (by [`crate::analysis::count::CONVENTIONS`]) that pruning every channel of the group would remove.
    pub params: u64,
    /// Multiply-accumulates (by [`crate::analysis::count::CONVENTIONS`]) that pruning every channel would remove.
    pub flops: u64,
}

impl Group {
    /// The member that holds the key conv's filters.
    pub fn key_member(&self) -> &Member {
        self.members
            .iter()
            .find(|m| m.tensor == self.key && m.axis == self.key_axis)
            .expect("a group has its key conv among its members")
    }
}

/// A conv whose output channels cannot be pruned, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Excluded {
    /// The conv's weight.
    pub conv: String,
    pub node: String,
    pub reason: String,
}

/// Which group channel each channel of a non-constant tensor is; None for channels of no group.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMap {
    pub axis: usize,
    /// Per index along `axis`: (index into [`Analysis::groups`], group channel).
    pub channels: Vec<Option<(usize, usize)>>,
}

/// A node attribute or constant input that states a channel count, which structural pruning must rewrite.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeRewrite {
    /// Entry `position` of the constant on input `input` of `node` is the channel count of `tensor`: a
    /// Reshape's target, or a piece of a target that a Concat builds from run-time dimensions and constants.
    CountEntry {
        node: String,
        input: usize,
        position: usize,
        tensor: String,
    },
    /// A Split along the channel axis of its input, into parts of `sizes`.
    SplitSizes { node: String, sizes: Vec<usize> },
    /// A Slice of the channel axis: entry `position` of its starts and ends takes `len` channels from `start`.
    SliceBounds {
        node: String,
        position: usize,
        start: usize,
        len: usize,
    },
}

/// The groups of a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// In the node order of their key convs.
    pub groups: Vec<Group>,
    pub excluded: Vec<Excluded>,
    /// Every non-constant tensor that carries channels of a group, by name.
    pub tensors: BTreeMap<String, ChannelMap>,
    /// Channel counts written into the graph, on paths that carry channels.
    pub rewrites: Vec<ShapeRewrite>,
}

impl Analysis {
    /// The group called `key`.
    pub fn group(&self, key: &str) -> Option<(usize, &Group)> {
        self.groups.iter().enumerate().find(|(_, g)| g.key == key)
    }

    /// The group called `key`, for a plan to prune.
    ///
    /// # Errors
    /// A key that names no group: with the reason when its conv was excluded from pruning.
    pub fn prunable_group(&self, key: &str) -> Result<(usize, &Group)> {
        self.group(key).ok_or_else(|| {
            ModelError::Invalid(match self.excluded.iter().find(|e| e.conv == key) {
                Some(e) => format!("group '{key}' cannot be pruned: {}", e.reason),
                None => format!("unknown group key '{key}': no conv of this model has that weight"),
            })
        })
    }
}

/// Finds the channel dependency groups of `graph` when its inputs have the shapes `inputs` (one per graph
/// input), with every other shape inferred statically.
///
/// # Errors
/// As [`shapes::infer`] and [`analyse`].
pub fn analyse_at(graph: &Graph, inputs: &[Vec<usize>]) -> Result<Analysis> {
    let shapes = shapes::infer(graph, inputs)?;
    analyse(graph, &|name| shapes.get(name).cloned())
}

/// Finds the channel dependency groups of `graph`, given the shape of every non-constant tensor.
///
/// # Errors
/// A node whose op is outside the op table, whose shapes `shape_of` does not know, or with a malformed
/// attribute, named.
pub fn analyse(graph: &Graph, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<Analysis> {
    let walk = rules::Walk::run(graph, shape_of)?;
    assemble::assemble(graph, walk, shape_of)
}
