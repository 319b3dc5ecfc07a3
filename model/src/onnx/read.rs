//! ONNX protobuf to IR: tensors, attributes, `Constant` nodes turned into constants, nodes named and sorted,
//! then constant-only subgraphs folded.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::Path;

use prost::Message;

use super::pb;
use crate::error::{ModelError, Result};
use crate::fold::fold_constants;
use crate::ir::{Attr, DataType, Dim, Graph, Node, TensorData, TensorFact, ValueInfo};

/// The largest model file read: protobuf messages, and so ONNX files without external data, stop at 2 GiB.
/// The size is checked before the file is read.
pub const MAX_MODEL_BYTES: u64 = (2 << 30) - 1;

/// Reads and checks the ONNX model at `path`.
///
/// # Errors
/// A missing or unreadable file, one over [`MAX_MODEL_BYTES`], bytes that are not an ONNX model, or a model sensgrid cannot represent
/// (external data, string tensors, graph attributes, dangling or cyclic tensors); the error names the file and
/// the node or tensor at fault.
pub fn read(path: &Path) -> Result<Graph> {
    let io = |reason| ModelError::Io {
        path: path.into(),
        reason,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_MODEL_BYTES {
        return Err(ModelError::Invalid(format!(
            "{}: {size} bytes, more than the {MAX_MODEL_BYTES} bytes (2 GiB) an ONNX file can hold (protobuf's \
             limit; models with external data are not supported)",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode(&bytes).map_err(|err| match err {
        ModelError::Decode { reason, .. } => ModelError::Decode {
            path: path.into(),
            reason,
        },
        other => ModelError::Invalid(format!("{}: {other}", path.display())),
    })
}

/// Decodes an ONNX model from its bytes. See [`read`].
pub fn decode(bytes: &[u8]) -> Result<Graph> {
    let model = pb::ModelProto::decode(bytes).map_err(|reason| ModelError::Decode {
        path: "<bytes>".into(),
        reason,
    })?;
    let graph_pb = model
        .graph
        .ok_or_else(|| ModelError::Invalid("the model has no graph".into()))?;
    if graph_pb.node.is_empty() && graph_pb.output.is_empty() {
        return Err(ModelError::Invalid(
            "the model's graph is empty (is this an ONNX file?)".into(),
        ));
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| ModelError::Invalid("the model imports no opset of the default ONNX domain".into()))?;
    let other_opsets = model
        .opset_import
        .iter()
        .filter(|o| !(o.domain.is_empty() || o.domain == "ai.onnx"))
        .map(|o| (o.domain.clone(), o.version))
        .collect();

    let mut constants = BTreeMap::new();
    for init in &graph_pb.initializer {
        constants.insert(init.name.clone(), tensor(init, &init.name)?);
    }
    let mut nodes = Vec::with_capacity(graph_pb.node.len());
    let mut names = HashSet::new();
    for (index, node_pb) in graph_pb.node.iter().enumerate() {
        let node = node(node_pb, index, &mut names)?;
        if node.op_type == "Constant" && node.domain.is_empty() {
            let output = node.outputs.first().ok_or_else(|| node.error("has no output"))?;
            constants.insert(output.clone(), constant_value(&node)?);
        } else {
            nodes.push(node);
        }
    }
    let inputs = graph_pb
        .input
        .iter()
        .filter(|vi| !constants.contains_key(&vi.name))
        .map(value_info)
        .collect::<Result<Vec<_>>>()?;
    let outputs = graph_pb.output.iter().map(value_info).collect::<Result<Vec<_>>>()?;
    let mut value_info_map = BTreeMap::new();
    for vi in &graph_pb.value_info {
        if let Some(fact) = value_info(vi)?.fact {
            value_info_map.insert(vi.name.clone(), fact);
        }
    }

    let known: HashSet<&str> = inputs
        .iter()
        .map(|vi| vi.name.as_str())
        .chain(constants.keys().map(String::as_str))
        .collect();
    let nodes = topological_order(nodes, &known)?;
    for output in &outputs {
        let produced = known.contains(output.name.as_str()) || nodes.iter().any(|n| n.outputs.contains(&output.name));
        if !produced {
            return Err(ModelError::Invalid(format!(
                "graph output '{}' is produced by no node",
                output.name
            )));
        }
    }

    let mut graph = Graph {
        name: graph_pb.name,
        ir_version: model.ir_version,
        opset,
        other_opsets,
        producer_name: model.producer_name,
        producer_version: model.producer_version,
        metadata: model.metadata_props.into_iter().map(|e| (e.key, e.value)).collect(),
        inputs,
        outputs,
        constants,
        nodes,
        value_info: value_info_map,
    };
    fold_constants(&mut graph)?;
    Ok(graph)
}

fn node(node_pb: &pb::NodeProto, index: usize, names: &mut HashSet<String>) -> Result<Node> {
    let mut name = if node_pb.name.is_empty() {
        format!("{}_{index}", node_pb.op_type)
    } else {
        node_pb.name.clone()
    };
    if !names.insert(name.clone()) {
        name = format!("{name}_{index}");
        names.insert(name.clone());
    }
    let mut node = Node {
        name,
        op_type: node_pb.op_type.clone(),
        domain: if node_pb.domain == "ai.onnx" {
            String::new()
        } else {
            node_pb.domain.clone()
        },
        inputs: node_pb.input.clone(),
        outputs: node_pb.output.clone(),
        attributes: Vec::with_capacity(node_pb.attribute.len()),
    };
    for attr_pb in &node_pb.attribute {
        let value = attribute(attr_pb).map_err(|message| node.attr_error(&attr_pb.name, message))?;
        node.attributes.push((attr_pb.name.clone(), value));
    }
    Ok(node)
}

fn attribute(attr: &pb::AttributeProto) -> std::result::Result<Attr, String> {
    use pb::attribute_proto::AttributeType as T;
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| "a string that is not UTF-8".to_string());
    Ok(match attr.r#type() {
        T::Float => Attr::Float(attr.f),
        T::Int => Attr::Int(attr.i),
        T::String => Attr::String(text(&attr.s)?),
        T::Tensor => {
            let t = attr.t.as_ref().ok_or("a tensor attribute without a tensor")?;
            Attr::Tensor(tensor(t, &attr.name).map_err(|e| e.to_string())?)
        }
        T::Floats => Attr::Floats(attr.floats.clone()),
        T::Ints => Attr::Ints(attr.ints.clone()),
        T::Strings => Attr::Strings(
            attr.strings
                .iter()
                .map(|s| text(s))
                .collect::<std::result::Result<_, _>>()?,
        ),
        other => return Err(format!("attributes of type {} are not supported", other.as_str_name())),
    })
}

/// The value of a `Constant` node, from whichever of its attributes is set.
fn constant_value(node: &Node) -> Result<TensorData> {
    let built = if let Some(t) = node.attr_tensor("value")? {
        Some(t.clone())
    } else if let Some(v) = node.attr_float("value_float")? {
        TensorData::from_values(vec![], &[v])
    } else if let Some(v) = node.attr_floats("value_floats")? {
        TensorData::from_values(vec![v.len()], v)
    } else if let Some(v) = node.attr_int("value_int")? {
        TensorData::from_values(vec![], &[v])
    } else if let Some(v) = node.attr_ints("value_ints")? {
        TensorData::from_values(vec![v.len()], v)
    } else {
        return Err(node.error("has none of the attributes value, value_float(s), value_int(s)"));
    };
    built.ok_or_else(|| node.error("has an inconsistent value"))
}

/// Converts a TensorProto, whichever field holds its values.
pub(super) fn tensor(t: &pb::TensorProto, name: &str) -> Result<TensorData> {
    let err = |message: String| ModelError::Tensor {
        tensor: name.to_owned(),
        message,
    };
    if t.data_location == pb::tensor_proto::DataLocation::External as i32 {
        return Err(err(
            "external data is not supported: save the model with its weights inside".into(),
        ));
    }
    let dtype = DataType::from_onnx(t.data_type)
        .ok_or_else(|| err(format!("element type {} is not supported", t.data_type)))?;
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(format!("negative dimension in {:?}", t.dims))))
        .collect::<Result<Vec<_>>>()?;
    // The shape is only a claim until the data matches it (`TensorData::from_bytes`): nothing is sized by it.
    let empty = dims.contains(&0);
    let bytes = if !t.raw_data.is_empty() || empty {
        t.raw_data.clone()
    } else {
        let mut out = Vec::new();
        match dtype {
            DataType::Float => t
                .float_data
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            DataType::Double => t
                .double_data
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            DataType::Int64 => t
                .int64_data
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            DataType::Uint64 => t
                .uint64_data
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            DataType::Uint32 => t
                .uint64_data
                .iter()
                .for_each(|&v| out.extend_from_slice(&(v as u32).to_le_bytes())),
            // The narrower types (and float16 bit patterns) are stored one per int32.
            _ => {
                let width = dtype.size();
                t.int32_data
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()[..width]))
            }
        }
        out
    };
    let len = bytes.len();
    TensorData::from_bytes(dtype, dims.clone(), bytes)
        .ok_or_else(|| err(format!("{len} bytes of data for shape {dims:?} of {dtype}")))
}

