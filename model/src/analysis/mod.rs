//! Whole-graph analyses over the IR.

pub mod count;
pub mod groups;
pub mod shapes;
