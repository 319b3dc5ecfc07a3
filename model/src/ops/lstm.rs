//! LSTM's attributes as the executor runs them: the default activations, no clip, layout 0, no coupled
//! input and forget gates, no peephole weights. [`LstmAttrs::read`] is both the refusal
//! ([`super::check_supported`]) and the worker kernel's parse.

use crate::error::Result;
use crate::ir::Node;

/// Which way the sequence is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

/// The attributes of one LSTM node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmAttrs {
    pub hidden_size: i64,
    pub direction: Direction,
}

impl LstmAttrs {
    /// Reads the node's attributes.
    ///
    /// # Errors
    /// A missing or non-positive hidden_size, an unknown direction, and any value (or the peephole input P)
    /// the executor does not run, named with the attribute.
    pub fn read(node: &Node) -> Result<Self> {
        let hidden_size = node
            .attr_int("hidden_size")?
            .filter(|&h| h > 0)
            .ok_or_else(|| node.attr_error("hidden_size", "a positive value is required"))?;
        let direction = match node.attr_string("direction")?.unwrap_or("forward") {
            "forward" => Direction::Forward,
            "reverse" => Direction::Reverse,
            "bidirectional" => Direction::Bidirectional,
            other => return Err(node.attr_error("direction", format!("unknown direction {other}"))),
        };
        if let Some(activations) = node.attr_strings("activations")?
            && activations.chunks(3).any(|a| a != ["Sigmoid", "Tanh", "Tanh"])
        {
            return Err(node.attr_error(
                "activations",
                format!("only Sigmoid, Tanh, Tanh is supported, got {activations:?}"),
            ));
        }
        for attr in ["layout", "input_forget"] {
            if node.attr_int(attr)?.unwrap_or(0) != 0 {
                return Err(node.attr_error(attr, "only 0 is supported"));
            }
        }
        if node.input(7).is_some() {
            return Err(node.error("peephole weights (input P) are not supported"));
        }
        Ok(Self { hidden_size, direction })
    }
}
