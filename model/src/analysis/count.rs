//! Parameter and FLOPs counts, with PaddleSlim's conventions ([`CONVENTIONS`]).

use std::collections::{BTreeSet, HashMap};

use crate::analysis::shapes;
use crate::error::Result;
use crate::ir::{Graph, Node};

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

fn is_conv(node: &Node) -> bool {
    node.op_type == "Conv" || node.op_type == "ConvTranspose"
}

/// The inputs of `node` that hold its weights, by the conventions above.
fn weight_inputs<'a>(graph: &'a Graph, node: &'a Node, producers: &HashMap<&str, usize>) -> Vec<&'a str> {
    let constant = |i: usize| node.input(i).filter(|name| graph.constants.contains_key(*name));
    let picks: Vec<Option<&str>> = match node.op_type.as_str() {
        "Conv" | "ConvTranspose" => vec![constant(1), constant(2)],
        "Gemm" => vec![constant(1), constant(2)],
        "MatMul" => vec![constant(0), constant(1)],
        "BatchNormalization" => (1..5).map(constant).collect(),
        // A bias added to a conv's output: Paddle exports conv biases this way.
        "Add" => {
            let after_conv = |i: usize| {
                node.input(i)
                    .and_then(|name| producers.get(name))
                    .is_some_and(|&p| is_conv(&graph.nodes[p]))
            };
            vec![if after_conv(0) {
                constant(1)
            } else if after_conv(1) {
                constant(0)
            } else {
                None
            }]
        }
        _ => vec![],
    };
    picks.into_iter().flatten().collect()
}

/// The constants counted as parameters, by the conventions above.
pub fn param_tensors(graph: &Graph) -> BTreeSet<&str> {
    let producers = graph.producers();
    graph
        .nodes
        .iter()
        .flat_map(|node| weight_inputs(graph, node, &producers))
        .collect()
}

/// The number of parameters of `graph`.
pub fn params(graph: &Graph) -> u64 {
    param_tensors(graph)
        .into_iter()
        .map(|name| graph.constants[name].len() as u64)
        .sum()
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
/// A counted node whose shapes `shape_of` does not know, named.
pub fn flops(graph: &Graph, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64> {
    graph.nodes.iter().map(|node| node_flops(graph, node, shape_of)).sum()
}

/// Multiply-accumulates of one node of `graph` (0 for the ops not counted), with `shape_of` as in [`flops`].
///
/// # Errors
/// A counted node whose shapes `shape_of` does not know, named.
pub fn node_flops(graph: &Graph, node: &Node, shape_of: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64> {
    let shape = |node: &Node, name: Option<&str>| -> Result<Vec<usize>> {
        let name = name.ok_or_else(|| node.error("missing input"))?;
        graph
            .constants
            .get(name)
            .map(|c| c.dims().to_vec())
            .or_else(|| shape_of(name))
            .ok_or_else(|| node.error(format!("the shape of '{name}' is unknown")))
    };
    let product = |dims: &[usize]| dims.iter().map(|&d| d as u64).product::<u64>();
    let constant = |i: usize| node.input(i).is_some_and(|name| graph.constants.contains_key(name));
    let output = || shape(node, node.outputs.first().map(String::as_str));
    Ok(match node.op_type.as_str() {
        "Conv" => product(&output()?) * product(&shape(node, node.input(1))?[1..]),
        "ConvTranspose" => product(&shape(node, node.input(0))?) * product(&shape(node, node.input(1))?[1..]),
        "Gemm" if constant(1) => {
            let b = shape(node, node.input(1))?;
            let trans_b = node.attr_int("transB")?.unwrap_or(0) != 0;
            product(&output()?) * b[usize::from(trans_b)] as u64
        }
        "MatMul" if constant(0) || constant(1) => {
            let a = shape(node, node.input(0))?;
            product(&output()?) * *a.last().ok_or_else(|| node.error("a scalar operand"))? as u64
        }
        _ => 0,
    })
}
