//! The coordinator's integration tests, one binary with a module per area.

mod cli;
mod deploy;
mod fuzz_replay;
mod health;
mod logs;
mod migrations;
mod paddleslim;
mod plots;
mod recover;
mod resume;
mod service;
mod store;
mod train_set;
