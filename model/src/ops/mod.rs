//! ONNX operator semantics that do not depend on where tensors live: which ops sensgrid runs with which
//! attributes ([`OPS`]), and how shape-changing ops map input shapes and values to outputs. The coordinator,
//! constant folding, static shape inference and the worker's kernels all use them, so they cannot disagree.

pub mod lstm;
pub mod resize;
pub mod shape;
pub mod window;

use crate::error::{ModelError, Result};
use crate::ir::{DataType, Graph, Node};
use lstm::LstmAttrs;
use resize::ResizeAttrs;
use window::Window;

/// The attributes an op may carry; the executor reads these and refuses any other.
#[derive(Debug, Clone, Copy)]
pub enum Attributes {
    /// The same names at every opset.
    Always(&'static [&'static str]),
    /// `before` below opset `since`, `from` at `since` and later: ONNX moved them between attributes and inputs.
    Since {
        since: i64,
        before: &'static [&'static str],
        from: &'static [&'static str],
    },
}

impl Attributes {
    /// The names allowed at `opset`.
    pub fn at(self, opset: i64) -> &'static [&'static str] {
        match self {
            Self::Always(names) => names,
            Self::Since { since, before, .. } if opset < since => before,
            Self::Since { from, .. } => from,
        }
    }
}

/// What sensgrid knows about one op of the default ONNX domain: the start of one description per op, which
/// the coordinator, shape inference and the executor all read.
pub struct Op {
    /// As ONNX spells it.
    pub op_type: &'static str,
    pub attributes: Attributes,
    /// Refuses the attribute values (and optional inputs and outputs) the executor does not run, given the
    /// node and the graph's opset. Where a kernel parses values, it calls the same function this one does
    /// ([`ResizeAttrs::read`], [`LstmAttrs::read`], [`Window::read`], ...), so there is one rule.
    check: fn(&Node, i64) -> Result<()>,
}

/// An op whose attributes, `attributes` at every opset, the executor takes at any value.
const fn op(op_type: &'static str, attributes: &'static [&'static str]) -> Op {
    Op {
        op_type,
        attributes: Attributes::Always(attributes),
        check: any_values,
    }
}

/// An op with `attributes` at every opset, whose values `check` refuses or not.
const fn checked(
    op_type: &'static str,
    attributes: &'static [&'static str],
    check: fn(&Node, i64) -> Result<()>,
) -> Op {
    Op {
        op_type,
        attributes: Attributes::Always(attributes),
        check,
    }
}

/// An op whose attributes, `before` below opset `since` and `from` after, the executor takes at any value.
const fn since(
    op_type: &'static str,
    since: i64,
    before: &'static [&'static str],
    from: &'static [&'static str],
) -> Op {
    Op {
        op_type,
        attributes: Attributes::Since { since, before, from },
        check: any_values,
    }
}

/// Every op the worker's executor runs, sorted by op type. The executor's kernel table has exactly these keys
/// (a worker test checks it); `Constant` is absent because loading turns `Constant` nodes into constants of
/// the IR.
pub const OPS: &[Op] = &[
    op("Add", &[]),
    checked(
        "AveragePool",
        &[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "kernel_shape",
            "pads",
            "strides",
        ],
        check_pool,
    ),
    checked(
        "BatchNormalization",
        &["epsilon", "momentum", "spatial", "training_mode"],
        check_batch_norm,
    ),
    checked("Cast", &["saturate", "to"], |node, _| cast_target(node).map(drop)),
    // Before opset 11 the bounds are attributes; from 11 on they are optional inputs.
    since("Clip", 11, &["max", "min"], &[]),
    checked("Concat", &["axis"], |node, _| required_int(node, "axis").map(drop)),
    checked(
        "Conv",
        &["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"],
        check_conv,
    ),
    checked(
        "ConvTranspose",
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "output_padding",
            "pads",
            "strides",
        ],
        check_conv_transpose,
    ),
    op("Div", &[]),
    op("Erf", &[]),
    op("Expand", &[]),
    op("Flatten", &["axis"]),
    op("Gather", &["axis"]),
    op("Gemm", &["alpha", "beta", "transA", "transB"]),
    op("GlobalAveragePool", &[]),
    op("HardSigmoid", &["alpha", "beta"]),
    op("HardSwish", &[]),
    op("Identity", &[]),
    checked(
        "LSTM",
        &["activations", "direction", "hidden_size", "input_forget", "layout"],
        |node, _| LstmAttrs::read(node).map(drop),
    ),
    op("LeakyRelu", &["alpha"]),
    op("MatMul", &[]),
    checked(
        "MaxPool",
        &[
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ],
        check_max_pool,
    ),
    op("Mul", &[]),
    op("Pow", &[]),
    // From opset 18 the axes are an optional input.
    since(
        "ReduceMean",
        18,
        &["axes", "keepdims"],
        &["keepdims", "noop_with_empty_axes"],
    ),
    op("Relu", &[]),
    op("Reshape", &["allowzero"]),
    checked(
        "Resize",
        // cubic_coeff_a and extrapolation_value only matter to modes refused by the check: accepted, unused.
        &[
            "antialias",
            "coordinate_transformation_mode",
            "cubic_coeff_a",
            "exclude_outside",
            "extrapolation_value",
            "keep_aspect_ratio_policy",
            "mode",
            "nearest_mode",
        ],
        |node, opset| ResizeAttrs::read(node, opset).map(drop),
    ),
    op("Shape", &["end", "start"]),
    op("Sigmoid", &[]),
    since("Slice", 10, &["axes", "ends", "starts"], &[]),
    op("Softmax", &["axis"]),
    since("Split", 13, &["axis", "split"], &["axis", "num_outputs"]),
    op("Sqrt", &[]),
    since("Squeeze", 13, &["axes"], &[]),
    op("Sub", &[]),
    op("Tanh", &[]),
    op("Tile", &[]),
    op("Transpose", &["perm"]),
    since("Unsqueeze", 13, &["axes"], &[]),
];

