//! Issue 3: one-node models for every supported op and attribute the PP-OCR models leave out, built with
//! onnx.helper and checked against onnxruntime; and a small CNN exported by torch.onnx (committed fixture).
//! Issue 23: every op of the op table has node cases, and each of its entry's facets holds on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sensgrid_model::analysis::{count, groups, shapes};
use sensgrid_model::ir::Graph;
use sensgrid_model::onnx;
use sensgrid_model::ops::{self, Cost, OPS};
use sensgrid_worker::exec::{Executor, registry};
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

/// The case directories of `scripts/oracle/node_cases.py`, sorted.
fn case_dirs() -> Vec<PathBuf> {
    let root = generated("node_cases.py", "nodes");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

/// The shapes of a case's graph inputs and outputs, from its .npy files.
fn case_shapes(dir: &Path) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let manifest = json(&dir.join("manifest.json"));
    let shapes = |key: &str| -> Vec<Vec<usize>> {
        manifest[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let tensor = npy(&dir.join(v["file"].as_str().unwrap()));
                tensor.size().iter().map(|&d| d as usize).collect()
            })
            .collect()
    };
    (shapes("inputs"), shapes("outputs"))
}

/// Checks the facets of every op of `graph` (a case's model, inputs of `inputs`, outputs of `outputs`) that
/// the case can show: an entry; a kernel; the shape rule's output shapes equal onnxruntime's where the shapes
/// follow from the input shapes (a shape input fed at run time leaves them unknown before running, and
/// inference says so); the FLOPs formula, the parameter count and the channel rule run without error.
fn check_facets(graph: &Graph, inputs: &[Vec<usize>], outputs: &[Vec<usize>]) -> Result<(), String> {
    for node in &graph.nodes {
        ops::op_of(node).map_err(|e| e.to_string())?;
        if !registry::kernel_table().contains_key(node.op_type.as_str()) {
            return Err(format!("node '{}' ({}): no kernel", node.name, node.op_type));
        }
    }
    count::params(graph).map_err(|e| format!("params: {e}"))?;
    let inferred = match shapes::infer(graph, inputs) {
        Ok(inferred) => inferred,
        Err(e) if e.to_string().contains("is not known before running") => return Ok(()),
        Err(e) => return Err(format!("shapes: {e}")),
    };
    for (output, expected) in graph.outputs.iter().zip(outputs) {
        // A graph output that is a constant (a Constant node's) has no inferred shape: loading made it one.
        if graph.constants.contains_key(&output.name) {
            continue;
        }
        let got = inferred.get(&output.name);
        if got != Some(expected) {
            return Err(format!(
                "output '{}': inferred {got:?}, onnxruntime {expected:?}",
                output.name
            ));
        }
    }
    count::flops_at(graph, inputs).map_err(|e| format!("flops: {e}"))?;
    groups::analyse_at(graph, inputs).map_err(|e| format!("groups: {e}"))?;
    Ok(())
}

/// Issue 23: every op of the op table has node cases (counted per op), and on each case every facet of
/// every op it runs holds ([`check_facets`]); a counted op (`Cost::Macs`) has a case whose shapes inference
/// knows, so its formula ran.
#[test]
fn every_op_has_node_cases_and_its_facets_hold_on_them() {
    let mut cases_of: BTreeMap<&str, Vec<String>> = OPS.iter().map(|op| (op.op_type, Vec::new())).collect();
    let mut inferred_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for dir in case_dirs() {
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        let graph = onnx::read(&dir.join("model.onnx")).unwrap();
        let (inputs, outputs) = case_shapes(&dir);
        for node in &graph.nodes {
            if let Some(cases) = cases_of.get_mut(node.op_type.as_str())
                && !cases.contains(&case)
            {
                cases.push(case.clone());
            }
        }
        if let Err(e) = check_facets(&graph, &inputs, &outputs) {
            failures.push(format!("{case}: {e}"));
        } else if shapes::infer(&graph, &inputs).is_ok() {
            for node in &graph.nodes {
                *inferred_of.entry(node.op_type.clone()).or_default() += 1;
            }
        }
    }
    let uncovered: Vec<&str> = cases_of
        .iter()
        .filter(|(_, cases)| cases.is_empty())
        .map(|(op, _)| *op)
        .collect();
    assert!(uncovered.is_empty(), "ops without a node case: {uncovered:?}");
    let uncounted: Vec<&str> = OPS
        .iter()
        .filter(|op| matches!(op.cost, Cost::Macs(_)) && !inferred_of.contains_key(op.op_type))
        .map(|op| op.op_type)
        .collect();
    assert!(
        uncounted.is_empty(),
        "counted ops without a case whose shapes are known: {uncounted:?}"
    );
    assert!(
        failures.is_empty(),
        "{} cases fail a facet:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_one_node_case_matches_onnxruntime() {
    let cases = case_dirs();
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
