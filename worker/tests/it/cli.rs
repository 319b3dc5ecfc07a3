//! Issue 3: `worker inspect` and `worker infer` as users run them, including their refusals.

use std::path::Path;

use sensgrid_model::onnx;

use crate::oracle::{generated, json, mismatch, model, npy, scratch, worker};

#[test]
fn inspect_counts_equal_the_independent_fixture() {
    let fixture = json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inspect_counts.json"));
    let models = fixture.as_object().unwrap();
    assert_eq!(models.len(), 5);
    for (file, expected) in models {
        let shape: Vec<String> = expected["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap().to_string())
            .collect();
        let output = worker(&["inspect", &model(file), "--input-shape", &shape.join(","), "--json"]);
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["params"], expected["params"], "{file}: params");
        assert_eq!(report["flops"], expected["flops"], "{file}: flops");
        for key in ["inputs", "outputs", "op_histogram", "conventions"] {
            assert!(!report[key].is_null(), "{file}: {key} missing");
        }
        assert_eq!(report["inputs"][0]["shape"][1], 3, "{file}");
    }
}

#[test]
fn infer_writes_every_output() {
    // Split into three: one input, three outputs.
    let case = generated("node_cases.py", "nodes").join("split_opset11_split_attribute");
    let out = scratch("cli", "infer").join("y.npy");
    let output = worker(&[
        "infer",
        "--model",
        case.join("model.onnx").to_str().unwrap(),
        "--input",
        case.join("in_0.npy").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for (index, written) in ["y.npy", "y.1.npy", "y.2.npy"].iter().enumerate() {
        let actual = npy(&out.with_file_name(written));
        assert_eq!(
            mismatch(&actual, &npy(&case.join(format!("out_{index}.npy"))), 0.0),
            None,
            "{written}"
        );
    }
}

#[test]
fn infer_runs_a_pp_ocr_model_end_to_end() {
    let case = generated("reference.py", "reference").join("cls-48x192");
    let out = scratch("cli", "infer-cls").join("probs.npy");
    let output = worker(&[
        "infer",
        "--model",
        &model("ch_ppocr_mobile_v2.0_cls_infer.onnx"),
        "--input",
        case.join("input.npy").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let probs = npy(&out);
    assert_eq!(probs.size(), [2, 2]);
    assert_eq!(Vec::<i64>::try_from(probs.argmax(-1, false)).unwrap(), [0, 1]);
}

/// Exit code 2, one line on stderr that says what and where, no panic.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let output = worker(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(
        stderr.starts_with("error: ") && !stderr.contains("panicked"),
        "{stderr}"
    );
    for needle in needles {
        assert_eq!(
            stderr.matches(needle).count(),
            1,
            "{args:?}: '{needle}' not once in {stderr}"
        );
    }
    // The cause is said once, not repeated by the error chain.
    let parts: Vec<&str> = stderr.trim_end().split(": ").collect();
    let mut unique = parts.clone();
    unique.dedup();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), parts.len(), "{args:?}: repeated parts in {stderr}");
}

#[test]
fn bad_models_are_refused_with_one_line_and_exit_code_2() {
    let dir = scratch("cli", "bad-models");
    let bytes = std::fs::read(model("ch_PP-OCRv3_det_infer.onnx")).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let text = dir.join("readme.onnx");
    std::fs::write(&text, "# not a model\nhello\n").unwrap();
    let mut graph =
        onnx::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small_cnn/model.onnx")).unwrap();
    let renamed = graph.nodes.iter_mut().find(|n| n.op_type == "Relu").unwrap();
    renamed.op_type = "FancyActivation".into();
    let node_name = renamed.name.clone();
    let unknown = dir.join("unknown-op.onnx");
    onnx::write(&graph, &unknown).unwrap();
    let input = generated("reference.py", "reference").join("cls-48x192/input.npy");

    for path in [&truncated, &text, &unknown] {
        let path_str = path.to_str().unwrap();
        let needles: Vec<&str> = if path == &unknown {
            vec!["FancyActivation", &node_name]
        } else {
            vec![path_str, "not a valid ONNX model"]
        };
        assert_refused(&["inspect", path_str], &needles);
        let out = dir.join("out.npy");
        let infer = [
            "infer",
            "--model",
            path_str,
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        assert_refused(&infer, &needles);
    }
}
