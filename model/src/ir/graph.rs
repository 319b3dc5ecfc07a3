//! The graph: named tensors, constants, nodes in topological order.

use std::collections::{BTreeMap, HashMap};

use super::{Node, TensorData, TensorFact};

/// A graph input or output with what the file declares of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    /// None when the file declares no tensor type.
    pub fact: Option<TensorFact>,
}

/// A loaded ONNX model. See `ir/README.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub name: String,
    pub ir_version: i64,
    /// The opset of the default ONNX domain, which decides attribute and input conventions.
    pub opset: i64,
    /// Opsets of other domains, kept for writing back.
    pub other_opsets: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    /// `metadata_props` (PP-OCRv4 rec keeps its dictionary under `character`).
    pub metadata: Vec<(String, String)>,
    /// Graph inputs that are not constants.
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    /// Weights and every other tensor known at load.
    pub constants: BTreeMap<String, TensorData>,
    /// In topological order.
    pub nodes: Vec<Node>,
    /// Declared facts of intermediate tensors.
    pub value_info: BTreeMap<String, TensorFact>,
}

impl Graph {
    /// For each tensor produced by a node, the index of that node.
    pub fn producers(&self) -> HashMap<&str, usize> {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, node)| {
                node.outputs
                    .iter()
                    .filter(|o| !o.is_empty())
                    .map(move |o| (o.as_str(), i))
            })
            .collect()
    }

    /// How many nodes of each op type the graph runs.
    pub fn op_histogram(&self) -> BTreeMap<&str, usize> {
        let mut histogram = BTreeMap::new();
        for node in &self.nodes {
            *histogram.entry(node.op_type.as_str()).or_default() += 1;
        }
        histogram
    }
}
