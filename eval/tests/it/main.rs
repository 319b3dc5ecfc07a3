//! The eval crate's integration tests, one module per area.

mod bundle;
mod config;
mod dataset;
mod det;
mod hostile;
mod image;
mod rec;
mod synth;
mod transforms;
