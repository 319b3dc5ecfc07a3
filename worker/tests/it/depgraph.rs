//! Issue 4: our channel groups against Torch-Pruning's DepGraph on the same five networks
//! (`scripts/oracle/depgraph.py`: onnx2torch, then `DependencyGraph`), member by member and index by index.
//! Every difference must be in `tests/fixtures/depgraph_allow.json`, with why; an allowed difference that no
//! longer occurs fails too, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::onnx;
use serde_json::Value;

use crate::oracle::{json, model, oracle_key, root};

const MODELS: [(&str, [i64; 4]); 5] = [
    ("ch_PP-OCRv3_det_infer.onnx", [1, 3, 320, 320]),
    ("ch_PP-OCRv4_det_infer.onnx", [1, 3, 320, 320]),
    ("ch_PP-OCRv2_rec_infer.onnx", [1, 3, 32, 320]),
    ("ch_PP-OCRv4_rec_infer.onnx", [1, 3, 48, 320]),
    ("ch_ppocr_mobile_v2.0_cls_infer.onnx", [1, 3, 48, 192]),
];

/// Torch-Pruning's groups for `file`, computed once per build directory and [`oracle_key`] (the script, its
/// helpers, the pinned packages and the models).
fn depgraph(file: &str, shape: [i64; 4]) -> Value {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("oracle")
        .join("depgraph")
        .join(oracle_key("depgraph.py"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{file}.json"));
    if !out.exists() {
        let shape = shape.map(|d| d.to_string()).join(",");
        let status = Command::new(root().join(".oracle/bin/python"))
            .arg(root().join("scripts/oracle/depgraph.py"))
            .args([&model(file), "--input-shape", &shape, "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "scripts/oracle/depgraph.py {file} failed");
    }
    json(&out)
}

fn ours(file: &str, shape: [i64; 4]) -> Analysis {
    let graph = onnx::read(&PathBuf::from(model(file))).unwrap();
    groups::analyse_at(&graph, &[shape.iter().map(|&d| d as usize).collect()]).unwrap()
}

/// (tensor, axis) -> index per group channel, for the members Torch-Pruning maps to a constant, in the channel
/// order of the member `(key, axis)`; None when Torch-Pruning's mapping is not one index per channel.
type Members = BTreeMap<(String, usize), Option<Vec<usize>>>;

fn tp_members(group: &Value, key: &(String, usize)) -> Members {
    let members: Vec<&Value> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["tensor"].is_string())
        .collect();
    let idxs = |m: &Value| -> Option<Vec<usize>> {
        m.get("root_idxs").is_none().then(|| {
            m["idxs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize)
                .collect()
        })
    };
    let id = |m: &Value| {
        (
            m["tensor"].as_str().unwrap().to_owned(),
            m["axis"].as_u64().unwrap() as usize,
        )
    };
    let key_idxs = members.iter().find(|m| id(m) == *key).and_then(|m| idxs(m));
    members
        .iter()
        .map(|m| {
            // Re-order from Torch-Pruning's root channels to our key conv's channels.
            let order = key_idxs.as_ref().zip(idxs(m)).map(|(key, mine)| {
                let mut by_key = vec![usize::MAX; key.len()];
                for (p, &k) in key.iter().enumerate() {
                    by_key[k] = mine[p];
                }
                by_key
            });
            (id(m), order)
        })
        .collect()
}

/// Every way the two disagree on one model, one line each.
fn differences(file: &str, ours: &Analysis, tp: &Value) -> BTreeSet<String> {
    let tp_groups = tp["groups"].as_array().unwrap();
    let mut lines = BTreeSet::new();
    let mut matched = BTreeSet::new();
    for group in &ours.groups {
        let key = (group.key.clone(), group.key_axis);
        let found = tp_groups.iter().enumerate().find(|(_, g)| {
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["tensor"] == key.0.as_str() && m["axis"] == key.1)
        });
        let Some((index, tp_group)) = found else {
            lines.insert(format!("{file}: group {}: not in Torch-Pruning", group.key));
            continue;
        };
        matched.insert(index);
        let theirs = tp_members(tp_group, &key);
        let mine: BTreeMap<(String, usize), Vec<Option<usize>>> = group
            .members
            .iter()
            .map(|m| ((m.tensor.clone(), m.axis), m.index_map.clone()))
            .collect();
        for (member, map) in &mine {
            match theirs.get(member) {
                None => {
                    lines.insert(format!(
                        "{file}: group {}: {} axis {} only in sensgrid",
                        group.key, member.0, member.1
                    ));
                }
                Some(Some(order)) if order.iter().zip(map).any(|(t, o)| *o != Some(*t)) => {
                    lines.insert(format!(
                        "{file}: group {}: {} axis {}: index maps differ",
                        group.key, member.0, member.1
                    ));
                }
                Some(_) => {}
            }
        }
        for member in theirs.keys().filter(|m| !mine.contains_key(*m)) {
            lines.insert(format!(
                "{file}: group {}: {} axis {} only in Torch-Pruning",
                group.key, member.0, member.1
            ));
        }
    }
    for (_, group) in tp_groups.iter().enumerate().filter(|(i, _)| !matched.contains(i)) {
        let root = group["root"]["tensor"].as_str().unwrap();
        let why = ours
            .excluded
            .iter()
            .find(|e| e.conv == root)
            .map_or("not found", |e| e.reason.as_str());
        lines.insert(format!(
            "{file}: Torch-Pruning group rooted at {root}: excluded by sensgrid ({why})"
        ));
    }
    lines
}

#[test]
fn groups_agree_with_torch_pruning_depgraph() {
    let allow = json(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/depgraph_allow.json"));
    let allowed: BTreeMap<String, String> = allow
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["difference"].as_str().unwrap().to_owned(),
                a["why"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        allowed.values().all(|why| why.len() > 20),
        "every allowed difference says why"
    );
    let mut found = BTreeSet::new();
    for (file, shape) in MODELS {
        found.extend(differences(file, &ours(file, shape), &depgraph(file, shape)));
    }
    let unexplained: Vec<&String> = found.iter().filter(|d| !allowed.contains_key(*d)).collect();
    let stale: Vec<&String> = allowed.keys().filter(|d| !found.contains(*d)).collect();
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "differences not in the allow-list:\n{}\nallowed but no longer found:\n{}",
        unexplained
            .iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n"),
        stale.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")
    );
}
