//! ONNX models as sensgrid sees them: the IR read from and written back to ONNX, the channel dependency groups
//! that pruning removes together, structural pruning and FLOPs counting.
//!
//! Pure Rust: no libtorch, no networking, no database, so its tests run fast anywhere. Running a model belongs
//! to the worker's executor.

pub mod analysis;
pub mod error;
mod fold;
pub mod fuzzing;
pub mod ir;
pub mod onnx;
pub mod ops;
pub mod prune;

pub use error::{ModelError, Result};
