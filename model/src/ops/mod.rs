//! ONNX operator semantics that do not depend on where tensors live: how shape-changing ops map input
//! shapes and values to outputs. Constant folding here and the worker's kernels both use them, so the two
//! cannot disagree.

pub mod shape;
