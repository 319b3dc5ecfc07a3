//! The model crate's integration tests on the real PP-OCR exports (`make setup` puts them in `models/`).

mod groups;
mod load;
mod planner;
mod shapes;

use std::path::PathBuf;

/// The path of a model that `make setup` extracted.
pub fn model_path(file: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(file);
    assert!(path.exists(), "{} is missing: run `make setup`", path.display());
    path
}

/// The five models of the engine's parity tests.
pub const MODELS: [&str; 5] = [
    "ch_PP-OCRv3_det_infer.onnx",
    "ch_PP-OCRv4_det_infer.onnx",
    "ch_PP-OCRv2_rec_infer.onnx",
    "ch_PP-OCRv4_rec_infer.onnx",
    "ch_ppocr_mobile_v2.0_cls_infer.onnx",
];
