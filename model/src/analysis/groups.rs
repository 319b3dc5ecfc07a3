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
//! Shapes come from static inference at given input shapes ([`analyse_at`], `analysis::shapes`), or from
//! the caller ([`analyse`]'s `shape_of`).

use std::collections::{BTreeMap, HashMap};

use crate::analysis::{count, shapes};
use crate::error::{ModelError, Result};
use crate::ir::{Graph, Node};
use crate::ops::shape::{self, normalize_axis};

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
    /// Parameters (by [`count::CONVENTIONS`]) that pruning every channel of the group would remove.
    pub params: u64,
    /// Multiply-accumulates (by [`count::CONVENTIONS`]) that pruning every channel would remove.
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

/// Union-find over slots; each root carries why its channel cannot be pruned, if it cannot.
#[derive(Default)]
struct Slots {
    parent: Vec<usize>,
    blocked: Vec<Option<String>>,
}

impl Slots {
    fn fresh(&mut self, count: usize) -> Vec<usize> {
        let start = self.parent.len();
        self.parent.extend(start..start + count);
        self.blocked.resize(start + count, None);
        (start..start + count).collect()
    }

    fn root(&mut self, mut slot: usize) -> usize {
        while self.parent[slot] != slot {
            self.parent[slot] = self.parent[self.parent[slot]];
            slot = self.parent[slot];
        }
        slot
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        if a != b {
            self.parent[b] = a;
            if self.blocked[a].is_none() {
                self.blocked[a] = self.blocked[b].take();
            }
        }
    }

    fn block(&mut self, slots: &[usize], reason: &str) {
        for &slot in slots {
            let root = self.root(slot);
            self.blocked[root].get_or_insert_with(|| reason.to_owned());
        }
    }
}

/// The channels of one non-constant tensor: the slot of each index along `axis`.
#[derive(Clone)]
struct Carried {
    axis: usize,
    slots: Vec<usize>,
}

/// A constant axis whose indices are slots: a member candidate.
struct ConstantAxis {
    node: String,
    input: usize,
    slots: Vec<usize>,
}

/// A conv (or Gemm, MatMul) whose output channels are new.
struct Source {
    weight: String,
    node: String,
    axis: usize,
    slots: Vec<usize>,
}

/// Elementwise ops with one data input whose channels pass through unchanged.
const PASS_THROUGH: &[&str] = &[
    "Abs",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "Log",
    "Mish",
    "Neg",
    "Reciprocal",
    "Relu",
    "Round",
    "Selu",
    "Sigmoid",
    "Sign",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Tanh",
    "ThresholdedRelu",
    // Spatial ops that treat each channel on its own.
    "AveragePool",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "LpPool",
    "MaxPool",
    "Resize",
    "Upsample",
];

/// Elementwise ops over broadcast operands.
const BROADCAST: &[&str] = &["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "PRelu"];

/// Ops that read only their input's shape, never its values.
const SHAPE_ONLY: &[&str] = &["Shape", "Size"];

struct Walk<'a> {
    graph: &'a Graph,
    producers: HashMap<&'a str, usize>,
    shape_of: &'a dyn Fn(&str) -> Option<Vec<usize>>,
    slots: Slots,
    carried: HashMap<String, Carried>,
    constants: BTreeMap<(String, usize), ConstantAxis>,
    sources: Vec<Source>,
    rewrites: Vec<ShapeRewrite>,
}

impl<'a> Walk<'a> {
    fn shape(&self, node: &Node, name: &str) -> Result<Vec<usize>> {
        if let Some(c) = self.graph.constants.get(name) {
            return Ok(c.dims().to_vec());
        }
        (self.shape_of)(name).ok_or_else(|| node.error(format!("the shape of '{name}' is unknown")))
    }

