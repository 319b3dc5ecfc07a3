//! The eval crate's integration tests, one module per area.

mod config;
mod det;
mod rec;
