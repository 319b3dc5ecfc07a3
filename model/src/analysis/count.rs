//! Parameter and FLOPs counts, with PaddleSlim's conventions ([`CONVENTIONS`]). Which inputs of an op are
//! weights and which formula counts its FLOPs are its op-table entry's `weights` and `cost`; the formulas
//! are here.

use std::collections::{BTreeSet, HashMap};

use crate::analysis::shapes;
use crate::error::Result;
use crate::ir::{Graph, Node};
use crate::ops::{self, Channels, Cost, Weights};

/// What the counts count, as `worker inspect` prints it.
pub const CONVENTIONS: [(&str, &str); 2] = [
    (
        "params",
        "elements of every constant weight input of Conv and ConvTranspose (W, B), Gemm (B, C), MatMul (its \
         constant operand) and BatchNormalization (scale, B, mean, var), plus the per-channel bias constants \
         added to a Conv or ConvTranspose output; LSTM weights are not counted",
    ),
    (
        "flops",
        "multiply-accumulates (PaddleSlim's flops) at the given input shape: Conv prod(output) * prod(W.shape[1:]), \
         ConvTranspose prod(input) * prod(W.shape[1:]), Gemm and MatMul with a constant operand prod(output) * K; \
         element-wise ops, pooling, resizing and LSTM are not counted",
    ),
];

/// Whether `node` is a conv (whose output a constant Add biases).
fn is_conv(node: &Node) -> bool {
    ops::describe(node).is_some_and(|op| matches!(op.channels, Channels::Conv { .. }))
}

/// The inputs of `node` that hold its weights, by its entry's `weights` and the conventions above.
///
/// # Errors
/// An op outside the op table, named.
fn weight_inputs<'a>(graph: &'a Graph, node: &'a Node, producers: &HashMap<&str, usize>) -> Result<Vec<&'a str>> {
    let constant = |i: usize| node.input(i).filter(|name| graph.constants.contains_key(*name));
    Ok(match ops::op_of(node)?.weights {
        Weights::None => Vec::new(),
        Weights::Filters { params, .. } | Weights::Norm { params, .. } => {
            params.iter().filter_map(|&i| constant(i)).collect()
        }
        Weights::ConvBias => {
            let after_conv = |i: usize| {
                node.input(i)
                    .and_then(|name| producers.get(name))
                    .is_some_and(|&p| is_conv(&graph.nodes[p]))
            };
            let bias = if after_conv(0) {
                constant(1)
            } else if after_conv(1) {
                constant(0)
            } else {
                None
            };
            bias.into_iter().collect()
        }
    })
}

/// The constants counted as parameters, by the conventions above.
///
/// # Errors
/// A node whose op is outside the op table, named.
pub fn param_tensors(graph: &Graph) -> Result<BTreeSet<&str>> {
    let producers = graph.producers();
    let mut tensors = BTreeSet::new();
    for node in &graph.nodes {
        tensors.extend(weight_inputs(graph, node, &producers)?);
    }
    Ok(tensors)
}

/// The number of parameters of `graph`.
///
/// # Errors
/// As [`param_tensors`].
pub fn params(graph: &Graph) -> Result<u64> {
    Ok(param_tensors(graph)?
        .into_iter()
        .map(|name| graph.constants[name].len() as u64)
        .sum())
}

/// Multiply-accumulates of `graph` when its inputs have the shapes `inputs` (one per graph input), with
/// every other shape inferred statically.
///
/// # Errors
/// As [`shapes::infer`].
pub fn flops_at(graph: &Graph, inputs: &[Vec<usize>]) -> Result<u64> {
    let shapes = shapes::infer(graph, inputs)?;
    flops(graph, &|name| shapes.get(name).cloned())
}

/// Multiply-accumulates of `graph`, given the shape of every tensor a counted node reads or writes
/// (`shape_of` answers for constants too).
///
/// # Errors
/// A counted node whose shapes `shape_of` does not know, or a node whose op is outside the op table, named.
pub fn flops(graph: &Graph, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64> {
    graph.nodes.iter().map(|node| node_flops(graph, node, shape_of)).sum()
}

/// Multiply-accumulates of one node of `graph` by its entry's `cost` (0 for [`Cost::Uncounted`]), with
/// `shape_of` as in [`flops`].
///
/// # Errors
/// As [`flops`].
pub fn node_flops(graph: &Graph, node: &Node, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64> {
    match ops::op_of(node)?.cost {
        Cost::Macs(macs) => macs(graph, node, shape_of),
        Cost::Uncounted => Ok(0),
    }
}

/// The shape of `name`, an input or output of `node`: a constant's, or what `shape_of` says.
fn shape(
    graph: &Graph,
    node: &Node,
    name: Option<&str>,
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Result<Vec<usize>> {
    let name = name.ok_or_else(|| node.error("missing input"))?;
    graph
        .constants
        .get(name)
        .map(|c| c.dims().to_vec())
        .or_else(|| shape_of(name))
        .ok_or_else(|| node.error(format!("the shape of '{name}' is unknown")))
}

fn product(dims: &[usize]) -> u64 {
    dims.iter().map(|&d| d as u64).product()
}

fn is_constant(graph: &Graph, node: &Node, i: usize) -> bool {
    node.input(i).is_some_and(|name| graph.constants.contains_key(name))
}

/// Conv: prod(output) * prod(W.shape[1..]).
pub(crate) fn conv(graph: &Graph, node: &Node, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64> {
    let output = shape(graph, node, node.outputs.first().map(String::as_str), shape_of)?;
    Ok(product(&output) * product(&shape(graph, node, node.input(1), shape_of)?[1..]))
}

/// ConvTranspose: prod(input) * prod(W.shape[1..]).
pub(crate) fn conv_transpose(graph: &Graph, node: &Node, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64> {
    let input = shape(graph, node, node.input(0), shape_of)?;
    Ok(product(&input) * product(&shape(graph, node, node.input(1), shape_of)?[1..]))
}

/// Gemm with a constant B: prod(output) * K; 0 without one.
pub(crate) fn gemm(graph: &Graph, node: &Node, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64> {
    if !is_constant(graph, node, 1) {
        return Ok(0);
    }
    let b = shape(graph, node, node.input(1), shape_of)?;
    let trans_b = node.attr_int("transB")?.unwrap_or(0) != 0;
    let output = shape(graph, node, node.outputs.first().map(String::as_str), shape_of)?;
    Ok(product(&output) * b[usize::from(trans_b)] as u64)
}

/// MatMul with a constant operand: prod(output) * K; 0 without one.
pub(crate) fn matmul(graph: &Graph, node: &Node, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64> {
    if !is_constant(graph, node, 0) && !is_constant(graph, node, 1) {
        return Ok(0);
    }
    let a = shape(graph, node, node.input(0), shape_of)?;
    let output = shape(graph, node, node.outputs.first().map(String::as_str), shape_of)?;
    Ok(product(&output) * *a.last().ok_or_else(|| node.error("a scalar operand"))? as u64)
}
