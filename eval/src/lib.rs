//! Evaluation as PaddleOCR does it: configs, datasets in PaddleOCR's label formats, the eval transforms,
//! post-processing (DB, CTC, classification) and the metrics (hmean, accuracy).
//!
//! The worker feeds this crate model outputs; nothing here runs a model, so it stays free of libtorch.
//!
//! - [`config`]: PaddleOCR YAML configs and `-o` overrides, with typed views of the sections sensgrid uses.
//! - [`det`]: DB post-processing of detection maps into boxes, and the detection metric (hmean).
//! - [`rec`]: character dictionaries, CTC decoding, recognition targets and the metric (acc, norm_edit_dis).
//! - [`cls`]: text-direction targets, post-processing and accuracy.
//! - [`metric_dict`]: any of the metrics under PaddleOCR's names.
//! - [`substitute`]: which line PaddleOCR evaluates in place of one whose transforms fail.

pub mod config;

pub use config::{Config, ConfigError};

pub mod det;

pub mod cls;
pub mod metric_dict;
mod numeric;
pub mod rec;
pub mod substitute;