/// The op types of [`OPS`], in the same order.
pub const SUPPORTED_OPS: &[&str] = &{
    let mut names = [""; OPS.len()];
    let mut i = 0;
    while i < OPS.len() {
        names[i] = OPS[i].op_type;
        i += 1;
    }
    names
};

/// The element types the executor holds tensors in (libtorch has no unsigned types wider than 8 bits).
pub const TENSOR_TYPES: &[DataType] = &[
    DataType::Float,
    DataType::Double,
    DataType::Float16,
    DataType::Bfloat16,
    DataType::Int64,
    DataType::Int32,
    DataType::Int16,
    DataType::Int8,
    DataType::Uint8,
    DataType::Bool,
];

/// The description of `node`'s op, when sensgrid runs it.
pub fn describe(node: &Node) -> Option<&'static Op> {
    if !node.domain.is_empty() {
        return None;
    }
    OPS.binary_search_by(|op| op.op_type.cmp(&node.op_type))
        .ok()
        .map(|i| &OPS[i])
}

/// Whether sensgrid runs `node`'s op.
pub fn is_supported(node: &Node) -> bool {
    describe(node).is_some()
}

/// The int attribute `name` of `node`, which its op requires.
///
/// # Errors
/// The attribute missing or not an int.
pub fn required_int(node: &Node, name: &str) -> Result<i64> {
    node.attr_int(name)?.ok_or_else(|| node.attr_error(name, "is required"))
}

/// The element type Cast `node` converts to: its `to`, one of [`TENSOR_TYPES`].
///
/// # Errors
/// `to` missing, unknown, or a type the executor does not hold.
pub fn cast_target(node: &Node) -> Result<DataType> {
    let to = required_int(node, "to")?;
    i32::try_from(to)
        .ok()
        .and_then(DataType::from_onnx)
        .filter(|dtype| TENSOR_TYPES.contains(dtype))
        .ok_or_else(|| node.attr_error("to", format!("element type {to} is not supported")))
}

/// An op whose attributes the executor takes at any value (their types are checked where they are read).
fn any_values(_: &Node, _: i64) -> Result<()> {
    Ok(())
}

fn check_conv(node: &Node, _: i64) -> Result<()> {
    window::conv_group(node)?;
    Window::read(node)?;
    Ok(())
}

fn check_conv_transpose(node: &Node, opset: i64) -> Result<()> {
    check_conv(node, opset)?;
    // libtorch's transposed convolution pads both sides alike; SAME's odd pad would need the output size.
    if Window::read(node)?.is_same() {
        let auto_pad = node.attr_string("auto_pad")?.unwrap_or_default();
        return Err(node.attr_error(
            "auto_pad",
            format!("{auto_pad} is not supported (NOTSET and VALID are)"),
        ));
    }
    Ok(())
}

fn check_pool(node: &Node, _: i64) -> Result<()> {
    Window::read(node)?.pool_kernel(node)?;
    Ok(())
}

fn check_max_pool(node: &Node, opset: i64) -> Result<()> {
    check_pool(node, opset)?;
    if node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(node.error("the Indices output is not supported"));
    }
    Ok(())
}

fn check_batch_norm(node: &Node, _: i64) -> Result<()> {
    if node.attr_int("training_mode")?.unwrap_or(0) != 0 {
        return Err(node.attr_error("training_mode", "only inference (0) is supported"));
    }
    if node.attr_int("spatial")?.unwrap_or(1) != 1 {
        return Err(node.attr_error("spatial", "only 1 is supported"));
    }
    if node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(node.error("only the Y output is supported (inference mode)"));
    }
    Ok(())
}

/// Refuses `node`, whose op is `op`, when it carries an attribute or value the executor does not run.
fn check_node(op: &Op, node: &Node, opset: i64) -> Result<()> {
    let allowed = op.attributes.at(opset);
    if let Some((name, _)) = node
        .attributes
        .iter()
        .find(|(name, _)| !allowed.contains(&name.as_str()))
    {
        let at = match op.attributes {
            Attributes::Always(_) => String::new(),
            Attributes::Since { .. } => format!(" at opset {opset}"),
        };
        let supported = if allowed.is_empty() {
            "none".to_owned()
        } else {
            allowed.join(", ")
        };
        return Err(node.attr_error(name, format!("is not supported{at} (supported: {supported})")));
    }
    (op.check)(node, opset)
}