    fn constant<'n>(&self, node: &'n Node, index: usize) -> Option<&'n str> {
        node.input(index)
            .filter(|name| self.graph.constants.contains_key(*name))
    }

    /// The slots of axis `axis` of the constant on input `input` of `node`, created on first use.
    fn constant_slots(&mut self, node: &Node, input: usize, axis: usize) -> Vec<usize> {
        let name = node.input(input).expect("a constant input").to_owned();
        let len = self.graph.constants[&name].dims()[axis];
        if let Some(existing) = self.constants.get(&(name.clone(), axis)) {
            return existing.slots.clone();
        }
        let slots = self.slots.fresh(len);
        self.constants.insert(
            (name, axis),
            ConstantAxis {
                node: node.name.clone(),
                input,
                slots: slots.clone(),
            },
        );
        slots
    }

    fn couple(&mut self, a: &[usize], b: &[usize]) {
        for (&x, &y) in a.iter().zip(b) {
            self.slots.union(x, y);
        }
    }

    fn carried(&self, node: &Node, index: usize) -> Option<Carried> {
        node.input(index).and_then(|name| self.carried.get(name)).cloned()
    }

    /// Marks the channels every input of `node` carries as unprunable.
    fn block_inputs(&mut self, node: &Node, why: &str) {
        let reason = format!("node '{}' ({}) {why}", node.name, node.op_type);
        for name in node.inputs.iter().filter(|n| !n.is_empty()) {
            if let Some(c) = self.carried.get(name) {
                let slots = c.slots.clone();
                self.slots.block(&slots, &reason);
            }
        }
    }

    fn carry(&mut self, node: &Node, output: usize, axis: usize, slots: Vec<usize>) {
        if let Some(name) = node.outputs.get(output).filter(|n| !n.is_empty()) {
            self.carried.insert(name.clone(), Carried { axis, slots });
        }
    }

    fn visit(&mut self, node: &Node) -> Result<()> {
        let op = node.op_type.as_str();
        if !node.domain.is_empty() {
            self.block_inputs(node, "has no declared channel mapping");
            return Ok(());
        }
        match op {
            "Conv" | "ConvTranspose" => self.conv(node),
            "Gemm" => self.gemm(node),
            "MatMul" => self.matmul(node),
            "BatchNormalization" | "InstanceNormalization" => {
                let Some(x) = self.carried(node, 0).filter(|c| c.axis == 1) else {
                    self.block_inputs(node, "normalizes a tensor whose channels are not on axis 1");
                    return Ok(());
                };
                let last = if op == "BatchNormalization" { 4 } else { 2 };
                for input in 1..=last {
                    if self.constant(node, input).is_some() {
                        let slots = self.constant_slots(node, input, 0);
                        self.couple(&x.slots, &slots);
                    } else {
                        self.block_inputs(node, "has a non-constant parameter");
                        return Ok(());
                    }
                }
                self.carry(node, 0, 1, x.slots);
                Ok(())
            }
            _ if PASS_THROUGH.contains(&op) => {
                // Extra inputs (Clip's bounds, Resize's scales) must be constants that treat every channel
                // alike; a channel-scaling Resize would mix them.
                if node
                    .inputs
                    .iter()
                    .skip(1)
                    .any(|i| !i.is_empty() && self.carried.contains_key(i))
                {
                    self.block_inputs(node, "takes channels on a parameter input");
                    return Ok(());
                }
                if let Some(x) = self.carried(node, 0) {
                    let out = self.shape(node, &node.outputs[0])?;
                    if out.get(x.axis) != Some(&x.slots.len()) {
                        self.block_inputs(node, "changes the channel count");
                        return Ok(());
                    }
                    self.carry(node, 0, x.axis, x.slots);
                }
                Ok(())
            }
            _ if BROADCAST.contains(&op) => self.broadcast(node),
            "Concat" => self.concat(node),
            "Split" => self.split(node),
            "Slice" => self.slice(node),
            "Transpose" => {
                if let Some(x) = self.carried(node, 0) {
                    let rank = self.shape(node, &node.inputs[0])?.len();
                    let perm = shape::transpose_perm(rank, node.attr_ints("perm")?).map_err(|m| node.error(m))?;
                    let axis = perm.iter().position(|&p| p == x.axis).expect("a permutation");
                    self.carry(node, 0, axis, x.slots);
                }
                Ok(())
            }
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => self.reshape(node),
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2"
            | "ReduceLogSumExp" | "ReduceSumSquare" => self.reduce(node),
            "Softmax" | "LogSoftmax" | "Hardmax" => {
                if let Some(x) = self.carried(node, 0) {
                    let rank = self.shape(node, &node.inputs[0])?.len();
                    let default = if self.graph.opset < 13 { 1 } else { -1 };
                    let axis = normalize_axis(node.attr_int("axis")?.unwrap_or(default), rank)
                        .map_err(|m| node.attr_error("axis", m))?;
                    // Before opset 13 the op works on the input flattened to 2-D at `axis`.
                    let mixes = if self.graph.opset < 13 {
                        x.axis >= axis
                    } else {
                        x.axis == axis
                    };
                    if mixes {
                        self.block_inputs(node, "normalizes over the channel axis");
                    } else {
                        self.carry(node, 0, x.axis, x.slots);
                    }
                }
                Ok(())
            }
            _ if SHAPE_ONLY.contains(&op) => Ok(()),
            _ => {
                self.block_inputs(node, "has no declared channel mapping");
                Ok(())
            }
        }
    }

    fn conv(&mut self, node: &Node) -> Result<()> {
        let transposed = node.op_type == "ConvTranspose";
        if self.constant(node, 1).is_none() || node.input(2).is_some_and(|_| self.constant(node, 2).is_none()) {
            self.block_inputs(node, "has non-constant weights");
            return Ok(());
        }
        let w = self.graph.constants[node.input(1).expect("checked")].dims().to_vec();
        let group = node.attr_int("group")?.unwrap_or(1).max(1) as usize;
        let x = self.carried(node, 0).filter(|c| c.axis == 1);
        if x.is_none() {
            self.block_inputs(node, "reads channels that are not on axis 1");
        }
        // Depthwise: one filter per input channel, so output channel c is input channel c.
        let (c_in, c_out) = if transposed {
            (w[0], w[1] * group)
        } else {
            (w[1] * group, w[0])
        };
        let depthwise = group > 1 && group == c_in && c_in == c_out;
        let out_axis = usize::from(transposed);
        let out_slots = if depthwise {
            let slots = self.constant_slots(node, 1, 0);
            match &x {
                Some(x) => self.couple(&x.slots, &slots),
                None => self.slots.block(
                    &slots,
                    &format!("depthwise conv '{}' reads untracked channels", node.name),
                ),
            }
            slots
        } else {
            let in_axis = if transposed { 0 } else { 1 };
            if let Some(x) = &x {
                if group == 1 {
                    let w_in = self.constant_slots(node, 1, in_axis);
                    self.couple(&x.slots, &w_in);
                } else {
                    self.block_inputs(node, "is a grouped conv");
                }
            }
            let slots = self.constant_slots(node, 1, out_axis);
            if group > 1 {
                self.slots.block(
                    &slots,
                    &format!("node '{}' ({}) is a grouped conv", node.name, node.op_type),
                );
            } else {
                self.sources.push(Source {
                    weight: node.inputs[1].clone(),
                    node: node.name.clone(),
                    axis: out_axis,
                    slots: slots.clone(),
                });
            }
            slots
        };
        if self.constant(node, 2).is_some() {
            let bias = self.constant_slots(node, 2, 0);
            self.couple(&out_slots, &bias);
        }
        self.carry(node, 0, 1, out_slots);
        Ok(())
    }

    /// A source whose weight (input `weight`) maps the input channels on axis `in_axis` to new channels
    /// on axis `out_axis`; `x` is the carried input, expected on axis `x_axis`.
    fn dense(&mut self, node: &Node, weight: usize, in_axis: usize, out_axis: usize, x_axis: usize) -> Vec<usize> {
        match self.carried(node, 0) {
            Some(x) if x.axis == x_axis => {
                let w_in = self.constant_slots(node, weight, in_axis);
                self.couple(&x.slots, &w_in);
            }
            Some(_) => self.block_inputs(node, "contracts an axis other than the channel axis"),
            None => {}
        }
        let slots = self.constant_slots(node, weight, out_axis);
        self.sources.push(Source {
            weight: node.inputs[weight].clone(),
            node: node.name.clone(),
            axis: out_axis,
            slots: slots.clone(),
        });
        slots
    }

    fn gemm(&mut self, node: &Node) -> Result<()> {
        let trans_a = node.attr_int("transA")?.unwrap_or(0) != 0;
        if self.constant(node, 1).is_none() || trans_a || self.carried(node, 1).is_some() {
            self.block_inputs(node, "mixes channels (no constant weight)");
            return Ok(());
        }
        let trans_b = node.attr_int("transB")?.unwrap_or(0) != 0;
        let (in_axis, out_axis) = if trans_b { (1, 0) } else { (0, 1) };
        let slots = self.dense(node, 1, in_axis, out_axis, 1);
        if let Some(name) = self.constant(node, 2) {
            let dims = self.graph.constants[name].dims().to_vec();
            // A bias of shape [N] or [1, N] is per channel; a scalar one is shared.
            if dims.last() == Some(&slots.len()) && slots.len() > 1 {
                let bias = self.constant_slots(node, 2, dims.len() - 1);
                self.couple(&slots, &bias);
            }
        } else if node.input(2).is_some() {
            self.block_inputs(node, "adds a non-constant bias");
        }
        self.carry(node, 0, 1, slots);
        Ok(())
    }

    fn matmul(&mut self, node: &Node) -> Result<()> {
        let weighted = self
            .constant(node, 1)
            .is_some_and(|w| self.graph.constants[w].dims().len() == 2);
        if !weighted || self.constant(node, 0).is_some() {
            self.block_inputs(node, "mixes channels (no constant weight)");
            return Ok(());
        }
        let rank = self.shape(node, &node.outputs[0])?.len();
        let slots = self.dense(node, 1, 0, 1, rank - 1);
        self.carry(node, 0, rank - 1, slots);
        Ok(())
    }

    fn broadcast(&mut self, node: &Node) -> Result<()> {
        let out = self.shape(node, &node.outputs[0])?;
        let rank = out.len();
        // Each carried operand's channel axis, aligned to the output from the right.
        let mut carried = Vec::new();
        for (i, name) in node.inputs.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
            if let Some(c) = self.carried.get(name) {
                let input_rank = self.shape(node, name)?.len();
                carried.push((i, rank - input_rank + c.axis, c.slots.clone()));
            }
        }
        let Some(&(_, axis, _)) = carried.first() else {
            return Ok(());
        };
        if carried.iter().any(|(_, a, _)| *a != axis) {
            self.block_inputs(node, "combines channels on different axes");
            return Ok(());
        }
        let channels = out[axis];
        // A single channel broadcast over many is shared by all of them: it cannot be removed alone.
        let mut coupled: Vec<Vec<usize>> = Vec::new();
        for (_, _, slots) in &carried {
            if slots.len() == channels {
                coupled.push(slots.clone());
            } else {
                let reason = format!(
                    "node '{}' ({}) broadcasts one channel over {channels}",
                    node.name, node.op_type
                );
                self.slots.block(slots, &reason);
            }
        }
        let Some(first) = coupled.first().cloned() else {
            return Ok(());
        };
        for other in &coupled[1..] {
            self.couple(&first, other);
        }
        for (i, name) in node.inputs.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
            if self.carried.contains_key(name) {
                continue;
            }
            let dims = self.shape(node, name)?;
            let Some(own_axis) = (axis + dims.len()).checked_sub(rank) else {
                continue;
            };
            match dims[own_axis] {
                1 => {}
                n if n == channels && self.graph.constants.contains_key(name) => {
                    let slots = self.constant_slots(node, i, own_axis);
                    self.couple(&first, &slots);
                }
                _ => {
                    let reason = format!(
                        "node '{}' ({}) combines them with '{name}', whose channels are not tracked",
                        node.name, node.op_type
                    );
                    self.slots.block(&first, &reason);
                }
            }
        }
        self.carry(node, 0, axis, first);
        Ok(())
    }

    fn concat(&mut self, node: &Node) -> Result<()> {
        if node.inputs.iter().all(|i| !self.carried.contains_key(i)) {
            return Ok(());
        }
        let rank = self.shape(node, &node.outputs[0])?.len();
        let axis = normalize_axis(node.attr_int("axis")?.ok_or_else(|| node.error("has no axis"))?, rank)
            .map_err(|m| node.attr_error("axis", m))?;
        let carried: Vec<Option<Carried>> = (0..node.inputs.len()).map(|i| self.carried(node, i)).collect();
        let channel_axes: Vec<usize> = carried.iter().flatten().map(|c| c.axis).collect();
        if channel_axes.iter().all(|&a| a == axis) {
            // Channels side by side: the output's slots are the inputs' in order; an input without tracked
            // channels contributes channels that can never be removed.
            let mut slots = Vec::new();
            for (i, c) in carried.iter().enumerate() {
                match c {
                    Some(c) => slots.extend(&c.slots),
                    None => {
                        let len = self.shape(node, &node.inputs[i])?[axis];
                        let fresh = self.slots.fresh(len);
                        let reason = format!("node '{}' (Concat) joins them with untracked channels", node.name);
                        self.slots.block(&fresh, &reason);
                        slots.extend(fresh);
                    }
                }
            }
            self.carry(node, 0, axis, slots);
        } else if carried.iter().all(Option::is_some) && channel_axes.iter().all(|&a| a == channel_axes[0]) {
            // Joined along another axis: channel c of every input becomes channel c of the output.
            let first = carried[0].clone().expect("checked");
            for c in carried.iter().flatten().skip(1) {
                if c.slots.len() != first.slots.len() {
                    self.block_inputs(node, "joins different channel counts");
                    return Ok(());
                }
                self.couple(&first.slots, &c.slots);
            }
            self.carry(node, 0, first.axis, first.slots);
        } else {
            self.block_inputs(node, "joins channels on different axes");
        }
        Ok(())
    }

    fn split(&mut self, node: &Node) -> Result<()> {
        let Some(x) = self.carried(node, 0) else { return Ok(()) };
        let rank = self.shape(node, &node.inputs[0])?.len();
        let axis = normalize_axis(node.attr_int("axis")?.unwrap_or(0), rank).map_err(|m| node.attr_error("axis", m))?;
        let mut start = 0;
        let mut sizes = Vec::new();
        for (o, name) in node.outputs.iter().enumerate() {
            let len = self.shape(node, name)?[axis];
            let slots = if axis == x.axis {
                x.slots[start..start + len].to_vec()
            } else {
                x.slots.clone()
            };
            start += len;
            sizes.push(len);
            self.carry(node, o, x.axis, slots);
        }
        if axis == x.axis {
            self.rewrites.push(ShapeRewrite::SplitSizes {
                node: node.name.clone(),
                sizes,
            });
        }
        Ok(())
    }

    fn slice(&mut self, node: &Node) -> Result<()> {
        let Some(x) = self.carried(node, 0) else { return Ok(()) };
        let dims = self.shape(node, &node.inputs[0])?;
        let Some((axes, position)) = slice_axes(self.graph, node, &dims, x.axis)? else {
            self.block_inputs(node, "slices with non-constant bounds");
            return Ok(());
        };
        let Some(position) = position else {
            self.carry(node, 0, x.axis, x.slots);
            return Ok(());
        };
        let along = axes[x.axis];
        if along.step != 1 || self.graph.opset < 10 {
            self.block_inputs(node, "slices the channel axis with a step or with attribute bounds");
            return Ok(());
        }
        let start = along.start as usize;
        self.rewrites.push(ShapeRewrite::SliceBounds {
            node: node.name.clone(),
            position,
            start,
            len: along.len,
        });
        self.carry(node, 0, x.axis, x.slots[start..start + along.len].to_vec());
        Ok(())
    }

    fn reshape(&mut self, node: &Node) -> Result<()> {
        let Some(x) = self.carried(node, 0) else { return Ok(()) };
        let input = self.shape(node, &node.inputs[0])?;
        let output = self.shape(node, &node.outputs[0])?;
        let Some(axis) = reshaped_axis(&input, x.axis, &output) else {
            self.block_inputs(node, "merges or splits the channel axis");
            return Ok(());
        };
        if node.op_type == "Reshape" {
            // A target entry may hold the count itself, or 0 (copy) or -1 (infer), which adapt; so does an
            // entry computed from run-time shapes (constant-only subgraphs are folded at load).
            if let Some((holder, input, position)) = self.target_entry(node, axis)? {
                let constant = &self.graph.constants[&holder.inputs[input]];
                if constant.to_i64s().and_then(|v| v.get(position).copied()) == Some(x.slots.len() as i64) {
                    self.rewrites.push(ShapeRewrite::CountEntry {
                        node: holder.name.clone(),
                        input,
                        position,
                        tensor: node.outputs[0].clone(),
                    });
                }
            }
        }
        self.carry(node, 0, axis, x.slots);
        Ok(())
    }

    /// Which constant entry gives entry `axis` of a Reshape's target: (node, input, position), where the
    /// target is a constant or a Concat of pieces; None when that entry is computed at run time.
    fn target_entry(&self, reshape: &'a Node, axis: usize) -> Result<Option<(&'a Node, usize, usize)>> {
        let Some(target) = reshape.input(1) else {
            return Ok(None);
        };
        if self.graph.constants.contains_key(target) {
            return Ok(Some((reshape, 1, axis)));
        }
        let Some(concat) = self.producers.get(target).map(|&i| &self.graph.nodes[i]) else {
            return Ok(None);
        };
        if concat.op_type != "Concat" {
            return Ok(None);
        }
        let mut offset = 0;
        for (i, piece) in concat.inputs.iter().enumerate() {
            let len = self.shape(concat, piece)?.first().copied().unwrap_or(1);
            if axis < offset + len {
                let constant = self.graph.constants.contains_key(piece);
                return Ok(constant.then_some((concat, i, axis - offset)));
            }
            offset += len;
        }
        Ok(None)
    }

    fn reduce(&mut self, node: &Node) -> Result<()> {
        let Some(x) = self.carried(node, 0) else { return Ok(()) };
        let rank = self.shape(node, &node.inputs[0])?.len();
        let axes: Option<Vec<i64>> = match node.attr_ints("axes")? {
            Some(axes) => Some(axes.to_vec()),
            None => match node.input(1) {
                Some(name) => match self.graph.constants.get(name).and_then(|c| c.to_i64s()) {
                    Some(axes) => Some(axes),
                    None => {
                        self.block_inputs(node, "reduces over non-constant axes");
                        return Ok(());
                    }
                },
                None => None,
            },
        };
        let axes: Vec<usize> = match axes.filter(|a| !a.is_empty()) {
            Some(axes) => axes
                .iter()
                .map(|&a| normalize_axis(a, rank))
                .collect::<Result<_, _>>()
                .map_err(|m| node.error(m))?,
            None => (0..rank).collect(),
        };
        if axes.contains(&x.axis) {
            self.block_inputs(node, "reduces over the channel axis");
            return Ok(());
        }
        let keep = node.attr_int("keepdims")?.unwrap_or(1) != 0;
        let axis = if keep {
            x.axis
        } else {
            x.axis - axes.iter().filter(|&&a| a < x.axis).count()
        };
        self.carry(node, 0, axis, x.slots);
        Ok(())
    }
}

