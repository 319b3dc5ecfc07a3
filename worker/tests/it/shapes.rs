//! Static shape inference against the engine: on each PP-OCR model at the parity tests' two input sizes,
//! every tensor's shape from `sensgrid_model::analysis::shapes::infer` equals the shape the executor
//! produces on zeros of that size; the executor runs exactly the ops `sensgrid_model::ops` lists; and
//! `inspect` and `prune` need no `--input-shape` for a model whose input shape is fixed.

use std::path::Path;

use sensgrid_model::analysis::{count, shapes};
use sensgrid_model::onnx;
use sensgrid_model::ops::SUPPORTED_OPS;
use sensgrid_worker::exec::{Executor, registry};
use sensgrid_worker::pruning;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::oracle::{model, root, scratch, worker};

fn zeros(size: &[usize]) -> Tensor {
    let dims: Vec<i64> = size.iter().map(|&d| d as i64).collect();
    Tensor::zeros(&dims, (Kind::Float, Device::Cpu))
}

#[test]
fn the_kernel_table_runs_exactly_the_supported_ops() {
    let keys: Vec<&str> = registry::kernel_table().keys().copied().collect();
    assert_eq!(keys, SUPPORTED_OPS);
}

/// Compares every tensor's inferred shape with the recorded one, at each of `sizes` (the parity cases'
/// input shapes, `scripts/oracle/reference.py`).
fn check_model(file: &str, sizes: [[usize; 4]; 2]) {
    let graph = onnx::read(Path::new(&model(file))).unwrap();
    let executor = Executor::new(&graph, Device::Cpu).unwrap();
    for size in sizes {
        let recorded = pruning::record_shapes(&graph, &executor, &zeros(&size)).unwrap();
        let inferred = shapes::infer(&graph, &[size.to_vec()]).unwrap_or_else(|e| panic!("{file} at {size:?}: {e}"));
        let mut differences: Vec<String> = recorded
            .iter()
            .filter(|(name, dims)| inferred.get(*name) != Some(dims))
            .map(|(name, dims)| format!("'{name}': engine {dims:?}, inferred {:?}", inferred.get(name)))
            .chain(
                inferred
                    .keys()
                    .filter(|name| !recorded.contains_key(*name))
                    .map(|name| format!("'{name}': inferred but never produced")),
            )
            .collect();
        differences.sort();
        assert!(
            differences.is_empty(),
            "{file} at {size:?}: {} of {} tensors differ:\n{}",
            differences.len(),
            recorded.len(),
            differences.join("\n")
        );
        assert!(recorded.len() > 100, "{file}: only {} tensors compared", recorded.len());
    }
}

#[test]
fn v3det_shapes_equal_the_engines() {
    check_model("ch_PP-OCRv3_det_infer.onnx", [[1, 3, 320, 320], [1, 3, 256, 416]]);
}

#[test]
fn v4det_shapes_equal_the_engines() {
    check_model("ch_PP-OCRv4_det_infer.onnx", [[1, 3, 320, 320], [1, 3, 256, 416]]);
}

#[test]
fn v2rec_shapes_equal_the_engines() {
    check_model("ch_PP-OCRv2_rec_infer.onnx", [[1, 3, 32, 160], [1, 3, 32, 320]]);
}

#[test]
fn v4rec_shapes_equal_the_engines() {
    check_model("ch_PP-OCRv4_rec_infer.onnx", [[1, 3, 48, 160], [1, 3, 48, 320]]);
}

#[test]
fn cls_shapes_equal_the_engines() {
    check_model("ch_ppocr_mobile_v2.0_cls_infer.onnx", [[2, 3, 48, 192], [2, 3, 48, 96]]);
}

/// The small CNN's input is declared [1, 3, 32, 32]: groups, FLOPs and pruning work at that shape unasked,
/// with the FLOPs the engine's shapes give; a PP-OCR model's input is dynamic, and says what to pass.
#[test]
fn inspect_and_prune_take_a_fixed_input_shape_from_the_model() {
    let fixed = root().join("worker/tests/fixtures/small_cnn/model.onnx");
    let fixed = fixed.to_str().unwrap();
    let graph = onnx::read(Path::new(fixed)).unwrap();
    let executor = Executor::new(&graph, Device::Cpu).unwrap();
    let recorded = pruning::record_shapes(&graph, &executor, &zeros(&[1, 3, 32, 32])).unwrap();
    let engine_flops = count::flops(&graph, &|n| recorded.get(n).cloned()).unwrap();

    let run = |args: &[&str]| -> Value {
        let output = worker(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let report = run(&["inspect", fixed, "--json"]);
    assert_eq!(report["input_shape"], serde_json::json!([1, 3, 32, 32]));
    assert_eq!(report["flops"].as_u64(), Some(engine_flops));
    let groups = run(&["inspect", fixed, "--groups", "--json"]);
    let key = groups["groups"][0]["key"].as_str().unwrap();

    let dir = scratch("shapes", "fixed-input");
    let plan = dir.join("plan.json");
    std::fs::write(&plan, format!("{{\"{key}\": 0.5}}")).unwrap();
    let out = dir.join("pruned.onnx");
    let output = worker(&[
        "prune",
        "--model",
        fixed,
        "--plan",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("flops {engine_flops} -> ")), "{stderr}");
    assert!(stderr.contains("at [1, 3, 32, 32]"), "{stderr}");

    let dynamic = model("ch_PP-OCRv3_det_infer.onnx");
    for args in [
        vec!["inspect", dynamic.as_str(), "--groups"],
        vec![
            "prune",
            "--model",
            dynamic.as_str(),
            "--plan",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let output = worker(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("pass --input-shape"), "{stderr}");
    }
}
