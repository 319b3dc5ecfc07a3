//! The IR: a graph of named tensors. See `README.md` beside this file.

mod graph;
mod node;
mod tensor;

pub use graph::{Graph, ValueInfo};
pub use node::{Attr, Node};
pub use tensor::{DataType, Dim, Element, TensorData, TensorFact};
