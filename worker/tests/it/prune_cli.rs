//! Issue 4 as users run it: `worker inspect --groups`, `worker prune` and `worker infer --mask`.

use std::process::{Command, Output};

use sensgrid_model::prune::pruned_count;
use serde_json::Value;

use crate::oracle::{generated, json, mismatch_normalized, model, npy, root, scratch, worker};

const V3_DET: &str = "ch_PP-OCRv3_det_infer.onnx";

fn groups(file: &str, shape: &str) -> Value {
    let output = worker(&["inspect", &model(file), "--groups", "--json", "--input-shape", shape]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn inspect_groups_lists_keys_members_and_exclusions() {
    let report = groups(V3_DET, "1,3,320,320");
    let groups = report["groups"].as_array().unwrap();
    assert!(groups.len() > 30, "{} groups", groups.len());
    for group in groups {
        let key = group["key"].as_str().unwrap();
        let channels = group["channels"].as_u64().unwrap() as usize;
        assert!(key.starts_with("conv2d"), "{key}: a Paddle weight name");
        assert!(
            group["params"].as_u64().unwrap() > 0 && group["flops"].as_u64().unwrap() > 0,
            "{key}"
        );
        let members = group["members"].as_array().unwrap();
        // The key conv's own filters are channels 0..C in order.
        let key_member = members.iter().find(|m| m["tensor"] == key).unwrap();
        let identity: Vec<Value> = (0..channels).map(Value::from).collect();
        assert_eq!(key_member["index_map"].as_array().unwrap(), &identity, "{key}");
        for member in members {
            assert_eq!(member["index_map"].as_array().unwrap().len(), channels, "{key}");
            assert!(member["node"].is_string() && member["axis"].is_u64(), "{key}");
        }
    }
    // The detection map's last layer is a graph output.
    let excluded = report["excluded"].as_array().unwrap();
    assert!(
        excluded
            .iter()
            .any(|e| e["conv"] == "conv2d_transpose_1.w_0" && e["reason"].as_str().unwrap().contains("graph output")),
        "{excluded:?}"
    );
}

#[test]
fn prune_and_masked_infer_agree_through_onnxruntime() {
    let reference = generated("reference.py", "reference").join("v3det-320x320");
    let input = reference.join("input.npy").display().to_string();
    let dir = scratch("prune_cli", "v3det");
    let report = groups(V3_DET, "1,3,320,320");
    let picked: Vec<&Value> = report["groups"].as_array().unwrap().iter().step_by(7).collect();
    let plan: serde_json::Map<String, Value> = picked
        .iter()
        .map(|g| (g["key"].as_str().unwrap().to_owned(), Value::from(0.5)))
        .collect();
    let plan_file = dir.join("plan.json");
    std::fs::write(&plan_file, Value::Object(plan.clone()).to_string()).unwrap();
    let plan_arg = plan_file.display().to_string();
    let pruned = dir.join("pruned.onnx");

    let output = worker(&[
        "prune",
        "--model",
        &model(V3_DET),
        "--plan",
        &plan_arg,
        "--out",
        &pruned.display().to_string(),
        "--criterion",
        "fpgm",
        "--input-shape",
        "1,3,320,320",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let masked = dir.join("masked.npy");
    let output = worker(&[
        "infer",
        "--model",
        &model(V3_DET),
        "--input",
        &input,
        "--output",
        &masked.display().to_string(),
        "--device",
        "cpu",
        "--mask",
        &plan_arg,
        "--criterion",
        "fpgm",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    let status = Command::new(root().join(".oracle/bin/python"))
        .arg(root().join("scripts/oracle/run_models.py"))
        .arg(&input)
        .arg(&pruned)
        .status()
        .unwrap();
    assert!(status.success());
    let ort = npy(&dir.join("pruned.ort.npy"));
    if let Some(problem) = mismatch_normalized(&npy(&masked), &ort, 1e-4) {
        panic!("infer --mask vs onnxruntime on the pruned file: {problem}");
    }

    // Every member of every pruned group keeps C - pruned_count(C, 0.5) indices, in increasing order.
    let kept = json(&dir.join("pruned.kept.json"));
    for group in picked {
        let channels = group["channels"].as_u64().unwrap() as usize;
        for member in group["members"].as_array().unwrap() {
            let axes = kept[member["tensor"].as_str().unwrap()].as_array().unwrap();
            let axis = axes.iter().find(|a| a["axis"] == member["axis"]).unwrap();
            let indices: Vec<u64> = axis["kept"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_u64().unwrap())
                .collect();
            assert_eq!(indices.len(), channels - pruned_count(channels, 0.5), "{member}");
            assert!(indices.windows(2).all(|w| w[0] < w[1]), "{member}");
        }
    }
}

#[test]
fn bad_plans_and_criteria_are_refused_by_name() {
    let dir = scratch("prune_cli", "refusals");
    let input = dir.join("x.npy");
    tch::Tensor::zeros([1, 3, 64, 64], (tch::Kind::Float, tch::Device::Cpu))
        .write_npy(&input)
        .unwrap();
    let cases = [
        (
            r#"{"conv2d_999.w_0": 0.3}"#,
            "l1_norm",
            "unknown group key 'conv2d_999.w_0'",
        ),
        (
            r#"{"conv2d_transpose_1.w_0": 0.3}"#,
            "l1_norm",
            "group 'conv2d_transpose_1.w_0' cannot be pruned",
        ),
        (r#"{"conv2d_0.w_0": 1.5}"#, "l1_norm", "ratio 1.5 is outside [0, 1)"),
        (
            r#"{"conv2d_0.w_0": "half"}"#,
            "l1_norm",
            "the ratio \"half\" is not a number",
        ),
        (r#"{"conv2d_0.w_0": 0.3}"#, "l3_norm", "unknown criterion 'l3_norm'"),
    ];
    for (i, (plan, criterion, expected)) in cases.iter().enumerate() {
        let plan_file = dir.join(format!("plan{i}.json"));
        std::fs::write(&plan_file, plan).unwrap();
        let output = worker(&[
            "infer",
            "--model",
            &model(V3_DET),
            "--input",
            &input.display().to_string(),
            "--output",
            &dir.join("y.npy").display().to_string(),
            "--device",
            "cpu",
            "--mask",
            &plan_file.display().to_string(),
            "--criterion",
            criterion,
        ]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{plan}: {message}");
        assert!(message.contains(expected), "{plan}: {message}");
        assert!(!message.contains("panicked"), "{message}");
    }
}
