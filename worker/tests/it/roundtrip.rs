//! Issue 3: reading a model into the IR and writing it back keeps onnxruntime's outputs identical.

use std::process::Command;

use sensgrid_model::onnx;

use crate::oracle::{generated, root};

#[test]
fn written_models_give_identical_onnxruntime_outputs() {
    let reference = generated("reference.py", "reference");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("roundtrip");
    std::fs::create_dir_all(&dir).unwrap();
    for (file, case) in [
        ("ch_PP-OCRv3_det_infer.onnx", "v3det-256x416"),
        ("ch_PP-OCRv4_det_infer.onnx", "v4det-256x416"),
        ("ch_PP-OCRv2_rec_infer.onnx", "v2rec-32x320"),
        ("ch_PP-OCRv4_rec_infer.onnx", "v4rec-48x320"),
        ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls-48x192"),
    ] {
        let original = root().join("models").join(file);
        let rewritten = dir.join(file);
        onnx::write(&onnx::read(&original).unwrap(), &rewritten).unwrap();
        let output = Command::new(root().join(".oracle/bin/python"))
            .arg(root().join("scripts/oracle/same_outputs.py"))
            .args([&original, &rewritten, &reference.join(case).join("input.npy")])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
