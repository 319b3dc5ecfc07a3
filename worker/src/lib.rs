//! The sensgrid worker: runs ONNX models on libtorch and, as the issues land, masks and prunes channel
//! groups, evaluates them with `sensgrid-eval` and reports to the coordinator.

pub mod boundary_cache;
pub mod cli;
pub mod devices;
pub mod evaluate;
pub mod exec;
pub mod join;
pub mod latency;
pub mod malloc;
pub mod pruning;
pub mod recover;