/// Refuses a graph the executor cannot run: an op outside [`OPS`], or an attribute or value its op's entry
/// refuses. The one refusal, which the executor, shape inference and the coordinator all give.
///
/// # Errors
/// Unsupported ops first: the first one named with its op, followed by every other one, so all gaps show at
/// once, then the supported ops. Else every refused attribute, each naming node, op and attribute, joined
/// by "; ".
pub fn check_supported(graph: &Graph) -> Result<()> {
    check_ops(graph)?;
    let mut refusals = graph
        .nodes
        .iter()
        .filter_map(|node| check_node(describe(node)?, node, graph.opset).err());
    let Some(first) = refusals.next() else { return Ok(()) };
    let others: Vec<String> = refusals.map(|e| e.to_string()).collect();
    if others.is_empty() {
        return Err(first);
    }
    Err(ModelError::Invalid(format!("{first}; {}", others.join("; "))))
}

fn check_ops(graph: &Graph) -> Result<()> {
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
    use crate::ir::Attr;

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

    fn graph(nodes: Vec<Node>) -> Graph {
        Graph {
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
            nodes,
            value_info: Default::default(),
        }
    }

    fn with_attrs(mut node: Node, attrs: Vec<(&str, Attr)>) -> Node {
        node.attributes = attrs.into_iter().map(|(n, a)| (n.to_owned(), a)).collect();
        node
    }

    #[test]
    fn the_refusal_names_every_unsupported_node() {
        let mut graph = graph(vec![node("relu", "Relu", "")]);
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

    #[test]
    fn ops_are_sorted_and_their_attributes_too() {
        for op in OPS {
            let Attributes::Since { before, from, .. } = op.attributes else {
                let names = op.attributes.at(0);
                assert!(names.windows(2).all(|w| w[0] < w[1]), "{}: {names:?}", op.op_type);
                continue;
            };
            for names in [before, from] {
                assert!(names.windows(2).all(|w| w[0] < w[1]), "{}: {names:?}", op.op_type);
            }
        }
    }

    #[test]
    fn every_refused_attribute_is_named_with_its_node_and_op() {
        let conv = with_attrs(
            node("conv", "Conv", ""),
            vec![("kernel_shape", Attr::Ints(vec![3, 3])), ("fancy", Attr::Int(1))],
        );
        let cubic = with_attrs(node("up", "Resize", ""), vec![("mode", Attr::String("cubic".into()))]);
        let err = check_supported(&graph(vec![conv.clone()])).unwrap_err().to_string();
        assert_eq!(
            err,
            "node 'conv' (Conv), attribute 'fancy': is not supported \
             (supported: auto_pad, dilations, group, kernel_shape, pads, strides)"
        );
        let err = check_supported(&graph(vec![conv, cubic])).unwrap_err().to_string();
        assert!(
            err.ends_with("; node 'up' (Resize), attribute 'mode': cubic is not supported (nearest and linear are)"),
            "{err}"
        );
    }

    #[test]
    fn attributes_that_became_inputs_are_refused_from_that_opset_on() {
        let squeeze = with_attrs(node("sq", "Squeeze", ""), vec![("axes", Attr::Ints(vec![0]))]);
        let mut graph = graph(vec![squeeze]);
        graph.opset = 11;
        check_supported(&graph).unwrap();
        graph.opset = 13;
        let err = check_supported(&graph).unwrap_err().to_string();
        assert_eq!(
            err,
            "node 'sq' (Squeeze), attribute 'axes': is not supported at opset 13 (supported: none)"
        );
    }

    #[test]
    fn values_the_executor_does_not_run_are_refused() {
        let refused = [
            (
                with_attrs(
                    node("bn", "BatchNormalization", ""),
                    vec![("training_mode", Attr::Int(1))],
                ),
                "attribute 'training_mode': only inference (0) is supported",
            ),
            (
                with_attrs(node("c", "Cast", ""), vec![("to", Attr::Int(4))]),
                "attribute 'to': element type 4 is not supported",
            ),
            (
                with_attrs(
                    node("l", "LSTM", ""),
                    vec![("hidden_size", Attr::Int(8)), ("clip", Attr::Float(1.0))],
                ),
                "attribute 'clip': is not supported",
            ),
            (
                with_attrs(
                    node("t", "ConvTranspose", ""),
                    vec![("auto_pad", Attr::String("SAME_UPPER".into()))],
                ),
                "attribute 'auto_pad': SAME_UPPER is not supported (NOTSET and VALID are)",
            ),
            (
                with_attrs(node("p", "MaxPool", ""), vec![("kernel_shape", Attr::Ints(vec![1; 4]))]),
                "attribute 'kernel_shape': [1, 1, 1, 1]: 1 to 3 axes are supported",
            ),
            (node("p", "AveragePool", ""), "attribute 'kernel_shape': is required"),
            (node("cat", "Concat", ""), "attribute 'axis': is required"),
        ];
        for (node, message) in refused {
            let err = check_supported(&graph(vec![node])).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
    }
}