/// The axes of a Slice with constant bounds, resolved against `dims`, and which entry of its starts and ends
/// is about `axis` (None when the Slice leaves that axis whole); None when a bound is not constant.
type SliceAxes = (Vec<shape::SliceAxis>, Option<usize>);
fn slice_axes(graph: &Graph, node: &Node, dims: &[usize], axis: usize) -> Result<Option<SliceAxes>> {
    let ints = |i: usize| -> Option<Option<Vec<i64>>> {
        match node.input(i) {
            None => Some(None),
            Some(name) => graph.constants.get(name).and_then(|c| c.to_i64s()).map(Some),
        }
    };
    let (starts, ends, axes, steps) = if graph.opset < 10 {
        let get = |n: &str| -> Result<Option<Vec<i64>>> { Ok(node.attr_ints(n)?.map(<[i64]>::to_vec)) };
        (get("starts")?, get("ends")?, get("axes")?, None)
    } else {
        let (Some(starts), Some(ends), Some(axes), Some(steps)) = (ints(1), ints(2), ints(3), ints(4)) else {
            return Ok(None);
        };
        (starts, ends, axes, steps)
    };
    let (Some(starts), Some(ends)) = (starts, ends) else {
        return Err(node.error("has no starts or ends"));
    };
    let resolved = shape::slice(dims, &starts, &ends, axes.as_deref(), steps.as_deref()).map_err(|m| node.error(m))?;
    let position = match &axes {
        Some(axes) => axes
            .iter()
            .position(|&a| normalize_axis(a, dims.len()).is_ok_and(|a| a == axis)),
        None => (axis < starts.len()).then_some(axis),
    };
    Ok(Some((resolved, position)))
}

