//! Issue 4: masking a group in the engine computes what onnxruntime computes on the structurally pruned
//! ONNX, for every prunable group of the five PP-OCR models alone and all together; the pruned model's
//! params and FLOPs follow from the group membership; masking then restoring changes no bit.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use sensgrid_model::analysis::count;
use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::ir::Graph;
use sensgrid_model::onnx;
use sensgrid_model::prune::{Criterion, Cut, Plan, Removed, structural};
use sensgrid_worker::exec::Executor;
use sensgrid_worker::pruning;
use tch::{Device, Tensor};

use crate::oracle::{generated, json, mismatch_normalized, npy, root};

const RATIO: f64 = 0.3;
/// Masked against pruned, relative to the output's largest magnitude.
const TOLERANCE: f64 = 1e-4;
/// Issue 3's end-to-end tolerance between the engine and onnxruntime: float32 rounding differences of two
/// engines, each node within 1e-4, can grow through a model in a sensitive state (a few masked PP-OCRv4 rec
/// variants reach 6e-4 on the softmax). Allowed only where onnxruntime on the masked file shows the same
/// gap, so the difference is the engine's and not the cut's.
const ENGINE_TOLERANCE: f64 = 1e-3;

/// Parameters and FLOPs a cut leaves, worked out from the membership alone: each weight keeps the product
/// of its kept fractions, and a conv's (or matmul's) FLOPs are proportional to its weight's element count.
fn expected_counts(graph: &Graph, removed: &Removed, shapes: &HashMap<String, Vec<usize>>) -> (u64, u64) {
    let kept_fraction = |tensor: &str| -> (u128, u128) {
        let dims = graph.constants[tensor].dims();
        removed
            .iter()
            .filter(|((t, _), _)| t == tensor)
            .fold((1, 1), |(num, den), ((_, axis), indices)| {
                let len = dims[*axis] as u128;
                (num * (len - indices.len() as u128), den * len)
            })
    };
    let scale = |value: u64, (num, den): (u128, u128)| -> u64 {
        let scaled = u128::from(value) * num;
        assert_eq!(scaled % den, 0, "a count that does not divide by its pruned axes");
        (scaled / den) as u64
    };
    let params = count::param_tensors(graph)
        .unwrap()
        .into_iter()
        .map(|t| scale(graph.constants[t].len() as u64, kept_fraction(t)))
        .sum();
    let flops = graph
        .nodes
        .iter()
        .map(|node| {
            let flops = count::node_flops(graph, node, &|n| shapes.get(n).cloned()).unwrap();
            match node.input(1).filter(|w| graph.constants.contains_key(*w)) {
                Some(weight) if flops > 0 => scale(flops, kept_fraction(weight)),
                _ => flops,
            }
        })
        .sum();
    (params, flops)
}

/// Whether every channel `cut` prunes is zero, in the unmasked run, in each tensor a conv reads it from
/// (ReLU-dead channels of a squeeze-excitation block, say): then masking cannot change the output, and an
/// unchanged output is no sign of a cut that did nothing.
fn pruned_channels_are_dead(
    graph: &Graph,
    executor: &Executor,
    input: &Tensor,
    analysis: &Analysis,
    cut: &Cut,
) -> bool {
    let mut read: HashMap<String, Vec<i64>> = HashMap::new();
    for (&group, channels) in &cut.channels {
        for member in &analysis.groups[group].members {
            let node = graph.nodes.iter().find(|n| n.name == member.node).unwrap();
            if node.op_type == "Conv" && member.input == 1 && member.axis == 1 {
                let indices = channels.iter().filter_map(|&c| member.index_map[c]).map(|k| k as i64);
                read.entry(node.inputs[0].clone()).or_default().extend(indices);
            }
        }
    }
    let mut dead = !read.is_empty();
    executor
        .run_tapped(std::slice::from_ref(input), &mut |name, tensor| {
            if let Some(indices) = read.get(name) {
                let picked = tensor.index_select(1, &Tensor::from_slice(indices));
                dead &= picked.abs().max().double_value(&[]) == 0.0;
            }
            tensor
        })
        .unwrap();
    dead
}

fn single_and_all(analysis: &Analysis) -> Vec<(String, Plan)> {
    let mut plans: Vec<(String, Plan)> = analysis
        .groups
        .iter()
        .map(|g| (g.key.clone(), Plan::from([(g.key.clone(), RATIO)])))
        .collect();
    let all = analysis.groups.iter().map(|g| (g.key.clone(), RATIO)).collect();
    plans.push(("all groups".to_owned(), all));
    plans
}

fn check_model(case: &str) {
    let reference = generated("reference.py", "reference").join(case);
    let manifest = json(&reference.join("manifest.json"));
    check(
        case,
        &root().join(manifest["model"].as_str().unwrap()),
        &reference.join("input.npy"),
    );
}