fn value_info(vi: &pb::ValueInfoProto) -> Result<ValueInfo> {
    let Some(pb::type_proto::Value::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(ValueInfo {
            name: vi.name.clone(),
            fact: None,
        });
    };
    let dtype = DataType::from_onnx(tt.elem_type).ok_or_else(|| ModelError::Tensor {
        tensor: vi.name.clone(),
        message: format!("element type {} is not supported", tt.elem_type),
    })?;
    let shape = tt.shape.as_ref().map(|shape| {
        shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => Dim::Known(*v as usize),
                Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() && p != "?" => {
                    Dim::Symbolic(p.clone())
                }
                _ => Dim::Unknown,
            })
            .collect()
    });
    Ok(ValueInfo {
        name: vi.name.clone(),
        fact: Some(TensorFact { dtype, shape }),
    })
}

/// Orders nodes so that each comes after the producers of its inputs, keeping file order where it can.
fn topological_order(nodes: Vec<Node>, known: &HashSet<&str>) -> Result<Vec<Node>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for output in node.outputs.iter().filter(|o| !o.is_empty()) {
            if known.contains(output.as_str()) || producer.insert(output, i).is_some() {
                return Err(node.error(format!("output '{output}' is produced more than once")));
            }
        }
    }
    let mut waiting = vec![0usize; nodes.len()];
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for input in node.inputs.iter().filter(|name| !name.is_empty()) {
            match producer.get(input.as_str()) {
                Some(&p) => {
                    waiting[i] += 1;
                    consumers[p].push(i);
                }
                None if known.contains(input.as_str()) => {}
                None => return Err(node.error(format!("input '{input}' is produced by no node, input or constant"))),
            }
        }
    }
    // Always taking the earliest ready node keeps the file's order when it is already topological.
    let mut ready: BinaryHeap<Reverse<usize>> = (0..nodes.len()).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &c in &consumers[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    if order.len() != nodes.len() {
        let stuck = (0..nodes.len()).find(|i| !order.contains(i)).unwrap_or(0);
        return Err(nodes[stuck].error("is part of a cycle"));
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|i| slots[i].take().expect("each node once"))
        .collect())
}