/// Where the channel axis `axis` of `input` lands in `output` when a reshape keeps it whole: the axis of the
/// same size after the same number of elements. None when the reshape merges or splits it.
fn reshaped_axis(input: &[usize], axis: usize, output: &[usize]) -> Option<usize> {
    let before: usize = input[..axis].iter().product();
    let mut product = 1;
    for (b, &d) in output.iter().enumerate() {
        if product == before && d == input[axis] {
            return Some(b);
        }
        product *= d;
        if product > before {
            break;
        }
    }
    None
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
/// A node whose shapes `shape_of` does not know, or with a malformed attribute, named.
pub fn analyse(graph: &Graph, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<Analysis> {
    let mut walk = Walk {
        graph,
        producers: graph.producers(),
        shape_of,
        slots: Slots::default(),
        carried: HashMap::new(),
        constants: BTreeMap::new(),
        sources: Vec::new(),
        rewrites: Vec::new(),
    };
    for node in &graph.nodes {
        walk.visit(node)?;
    }
    for output in &graph.outputs {
        if let Some(c) = walk.carried.get(&output.name) {
            let slots = c.slots.clone();
            walk.slots
                .block(&slots, &format!("they reach the graph output '{}'", output.name));
        }
    }
    assemble(graph, walk, shape_of)
}

/// Groups channels by source, checks each group, and lists its members.
fn assemble(graph: &Graph, mut walk: Walk, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<Analysis> {
    // Sources that share a channel belong to one group.
    let mut parent: Vec<usize> = (0..walk.sources.len()).collect();
    fn find(parent: &mut [usize], mut s: usize) -> usize {
        while parent[s] != s {
            parent[s] = parent[parent[s]];
            s = parent[s];
        }
        s
    }
    let mut owner: HashMap<usize, usize> = HashMap::new();
    for (s, source) in walk.sources.iter().enumerate() {
        for &slot in &source.slots {
            let root = walk.slots.root(slot);
            match owner.get(&root) {
                Some(&o) => {
                    let (a, b) = (find(&mut parent, o), find(&mut parent, s));
                    parent[b.max(a)] = a.min(b);
                }
                None => {
                    owner.insert(root, s);
                }
            }
        }
    }
    // Sources are in node order, so each set's first member is its key conv.
    let mut source_sets: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for s in 0..walk.sources.len() {
        let root = find(&mut parent, s);
        source_sets.entry(root).or_default().push(s);
    }

    let params = count::param_tensors(graph);
    let mut groups = Vec::new();
    let mut excluded = Vec::new();
    // For each candidate set: its index in `groups`, and the group channel of each of its channels.
    let mut channel_index: HashMap<usize, (usize, usize)> = HashMap::new();
    for set in source_sets.values() {
        let key = &walk.sources[set[0]];
        let key_channels: Vec<usize> = key.slots.clone().into_iter().map(|s| walk.slots.root(s)).collect();
        let mut all: Vec<usize> = set
            .iter()
            .flat_map(|&s| walk.sources[s].slots.clone())
            .map(|s| walk.slots.root(s))
            .collect();
        all.sort_unstable();
        all.dedup();
        let mut distinct = key_channels.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let reason = if let Some(why) = all.iter().find_map(|&c| walk.slots.blocked[c].clone()) {
            Some(why)
        } else if distinct.len() != key_channels.len() || all.len() != key_channels.len() {
            Some("its channels are coupled, through Concat, Split or Slice, to sets of other sizes".to_owned())
        } else if key_channels.len() < 2 {
            Some("it has a single channel".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            for &s in set.iter() {
                let source = &walk.sources[s];
                excluded.push(Excluded {
                    conv: source.weight.clone(),
                    node: source.node.clone(),
                    reason: reason.clone(),
                });
            }
            continue;
        }
        let index = groups.len();
        for (g, &c) in key_channels.iter().enumerate() {
            channel_index.insert(c, (index, g));
        }
        groups.push(Group {
            key: key.weight.clone(),
            key_node: key.node.clone(),
            key_axis: key.axis,
            channels: key_channels.len(),
            members: Vec::new(),
            params: 0,
            flops: 0,
        });
    }

    // Members: every constant axis holding channels of a group.
    let mut duplicated = vec![false; groups.len()];
    for ((tensor, axis), constant) in &walk.constants {
        let mut by_group: BTreeMap<usize, Vec<Option<usize>>> = BTreeMap::new();
        for (k, &slot) in constant.slots.iter().enumerate() {
            let root = walk.slots.root(slot);
            if let Some(&(group, g)) = channel_index.get(&root) {
                let map = by_group
                    .entry(group)
                    .or_insert_with(|| vec![None; groups[group].channels]);
                if map[g].replace(k).is_some() {
                    duplicated[group] = true;
                }
            }
        }
        for (group, index_map) in by_group {
            groups[group].members.push(Member {
                tensor: tensor.clone(),
                node: constant.node.clone(),
                input: constant.input,
                axis: *axis,
                index_map,
            });
        }
    }
    let by_name: HashMap<&str, &Node> = graph.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    for group in &mut groups {
        group
            .members
            .sort_by_key(|m| (graph.nodes.iter().position(|n| n.name == m.node), m.input, m.axis));
        for member in &group.members {
            let data = &graph.constants[&member.tensor];
            let covered = member.index_map.iter().flatten().count() as u64;
            let len = data.dims()[member.axis] as u64;
            if params.contains(member.tensor.as_str()) {
                group.params += data.len() as u64 / len * covered;
            }
            let node = by_name[member.node.as_str()];
            let is_weight = match node.op_type.as_str() {
                "Conv" | "ConvTranspose" | "Gemm" | "MatMul" => member.input == 1,
                _ => false,
            };
            if is_weight {
                group.flops += count::node_flops(graph, node, shape_of)? / len * covered;
            }
        }
    }
    // A channel read twice by one member (Concat of a tensor with itself) cannot be cut consistently.
    let mut kept_groups = Vec::new();
    let mut renumber = vec![None; groups.len()];
    for (i, group) in groups.into_iter().enumerate() {
        if duplicated[i] {
            excluded.push(Excluded {
                conv: group.key.clone(),
                node: group.key_node.clone(),
                reason: "a member holds one of its channels twice".to_owned(),
            });
        } else {
            renumber[i] = Some(kept_groups.len());
            kept_groups.push(group);
        }
    }

    let mut tensors = BTreeMap::new();
    for (name, carried) in &walk.carried {
        let channels: Vec<Option<(usize, usize)>> = carried
            .slots
            .iter()
            .map(|&s| {
                let root = walk.slots.root(s);
                channel_index
                    .get(&root)
                    .and_then(|&(group, g)| renumber[group].map(|group| (group, g)))
            })
            .collect();
        if channels.iter().any(Option::is_some) {
            tensors.insert(
                name.clone(),
                ChannelMap {
                    axis: carried.axis,
                    channels,
                },
            );
        }
    }
    excluded.sort_by_key(|e| graph.nodes.iter().position(|n| n.name == e.node));
    Ok(Analysis {
        groups: kept_groups,
        excluded,
        tensors,
        rewrites: walk.rewrites,
    })
}
