//! Evaluation as PaddleOCR does it: configs, datasets in PaddleOCR's label formats, the eval transforms,
//! post-processing (DB, CTC, classification) and the metrics (hmean, accuracy).
//!
//! The worker feeds this crate model outputs; nothing here runs a model, so it stays free of libtorch.
