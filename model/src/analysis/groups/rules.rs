//! The channel rules: a walk over the nodes in order that applies each op's rule, as its op-table entry
//! names it ([`Channels`]), to slots (one per channel of every tensor that carries channels): creating them
//! (sources), passing them on, rearranging them, coupling them or blocking them. `assemble` reads the result.

use std::collections::{BTreeMap, HashMap};

use super::ShapeRewrite;
use crate::error::Result;
use crate::ir::{Graph, Node};
use crate::ops::shape::{self, normalize_axis};
use crate::ops::{self, Channels};

/// Union-find over slots; each root carries why its channel cannot be pruned, if it cannot.
#[derive(Default)]
pub(super) struct Slots {
    parent: Vec<usize>,
    pub(super) blocked: Vec<Option<String>>,
}

impl Slots {
    fn fresh(&mut self, count: usize) -> Vec<usize> {
        let start = self.parent.len();
        self.parent.extend(start..start + count);
        self.blocked.resize(start + count, None);
        (start..start + count).collect()
    }

    pub(super) fn root(&mut self, mut slot: usize) -> usize {
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
pub(super) struct Carried {
    pub(super) axis: usize,
    pub(super) slots: Vec<usize>,
}

/// A constant axis whose indices are slots: a member candidate.
pub(super) struct ConstantAxis {
    pub(super) node: String,
    pub(super) input: usize,
    pub(super) slots: Vec<usize>,
}

/// A conv (or Gemm, MatMul) whose output channels are new.
pub(super) struct Source {
    pub(super) weight: String,
    pub(super) node: String,
    pub(super) axis: usize,
    pub(super) slots: Vec<usize>,
}

/// The walk over a graph's nodes, and what it found.
pub(super) struct Walk<'a> {
    graph: &'a Graph,
    producers: HashMap<&'a str, usize>,
    shape_of: &'a dyn Fn(&str) -> Option<Vec<usize>>,
    pub(super) slots: Slots,
    /// The channels of every non-constant tensor that carries some, by name.
    pub(super) carried: HashMap<String, Carried>,
    /// Every constant axis whose indices are slots, by (tensor, axis).
    pub(super) constants: BTreeMap<(String, usize), ConstantAxis>,
    /// In node order.
    pub(super) sources: Vec<Source>,
    pub(super) rewrites: Vec<ShapeRewrite>,
}

impl<'a> Walk<'a> {
    /// Applies every node's channel rule in order, then blocks the channels that reach a graph output.
    ///
    /// # Errors
    /// A node whose op is outside the op table, whose shapes `shape_of` does not know, or with a malformed
    /// attribute, named.
    pub(super) fn run(graph: &'a Graph, shape_of: &'a dyn Fn(&str) -> Option<Vec<usize>>) -> Result<Self> {
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
        Ok(walk)
    }

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
        match ops::op_of(node)?.channels {
            Channels::Conv { transposed } => self.conv(node, transposed),
            Channels::Gemm => self.gemm(node),
            Channels::MatMul => self.matmul(node),
            Channels::Norm { parameters } => {
                self.norm(node, parameters);
                Ok(())
            }
            Channels::PassThrough => self.pass_through(node),
            Channels::Broadcast => self.broadcast(node),
            Channels::Concat => self.concat(node),
            Channels::Split => self.split(node),
            Channels::Slice => self.slice(node),
            Channels::Transpose => self.transpose(node),
            Channels::Reshape { target } => self.reshape(node, target),
            Channels::Reduce => self.reduce(node),
            Channels::NormalizeAlongAxis => self.normalize_along_axis(node),
            Channels::ShapeOnly => Ok(()),
            Channels::Opaque => {
                self.block_inputs(node, "has no declared channel mapping");
                Ok(())
            }
        }
    }

    fn norm(&mut self, node: &Node, parameters: &[usize]) {
        let Some(x) = self.carried(node, 0).filter(|c| c.axis == 1) else {
            self.block_inputs(node, "normalizes a tensor whose channels are not on axis 1");
            return;
        };
        for &input in parameters {
            if self.constant(node, input).is_some() {
                let slots = self.constant_slots(node, input, 0);
                self.couple(&x.slots, &slots);
            } else {
                self.block_inputs(node, "has a non-constant parameter");
                return;
            }
        }
        self.carry(node, 0, 1, x.slots);
    }

    fn pass_through(&mut self, node: &Node) -> Result<()> {
        // Extra inputs (Clip's bounds, Resize's scales) must be constants that treat every channel alike; a
        // channel-scaling Resize would mix them.
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

    fn transpose(&mut self, node: &Node) -> Result<()> {
        if let Some(x) = self.carried(node, 0) {
            let rank = self.shape(node, &node.inputs[0])?.len();
            let perm = shape::transpose_perm(rank, node.attr_ints("perm")?).map_err(|m| node.error(m))?;
            let axis = perm.iter().position(|&p| p == x.axis).expect("a permutation");
            self.carry(node, 0, axis, x.slots);
        }
        Ok(())
    }

    fn normalize_along_axis(&mut self, node: &Node) -> Result<()> {
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

    fn conv(&mut self, node: &Node, transposed: bool) -> Result<()> {
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

    fn reshape(&mut self, node: &Node, target: Option<usize>) -> Result<()> {
        let Some(x) = self.carried(node, 0) else { return Ok(()) };
        let input = self.shape(node, &node.inputs[0])?;
        let output = self.shape(node, &node.outputs[0])?;
        let Some(axis) = reshaped_axis(&input, x.axis, &output) else {
            self.block_inputs(node, "merges or splits the channel axis");
            return Ok(());
        };
        if let Some(target) = target {
            // A target entry may hold the count itself, or 0 (copy) or -1 (infer), which adapt; so does an
            // entry computed from run-time shapes (constant-only subgraphs are folded at load).
            if let Some((holder, input, position)) = self.target_entry(node, target, axis)? {
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

    /// Which constant entry gives entry `axis` of a reshape's target (its input `target`): (node, input,
    /// position), where the target is a constant or a Concat of pieces; None when that entry is computed at
    /// run time.
    fn target_entry(&self, reshape: &'a Node, target: usize, axis: usize) -> Result<Option<(&'a Node, usize, usize)>> {
        let Some(target_name) = reshape.input(target) else {
            return Ok(None);
        };
        if self.graph.constants.contains_key(target_name) {
            return Ok(Some((reshape, target, axis)));
        }
        let Some(concat) = self.producers.get(target_name).map(|&i| &self.graph.nodes[i]) else {
            return Ok(None);
        };
        if ops::describe(concat).map(|op| op.channels) != Some(Channels::Concat) {
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
