//! ONNX operator semantics that do not depend on where tensors live: one description per op ([`Op`], the
//! table [`OPS`] in `table.rs`) holding every fact `model` knows about it (attributes, shape rule, channel
//! rule, cost, folding, weights, fp16 exemptions), and how shape-changing ops map input shapes and values to
//! outputs. The coordinator, constant folding, static shape inference, the channel groups, the counts,
//! pruning and the worker's executor all read the entry, so they cannot disagree; nothing else decides by
//! op type.

pub mod lstm;
pub mod resize;
pub mod shape;
mod table;
pub mod window;

use crate::analysis::shapes;
use crate::error::{ModelError, Result};
use crate::ir::{DataType, Graph, Node, TensorData};
use lstm::LstmAttrs;
use resize::ResizeAttrs;
pub use table::OPS;
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

/// Everything `model` knows about one op of the default ONNX domain, read by the coordinator, shape
/// inference, the channel groups, the counts, constant folding, pruning and the executor. Every field is
/// required, so a new op states each fact; where an op has none of something, its entry says so by name
/// ([`Cost::Uncounted`], [`Fold::Never`], [`Weights::None`], [`Channels::Opaque`]).
pub struct Op {
    /// As ONNX spells it.
    pub op_type: &'static str,
    pub attributes: Attributes,
    /// Refuses the attribute values (and optional inputs and outputs) the executor does not run, given the
    /// node and the graph's opset. Where a kernel parses values, it calls the same function this one does
    /// ([`ResizeAttrs::read`], [`LstmAttrs::read`], [`Window::read`], ...), so there is one rule.
    check: fn(&Node, i64) -> Result<()>,
    /// Its output shapes from its input shapes (and the values of small inputs): `analysis::shapes`.
    pub(crate) shape: shapes::Rule,
    /// How its output channels follow from its inputs': the rule of the channel-group walk.
    pub channels: Channels,
    /// Its multiply-accumulates.
    pub cost: Cost,
    /// Whether its values are computed before running.
    pub fold: Fold,
    /// Which of its inputs hold weights.
    pub weights: Weights,
    /// The inputs whose float32 constants stay float32 when the model runs in fp16.
    pub fp32_inputs: &'static [usize],
}

/// How an op maps the channels of its inputs to those of its outputs, which `analysis::groups` walks.
/// A channel that reaches an op without a mapping cannot be pruned ([`Channels::Opaque`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// Conv, or ConvTranspose (`transposed`: its weight holds input channels on axis 0, output channels on
    /// axis 1): its filters create new channels, except a depthwise conv's, which pass its input's on; its
    /// weight's input axis is coupled to the channels it reads. Structural pruning keeps a depthwise conv's
    /// group count equal to its channel count.
    Conv { transposed: bool },
    /// Gemm with a constant B: a dense layer over axis 1.
    Gemm,
    /// MatMul with a constant 2-D right operand: a dense layer over the last axis.
    MatMul,
    /// Normalizes each channel of axis 1 with per-channel constants on the inputs `parameters`.
    Norm { parameters: &'static [usize] },
    /// One data input (input 0) whose channels pass through unchanged: element-wise and per-channel
    /// spatial ops. Its other inputs are parameters that treat every channel alike.
    PassThrough,
    /// Element-wise over broadcast operands: the channels of its operands are coupled.
    Broadcast,
    /// Joins its inputs along its axis.
    Concat,
    /// Splits its input into parts along its axis.
    Split,
    /// Takes a range of some axes.
    Slice,
    /// Permutes the axes.
    Transpose,
    /// Reshapes, passing the channel axis on where it stays whole. Where `target` is `Some(i)`, input `i`
    /// holds a target shape whose entry for the channel axis structural pruning rewrites.
    Reshape { target: Option<usize> },
    /// Reduces some axes: blocks the channels reduced over.
    Reduce,
    /// Normalizes along its axis (Softmax): blocks the channels normalized over.
    NormalizeAlongAxis,
    /// Reads only its input's shape, never its values: channels end here.
    ShapeOnly,
    /// No declared channel mapping: channels that reach it cannot be pruned.
    Opaque,
}

/// The multiply-accumulates of one node of a graph, given the shape of every tensor it reads or writes.
pub type MacsRule = fn(&Graph, &Node, &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<u64>;

/// What an op costs, by PaddleSlim's conventions (`analysis::count::CONVENTIONS`).
#[derive(Clone, Copy)]
pub enum Cost {
    /// Counted by its formula (in `analysis::count`).
    Macs(MacsRule),
    /// Not counted: element-wise ops, pooling, resizing, data movement and LSTM, as PaddleSlim counts.
    Uncounted,
}

/// The output of one node from the values of its inputs: the node, the graph's opset, input 0, and every
/// input (`inputs[i]` None where input `i` is absent). None when the values are not computed here (an
/// element type not handled).
pub type Evaluate = fn(&Node, i64, &TensorData, &[Option<&TensorData>]) -> Result<Option<TensorData>>;

/// Whether an op's values are computed before running (`fold`).
#[derive(Clone, Copy)]
pub enum Fold {
    /// Moves or converts values: folded at load when every input is constant, so the weights Paddle builds
    /// through Reshape, Concat and Slice are plain constants; evaluated on known values by shape inference.
    AtLoad(Evaluate),
    /// Evaluated on known values by shape inference (Paddle's run-time shape arithmetic), but left in the
    /// graph at load, where it runs in the worker.
    ValuesOnly(Evaluate),
    /// Its value is its input's shape, known to shape inference whenever that shape is.
    InputShape,
    /// Never evaluated before running.
    Never,
}

/// Which inputs of an op hold weights: what the parameter count, the groups' costs, the run spec and the
/// pruning criteria read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// No input holds weights counted as parameters.
    None,
    /// A weighted op (Conv, ConvTranspose, Gemm, MatMul): the constant on input `filters` maps input
    /// channels to output channels; the constants on `params` are its parameters.
    Filters { filters: usize, params: &'static [usize] },
    /// A normalization: the constants on `params` are its parameters, of which those on `statistics` are
    /// running statistics, not learned weights.
    Norm {
        params: &'static [usize],
        statistics: &'static [usize],
    },
    /// A constant operand added to a conv's output is that conv's bias: Paddle exports conv biases so.
    ConvBias,
}

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

/// The description of `node`'s op, for every analysis that meets a node: an op outside the table is an
/// error there, never a default.
///
/// # Errors
/// An op outside [`OPS`], naming the node and its op.
pub fn op_of(node: &Node) -> Result<&'static Op> {
    describe(node).ok_or_else(|| node.error("unsupported op: it has no entry in the op table"))
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
    fn an_op_outside_the_table_is_an_error_in_every_analysis_not_a_default() {
        use crate::analysis::{count, groups};
        let mut nz = node("nz", "NonZero", "");
        nz.inputs = vec!["x".into()];
        nz.outputs = vec!["y".into()];
        let graph = graph(vec![nz]);
        let named = "node 'nz' (NonZero): unsupported op: it has no entry in the op table";
        let no_shapes = |_: &str| Some(vec![1]);
        assert_eq!(count::params(&graph).unwrap_err().to_string(), named);
        assert_eq!(count::flops(&graph, &no_shapes).unwrap_err().to_string(), named);
        assert_eq!(groups::analyse(&graph, &no_shapes).unwrap_err().to_string(), named);
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