/// Runs every single-group plan and the all-groups plan of one model on one input; returns the analysis.
pub fn check(case: &str, model: &Path, input_file: &Path) -> Analysis {
    let mut graph = onnx::read(model).unwrap();
    let original = graph.clone();
    let mut executor = Executor::new(&graph, Device::Cpu).unwrap();
    let input = npy(input_file);
    let baseline = executor.run(std::slice::from_ref(&input)).unwrap().remove(0);
    let shapes = pruning::record_shapes(&graph, &executor, &input).unwrap();
    let dims = input.size().iter().map(|&d| d as usize).collect();
    let analysis = groups::analyse_at(&graph, &[dims]).unwrap();
    assert!(!analysis.groups.is_empty(), "{case}: no prunable group");

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pruning").join(case);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    let mut masked_outputs: BTreeMap<usize, (String, Tensor)> = BTreeMap::new();
    let plans = single_and_all(&analysis);
    for (i, (label, plan)) in plans.iter().enumerate() {
        let cut = Cut::plan(&graph, &analysis, plan, Criterion::L1Norm).unwrap();
        let masked = pruning::mask(&mut executor, &mut graph, &analysis, &cut).unwrap();
        let output = executor.run(std::slice::from_ref(&input)).unwrap().remove(0);
        onnx::write(&graph, &dir.join(format!("{i}.masked.onnx"))).unwrap();
        pruning::unmask(&mut executor, &mut graph, masked).unwrap();
        if output.equal(&baseline) && !pruned_channels_are_dead(&graph, &executor, &input, &analysis, &cut) {
            failures.push(format!("{label}: masking changed nothing"));
        }

        let pruned = structural::prune(&graph, &analysis, &cut).unwrap();
        let pruned_executor = Executor::new(&pruned.graph, Device::Cpu).unwrap();
        let pruned_shapes = pruning::record_shapes(&pruned.graph, &pruned_executor, &input).unwrap();
        let actual = (
            count::params(&pruned.graph).unwrap(),
            count::flops(&pruned.graph, &|n| pruned_shapes.get(n).cloned()).unwrap(),
        );
        let expected = expected_counts(&graph, &cut.removed(&analysis), &shapes);
        if actual != expected {
            failures.push(format!(
                "{label}: (params, flops) {actual:?}, from the membership {expected:?}"
            ));
        }
        onnx::write(&pruned.graph, &dir.join(format!("{i}.onnx"))).unwrap();
        masked_outputs.insert(i, (label.clone(), output));
    }

    // Masking then restoring, once per plan, leaves every weight bit-identical, in the IR and on the device.
    assert!(
        graph.constants == original.constants,
        "{case}: the graph's constants changed"
    );
    // On the device, as a fresh load has them (which flushes subnormal weights to zero).
    let fresh = Executor::new(&original, Device::Cpu).unwrap();
    let bytes = |tensor: &Tensor, data: &sensgrid_model::ir::TensorData| {
        let mut bytes = vec![0u8; data.bytes().len()];
        tensor.copy_data_u8(&mut bytes, data.len());
        bytes
    };
    for (name, data) in &original.constants {
        assert!(
            bytes(executor.constant(name).unwrap(), data) == bytes(fresh.constant(name).unwrap(), data),
            "{case}: constant '{name}' changed in the executor"
        );
    }

    let models: Vec<_> = (0..plans.len())
        .flat_map(|i| [dir.join(format!("{i}.onnx")), dir.join(format!("{i}.masked.onnx"))])
        .collect();
    let status = Command::new(root().join(".oracle/bin/python"))
        .arg(root().join("scripts/oracle/run_models.py"))
        .arg(input_file)
        .args(&models)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/oracle/run_models.py failed");
    let mut engine_gaps = Vec::new();
    for (i, (label, output)) in masked_outputs {
        let pruned = npy(&dir.join(format!("{i}.ort.npy")));
        let masked = npy(&dir.join(format!("{i}.masked.ort.npy")));
        // onnxruntime alone: the pruned file computes what the masked one does.
        if let Some(problem) = mismatch_normalized(&masked, &pruned, TOLERANCE) {
            failures.push(format!("{label}: onnxruntime, masked vs pruned file: {problem}"));
        }
        if let Some(problem) = mismatch_normalized(&output, &pruned, TOLERANCE) {
            let engine_gap = mismatch_normalized(&output, &masked, TOLERANCE).is_some();
            if engine_gap && mismatch_normalized(&output, &pruned, ENGINE_TOLERANCE).is_none() {
                engine_gaps.push(format!("{label}: {problem}"));
            } else {
                failures.push(format!("{label}: engine masked vs onnxruntime pruned: {problem}"));
            }
        }
    }
    if !engine_gaps.is_empty() {
        eprintln!(
            "{case}: engine vs onnxruntime beyond {TOLERANCE} (same on the masked file):\n{}",
            engine_gaps.join("\n")
        );
    }
    assert!(
        failures.is_empty(),
        "{case}: {} of {} plans fail:\n{}",
        failures.len(),
        plans.len(),
        failures.join("\n")
    );
    analysis
}

#[test]
fn v3_det_masking_equals_pruning() {
    check_model("v3det-320x320");
}

#[test]
fn v4_det_masking_equals_pruning() {
    check_model("v4det-320x320");
}

#[test]
fn v2_rec_masking_equals_pruning() {
    check_model("v2rec-32x320");
}

#[test]
fn v4_rec_masking_equals_pruning() {
    check_model("v4rec-48x320");
}

#[test]
fn cls_masking_equals_pruning() {
    check_model("cls-48x192");
}
