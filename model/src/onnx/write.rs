//! IR to ONNX protobuf. Constants become initializers; nodes keep their names, order and attributes.

use std::path::Path;

use prost::Message;

use super::pb;
use crate::error::{ModelError, Result};
use crate::ir::{Attr, Dim, Graph, TensorData, ValueInfo};

/// Writes `graph` as an ONNX file at `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn write(graph: &Graph, path: &Path) -> Result<()> {
    std::fs::write(path, encode(graph)).map_err(|reason| ModelError::Io {
        path: path.into(),
        reason,
    })
}

/// Encodes `graph` as the bytes of an ONNX model.
pub fn encode(graph: &Graph) -> Vec<u8> {
    let mut opset_import = vec![pb::OperatorSetIdProto {
        domain: String::new(),
        version: graph.opset,
    }];
    opset_import.extend(
        graph
            .other_opsets
            .iter()
            .map(|(domain, version)| pb::OperatorSetIdProto {
                domain: domain.clone(),
                version: *version,
            }),
    );
    let model = pb::ModelProto {
        // Initializers that are not graph inputs need IR version 4 or later.
        ir_version: graph.ir_version.max(4),
        opset_import,
        producer_name: graph.producer_name.clone(),
        producer_version: graph.producer_version.clone(),
        domain: String::new(),
        model_version: 0,
        graph: Some(pb::GraphProto {
            node: graph.nodes.iter().map(node).collect(),
            name: graph.name.clone(),
            initializer: graph.constants.iter().map(|(name, t)| tensor(name, t)).collect(),
            input: graph.inputs.iter().map(value_info).collect(),
            output: graph.outputs.iter().map(value_info).collect(),
            value_info: graph
                .value_info
                .iter()
                .map(|(name, fact)| {
                    value_info(&ValueInfo {
                        name: name.clone(),
                        fact: Some(fact.clone()),
                    })
                })
                .collect(),
        }),
        metadata_props: graph
            .metadata
            .iter()
            .map(|(key, value)| pb::StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    };
    model.encode_to_vec()
}

fn node(node: &crate::ir::Node) -> pb::NodeProto {
    pb::NodeProto {
        input: node.inputs.clone(),
        output: node.outputs.clone(),
        name: node.name.clone(),
        op_type: node.op_type.clone(),
        domain: node.domain.clone(),
        attribute: node
            .attributes
            .iter()
            .map(|(name, value)| attribute(name, value))
            .collect(),
    }
}

fn attribute(name: &str, value: &Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType as T;
    let mut attr = pb::AttributeProto {
        name: name.to_owned(),
        ..Default::default()
    };
    let kind = match value {
        Attr::Float(v) => {
            attr.f = *v;
            T::Float
        }
        Attr::Int(v) => {
            attr.i = *v;
            T::Int
        }
        Attr::String(v) => {
            attr.s = v.clone().into_bytes();
            T::String
        }
        Attr::Tensor(t) => {
            attr.t = Some(tensor("", t));
            T::Tensor
        }
        Attr::Floats(v) => {
            attr.floats = v.clone();
            T::Floats
        }
        Attr::Ints(v) => {
            attr.ints = v.clone();
            T::Ints
        }
        Attr::Strings(v) => {
            attr.strings = v.iter().map(|s| s.clone().into_bytes()).collect();
            T::Strings
        }
    };
    attr.set_type(kind);
    attr
}

fn tensor(name: &str, t: &TensorData) -> pb::TensorProto {
    pb::TensorProto {
        dims: t.dims().iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        name: name.to_owned(),
        raw_data: t.bytes().to_vec(),
        ..Default::default()
    }
}

fn value_info(vi: &ValueInfo) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let r#type = vi.fact.as_ref().map(|fact| pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: fact.dtype.onnx_code(),
            shape: fact.shape.as_ref().map(|dims| pb::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|d| Dimension {
                        value: match d {
                            Dim::Known(v) => Some(Value::DimValue(*v as i64)),
                            Dim::Symbolic(p) => Some(Value::DimParam(p.clone())),
                            Dim::Unknown => None,
                        },
                    })
                    .collect(),
            }),
        })),
    });
    pb::ValueInfoProto {
        name: vi.name.clone(),
        r#type,
    }
}
