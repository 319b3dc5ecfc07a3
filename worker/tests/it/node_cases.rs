//! Issue 3: one-node models for every supported op and attribute the PP-OCR models leave out, built with
//! onnx.helper and checked against onnxruntime; and a small CNN exported by torch.onnx (committed fixture).

use std::path::Path;

use sensgrid_model::onnx;
use sensgrid_worker::exec::Executor;
use tch::{Device, Tensor};

use crate::oracle::{generated, json, mismatch, npy};

const TOLERANCE: f64 = 1e-4;

fn run_case(dir: &Path) -> Result<(), String> {
    let manifest = json(&dir.join("manifest.json"));
    let graph = onnx::read(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let executor = Executor::new(&graph, Device::Cpu).map_err(|e| format!("{e:#}"))?;
    let files = |key: &str| -> Vec<String> {
        manifest[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["file"].as_str().unwrap().to_owned())
            .collect()
    };
    let inputs: Vec<Tensor> = files("inputs").iter().map(|f| npy(&dir.join(f))).collect();
    let outputs = executor.run(&inputs).map_err(|e| format!("{e:#}"))?;
    for (i, (actual, file)) in outputs.iter().zip(files("outputs")).enumerate() {
        if let Some(problem) = mismatch(actual, &npy(&dir.join(&file)), TOLERANCE) {
            return Err(format!("output {i}: {problem}"));
        }
    }
    Ok(())
}

#[test]
fn every_one_node_case_matches_onnxruntime() {
    let root = generated("node_cases.py", "nodes");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|dir| {
            run_case(dir)
                .err()
                .map(|e| format!("{}: {e}", dir.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn torch_exported_small_cnn_matches_its_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small_cnn");
    let graph = onnx::read(&dir.join("model.onnx")).unwrap();
    assert!(!graph.nodes.iter().any(|n| n.op_type == "Constant"));
    assert!(graph.constants.len() >= 10, "initializer weights");
    let executor = Executor::new(&graph, Device::Cpu).unwrap();
    let outputs = executor.run(&[npy(&dir.join("input.npy"))]).unwrap();
    let expected = npy(&dir.join("expected.npy"));
    assert_eq!(mismatch(&outputs[0], &expected, TOLERANCE), None);
}
