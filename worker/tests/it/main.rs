//! The worker's integration tests, one binary with a module per area.

mod binary;
mod tch_conv;
