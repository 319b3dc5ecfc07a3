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
//! - [`image`], [`resize`]: decoding PNG and JPEG as `cv2.imdecode` does, and `cv2.resize` (bilinear, uint8)
//!   bit for bit.
//! - [`transforms`]: the eval transforms of a config, from image bytes and label to model input and target.
//! - [`dataset`], [`batch`]: PaddleOCR's `SimpleDataSet` eval sets, and batches of same-shape samples.
//! - [`evaluate`]: the eval set of a config opened, and model outputs post-processed and scored batch by
//!   batch into the metric dict.
//! - [`bundle`]: an eval set packed into one tar for workers on other machines, and unpacked there.
//! - [`synth`]: synthetic det, rec and cls datasets in PaddleOCR's layout, rendered deterministically.

pub mod config;

pub use config::{Config, ConfigError};

pub mod det;
pub mod evaluate;

pub mod batch;
pub mod bundle;
pub mod cls;
pub mod dataset;
pub mod fuzzing;
pub mod image;
pub mod metric_dict;
mod numeric;
pub mod rec;
pub mod resize;
pub mod substitute;
pub mod synth;
pub mod transforms;
