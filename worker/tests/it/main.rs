//! The worker's integration tests, one binary with a module per area.

mod binary;
mod cli;
mod depgraph;
mod eval;
mod incremental;
mod node_cases;
mod oracle;
mod parity;
mod prune_cases;
mod prune_cli;
mod pruning;
mod recover;
mod roundtrip;
mod shapes;
mod tch_conv;
