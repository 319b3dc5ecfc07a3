//! Nodes of the IR and their attributes, with typed getters whose errors name node, op and attribute.

use super::TensorData;
use crate::error::{ModelError, Result};

/// An attribute value. Graph-valued attributes (If, Loop, Scan) are refused at load.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(TensorData),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Attr {
    fn kind(&self) -> &'static str {
        match self {
            Attr::Float(_) => "a float",
            Attr::Int(_) => "an int",
            Attr::String(_) => "a string",
            Attr::Tensor(_) => "a tensor",
            Attr::Floats(_) => "a list of floats",
            Attr::Ints(_) => "a list of ints",
            Attr::Strings(_) => "a list of strings",
        }
    }
}

/// One operation. Tensors are referred to by name; an absent optional input is the empty string, as in ONNX.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Unique within the graph; generated as `<op_type>_<index>` when the file leaves it empty.
    pub name: String,
    /// The ONNX op type, spelt as ONNX spells it ("Conv", "BatchNormalization").
    pub op_type: String,
    /// Empty for the default ONNX domain.
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// In file order.
    pub attributes: Vec<(String, Attr)>,
}

impl Node {
    /// An error about this node.
    pub fn error(&self, message: impl Into<String>) -> ModelError {
        ModelError::Node {
            node: self.name.clone(),
            op: self.op_type.clone(),
            message: message.into(),
        }
    }

    /// An error about one of this node's attributes.
    pub fn attr_error(&self, attr: &str, message: impl Into<String>) -> ModelError {
        ModelError::Attribute {
            node: self.name.clone(),
            op: self.op_type.clone(),
            attr: attr.to_owned(),
            message: message.into(),
        }
    }

    /// The attribute called `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// The input at `index`, or None when it is absent (missing or empty name).
    pub fn input(&self, index: usize) -> Option<&str> {
        self.inputs
            .get(index)
            .map(String::as_str)
            .filter(|name| !name.is_empty())
    }

    fn typed<'a, T>(&'a self, name: &str, get: impl Fn(&'a Attr) -> Option<T>, what: &str) -> Result<Option<T>> {
        match self.attr(name) {
            None => Ok(None),
            Some(attr) => get(attr)
                .map(Some)
                .ok_or_else(|| self.attr_error(name, format!("expected {what}, got {}", attr.kind()))),
        }
    }

    /// An int attribute, if present.
    pub fn attr_int(&self, name: &str) -> Result<Option<i64>> {
        self.typed(name, |a| if let Attr::Int(v) = a { Some(*v) } else { None }, "an int")
    }

    /// A float attribute, if present. An int attribute is accepted too: some exporters write 0 for 0.0.
    pub fn attr_float(&self, name: &str) -> Result<Option<f32>> {
        self.typed(
            name,
            |a| match a {
                Attr::Float(v) => Some(*v),
                Attr::Int(v) => Some(*v as f32),
                _ => None,
            },
            "a float",
        )
    }

    /// A string attribute, if present.
    pub fn attr_string(&self, name: &str) -> Result<Option<&str>> {
        self.typed(
            name,
            |a| {
                if let Attr::String(v) = a {
                    Some(v.as_str())
                } else {
                    None
                }
            },
            "a string",
        )
    }

    /// A list-of-ints attribute, if present.
    pub fn attr_ints(&self, name: &str) -> Result<Option<&[i64]>> {
        self.typed(
            name,
            |a| {
                if let Attr::Ints(v) = a {
                    Some(v.as_slice())
                } else {
                    None
                }
            },
            "a list of ints",
        )
    }

    /// A list-of-floats attribute, if present.
    pub fn attr_floats(&self, name: &str) -> Result<Option<&[f32]>> {
        self.typed(
            name,
            |a| {
                if let Attr::Floats(v) = a {
                    Some(v.as_slice())
                } else {
                    None
                }
            },
            "a list of floats",
        )
    }

    /// A list-of-strings attribute, if present.
    pub fn attr_strings(&self, name: &str) -> Result<Option<&[String]>> {
        self.typed(
            name,
            |a| {
                if let Attr::Strings(v) = a {
                    Some(v.as_slice())
                } else {
                    None
                }
            },
            "a list of strings",
        )
    }

    /// A tensor attribute, if present.
    pub fn attr_tensor(&self, name: &str) -> Result<Option<&TensorData>> {
        self.typed(
            name,
            |a| if let Attr::Tensor(v) = a { Some(v) } else { None },
            "a tensor",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> Node {
        Node {
            name: "conv_1".into(),
            op_type: "Conv".into(),
            domain: String::new(),
            inputs: vec!["x".into(), "w".into(), String::new()],
            outputs: vec!["y".into()],
            attributes: vec![
                ("group".into(), Attr::Int(2)),
                ("pads".into(), Attr::Ints(vec![1, 1, 1, 1])),
            ],
        }
    }

    #[test]
    fn getters_type_check_and_name_the_attribute() {
        let node = conv();
        assert_eq!(node.attr_int("group").unwrap(), Some(2));
        assert_eq!(node.attr_ints("pads").unwrap(), Some(&[1i64, 1, 1, 1][..]));
        assert_eq!(node.attr_int("missing").unwrap(), None);
        let err = node.attr_ints("group").unwrap_err().to_string();
        assert_eq!(
            err,
            "node 'conv_1' (Conv), attribute 'group': expected a list of ints, got an int"
        );
        assert_eq!(node.input(2), None);
        assert_eq!(node.input(1), Some("w"));
    }
}
