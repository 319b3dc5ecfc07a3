//! Whole-graph analyses over the IR.

pub mod count;
