//! Issue 4 on small synthetic networks (`scripts/oracle/prune_cases.py`): the channel paths the PP-OCR
//! models never take (Split and Slice on channels, depthwise ConvTranspose, Gemm after Flatten, MatMul over
//! channels-last data, Concat-built reshape targets, shared initializer weights) prune exactly too.

use crate::oracle::{generated, json};
use crate::pruning::check;

#[test]
fn synthetic_cases_mask_and_prune_alike() {
    let dir = generated("prune_cases.py", "prune_cases");
    let cases = json(&dir.join("cases.json"));
    let mut wrong_groups = Vec::new();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let analysis = check(
            &format!("synthetic {name}"),
            &dir.join(case["model"].as_str().unwrap()),
            &dir.join(case["input"].as_str().unwrap()),
        );
        let keys: Vec<&str> = analysis.groups.iter().map(|g| g.key.as_str()).collect();
        let expected: Vec<&str> = case["expect"]["prunable_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let excluded: Vec<&str> = analysis.excluded.iter().map(|e| e.conv.as_str()).collect();
        for key in case["expect"]["excluded_keys"].as_array().unwrap() {
            if !excluded.contains(&key.as_str().unwrap()) {
                wrong_groups.push(format!("{name}: {key} should be excluded; excluded {excluded:?}"));
            }
        }
        if keys != expected {
            wrong_groups.push(format!("{name}: groups {keys:?}, expected {expected:?}"));
        }
    }
    assert!(wrong_groups.is_empty(), "{}", wrong_groups.join("\n"));
}
