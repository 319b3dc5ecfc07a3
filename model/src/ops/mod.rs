//! ONNX operator semantics that do not depend on where tensors live: which ops sensgrid runs, and how
//! shape-changing ops map input shapes and values to outputs. Constant folding, static shape inference and
//! the worker's kernels all use them, so they cannot disagree.

pub mod shape;
pub mod window;

use crate::error::Result;
use crate::ir::{Graph, Node};

/// Every op the worker's executor runs (default ONNX domain), sorted. The executor's kernel table has
/// exactly these keys (a worker test checks it); `Constant` is absent because loading turns `Constant`
/// nodes into constants of the IR.
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Div",
    "Erf",
    "Expand",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LSTM",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Pow",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Resize",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
];

/// Whether sensgrid runs `node`'s op.
pub fn is_supported(node: &Node) -> bool {
    node.domain.is_empty() && SUPPORTED_OPS.binary_search(&node.op_type.as_str()).is_ok()
}

/// Refuses a graph with any op outside [`SUPPORTED_OPS`]: the one refusal of unsupported ops, which the
/// executor, shape inference and the coordinator all give.
///
/// # Errors
/// The first unsupported node, named with its op, followed by every other one, so all gaps show at once,
/// then the supported ops.
pub fn check_supported(graph: &Graph) -> Result<()> {
    let mut unsupported = graph.nodes.iter().filter(|n| !is_supported(n));
    let Some(first) = unsupported.next() else { return Ok(()) };
    let mut message = String::from("unsupported op");
    if !first.domain.is_empty() {
        message += &format!(" of domain '{}'", first.domain);
    }
    let others: Vec<String> = unsupported
        .map(|n| {
            let domain = if n.domain.is_empty() {
                String::new()
            } else {
                format!("{}.", n.domain)
            };
            format!("node '{}' ({domain}{})", n.name, n.op_type)
        })
        .collect();
    if !others.is_empty() {
        message += &format!(", as are {}", others.join(", "));
    }
    message += &format!(" (supported: {})", SUPPORTED_OPS.join(", "));
    Err(first.error(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op_type: &str, domain: &str) -> Node {
        Node {
            name: name.into(),
            op_type: op_type.into(),
            domain: domain.into(),
            inputs: vec![],
            outputs: vec![],
            attributes: vec![],
        }
    }

    #[test]
    fn supported_ops_are_sorted_and_unique() {
        assert!(SUPPORTED_OPS.windows(2).all(|w| w[0] < w[1]), "{SUPPORTED_OPS:?}");
    }

    #[test]
    fn the_refusal_names_every_unsupported_node() {
        let mut graph = Graph {
            name: "g".into(),
            ir_version: 8,
            opset: 13,
            other_opsets: vec![],
            producer_name: String::new(),
            producer_version: String::new(),
            metadata: vec![],
            inputs: vec![],
            outputs: vec![],
            constants: Default::default(),
            nodes: vec![node("relu", "Relu", "")],
            value_info: Default::default(),
        };
        check_supported(&graph).unwrap();
        graph.nodes.push(node("nz", "NonZero", ""));
        let err = check_supported(&graph).unwrap_err().to_string();
        assert!(
            err.starts_with("node 'nz' (NonZero): unsupported op (supported: Add, AveragePool,"),
            "{err}"
        );
        graph.nodes.push(node("ms", "FusedConv", "com.microsoft"));
        let err = check_supported(&graph).unwrap_err().to_string();
        assert!(
            err.starts_with("node 'nz' (NonZero): unsupported op, as are node 'ms' (com.microsoft.FusedConv) ("),
            "{err}"
        );
    }
}
