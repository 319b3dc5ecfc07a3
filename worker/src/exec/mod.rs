//! The executor: runs the IR of `sensgrid-model` with libtorch kernels on one device.
//!
//! Loading checks every node against `sensgrid_model::ops::check_supported` (the ops and attributes the
//! kernel table runs) and parses its attributes once, so an unsupported op or attribute is refused before
//! anything runs, naming the node. Constants are uploaded to
//! the device once. Running walks the nodes in order and drops each tensor after its last use.

pub mod device;
mod ops;
mod plan;
#[cfg(test)]
pub(crate) use plan::tests as plan_tests;
pub mod registry;

pub use device::{device_name, parse_device};
pub use plan::{Boundary, Executor};

use anyhow::{Context, Result};
use sensgrid_model::ir::Node;
use std::collections::HashMap;
use tch::Tensor;

/// A node's computation, with its attributes already parsed.
pub trait Kernel: Send {
    /// Computes the node's outputs; `inputs[i]` is None where the optional input is absent.
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>>;
}

impl<F: Fn(&[Option<&Tensor>]) -> Result<Vec<Tensor>> + Send> Kernel for F {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        self(inputs)
    }
}

/// What a kernel builder sees of its node at load.
pub struct BuildCtx<'a> {
    pub node: &'a Node,
    /// The default-domain opset, which decides attribute conventions (Softmax's axis, Squeeze's axes).
    pub opset: i64,
    /// The graph's constants, already on the device.
    pub constants: &'a HashMap<String, Tensor>,
}

impl BuildCtx<'_> {
    /// The value of input `index` when it is a constant.
    pub fn constant(&self, index: usize) -> Option<&Tensor> {
        self.node.input(index).and_then(|name| self.constants.get(name))
    }
}

/// Builds the kernel of one node, or refuses the node.
pub type Builder = fn(&BuildCtx) -> Result<Box<dyn Kernel>>;

/// The input at `index`, or an error when it is absent.
pub(crate) fn required<'a>(inputs: &[Option<&'a Tensor>], index: usize) -> Result<&'a Tensor> {
    inputs
        .get(index)
        .copied()
        .flatten()
        .with_context(|| format!("input {index} is required"))
}
