//! Evaluation as PaddleOCR does it: configs, datasets in PaddleOCR's label formats, the eval transforms,
//! post-processing (DB, CTC, classification) and the metrics (hmean, accuracy).
//!
//! The worker feeds this crate model outputs; nothing here runs a model, so it stays free of libtorch.
//!
//! - [`config`]: PaddleOCR YAML configs and `-o` overrides, with typed views of the sections sensgrid uses.
//! - [`det`]: DB post-processing of detection maps into boxes, and the detection metric (hmean).

pub mod config;

pub use config::{Config, ConfigError};

pub mod det;
