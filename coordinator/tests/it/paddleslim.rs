//! The round trip to PaddleSlim and PaddleOCR (issue 21): `sen.pickle`, `sen_status.pickle` and `plan.json`, as
//! `RunResults::write` writes them, read by the real paddlepaddle 2.6.2 and paddleslim 2.6.0 in the `.paddle`
//! venv that `make setup` makes (scripts/setup.sh, setup_paddle; pinned in scripts/paddle-requirements.txt).
//! `scripts/oracle/paddleslim_interop.py` does the Python side on a small Paddle conv net whose weights have the
//! table's names; this file builds the table, the runs and sensgrid's plans, and checks what PaddleSlim did.

use std::path::{Path, PathBuf};
use std::process::Command;

use sensgrid_coordinator::planning::Planned;
use sensgrid_coordinator::results::RunResults;
use sensgrid_model::prune::planner::{Sensitivities, cut_plan, ratios_by_loss};
use sensgrid_model::prune::pruned_count;
use sensgrid_proto::v1 as pb;
use serde_json::{Value, json};

/// The grid of PaddleSlim's dygraph `FilterPruner.sensitive` (0.1 to 0.9), which it cannot be told otherwise.
const PADDLESLIM_RATIOS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// The table: the Paddle net's convs by weight name, their output channels (multiples of 10, so the script
/// can tell each pruned ratio from the weight shape) and a loss per ratio of [`PADDLESLIM_RATIOS`]. A negative
/// loss, a dip (conv2d_0 at 0.6), a group with no ratio under 0.02 (conv2d_1), one under every threshold.
const GROUPS: [(&str, usize, [f64; 9]); 3] = [
    (
        "conv2d_0.w_0",
        20,
        [-0.004, 0.0, 0.003, 0.009, 0.015, 0.013, 0.031, 0.064, 0.18],
    ),
    (
        "conv2d_1.w_0",
        40,
        [0.025, 0.04, 0.06, 0.09, 0.13, 0.2, 0.28, 0.41, 0.6],
    ),
    (
        "conv2d_2.w_0",
        30,
        [0.0, 0.001, 0.002, 0.002, 0.004, 0.006, 0.009, 0.011, 0.014],
    ),
];
/// The last conv of the net: a leaf, which PaddleSlim's pruners leave alone, so it is in no table.
const LEAF: (&str, usize) = ("conv2d_3.w_0", 4);
const THRESHOLDS: [f64; 3] = [0.005, 0.02, 0.05];
/// The `Prune.max_loss` of the run whose plan.json goes to `prune_vars`.
const PLAN_MAX_LOSS: f64 = 0.02;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// A finished run of the table's groups at `ratios`: the baseline, and each cell imported with its loss.
fn run(ratios: &[f64], plan: Option<&Value>) -> pb::GetRunResponse {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(key, channels, _)| json!({"key": key, "channels": channels, "params": 0, "flops": 0, "convs": []}))
        .collect();
    let spec = json!({"name": "paddleslim", "metric": "hmean", "ratios": ratios, "groups": groups});
    let job = |kind: &str, key: &str, ratio: f64, result: Value| pb::JobStatus {
        kind: pb::JobKind::parse(kind).unwrap().into(),
        state: pb::JobState::Done.into(),
        group_key: key.into(),
        ratio,
        result_json: result.to_string(),
        ..Default::default()
    };
    let mut jobs = vec![job("baseline", "", 0.0, json!({"metrics": {"hmean": 0.8}}))];
    for (key, _, losses) in GROUPS {
        for (ratio, loss) in PADDLESLIM_RATIOS.into_iter().zip(losses) {
            if ratios.contains(&ratio) {
                jobs.push(job("cell", key, ratio, json!({"loss": loss})));
            }
        }
    }
    pb::GetRunResponse {
        run_id: 1,
        state: pb::RunState::Done.into(),
        spec_json: spec.to_string(),
        plan_json: plan.map(Value::to_string).unwrap_or_default(),
        jobs,
        ..Default::default()
    }
}

/// Writes the run's results into `dir` through `RunResults`, and describes the case for the script:
/// the table, and per threshold sensgrid's plan with and without its 0.0 entries.
fn case(name: &str, dir: &Path, ratios: &[f64], plan: Option<&Value>) -> Value {
    let run = run(ratios, plan);
    let results = RunResults::new(&run, &[]).unwrap();
    let written = results.write(dir).unwrap();
    for file in ["sen.pickle", "sen_status.pickle"] {
        assert!(written.files.contains(&dir.join(file)), "{file} is written and listed");
    }
    let table = results.sensitivities();
    assert_eq!(table.len(), GROUPS.len());
    let pairs: serde_json::Map<String, Value> = table
        .iter()
        .map(|(key, losses)| (key.clone(), losses.iter().map(|(r, l)| json!([r.get(), l])).collect()))
        .collect();
    let plans: Vec<Value> = THRESHOLDS
        .iter()
        .map(|&t| {
            let plan = ratios_by_loss(&table, t).unwrap();
            json!({"max_loss": t, "ratios": plan, "cut": cut_plan(&plan)})
        })
        .collect();
    json!({"name": name, "dir": dir, "table": pairs, "plans": plans})
}

fn full_table() -> Sensitivities {
    let run = run(&PADDLESLIM_RATIOS, None);
    RunResults::new(&run, &[]).unwrap().sensitivities()
}

#[test]
fn paddleslim_and_paddleocr_read_sensgrid_results() {
    let python = root().join(".paddle/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make setup` (scripts/setup.sh, setup_paddle, makes the venv of real paddlepaddle \
         and paddleslim that this test needs)",
        python.display()
    );
    let scratch = tempfile::tempdir().unwrap();
    // plan.json as the pipeline stores it for `Prune.max_loss`: every group, 0.0 where it stays whole.
    let planned = Planned {
        ratios: ratios_by_loss(&full_table(), PLAN_MAX_LOSS).unwrap(),
        max_loss: PLAN_MAX_LOSS,
        flops_before: 0,
        flops_after: 0,
    };
    assert!(
        planned.ratios.values().any(|&r| r == 0.0),
        "the plan keeps a 0.0 entry: {:?}",
        planned.ratios
    );
    let full = scratch.path().join("full");
    // sensgrid's usual grid, 0.1 to 0.8: PaddleSlim scores its 0.9 itself.
    let partial = scratch.path().join("partial");
    let mut convs: Vec<Value> = GROUPS.iter().map(|(key, channels, _)| json!([key, channels])).collect();
    convs.push(json!([LEAF.0, LEAF.1]));
    let cases = json!({
        "input_shape": [1, 3, 16, 16],
        "convs": convs,
        "plan_file": full.join("plan.json"),
        "cases": [
            case("full", &full, &PADDLESLIM_RATIOS, Some(&planned.plan_json())),
            case("partial", &partial, &PADDLESLIM_RATIOS[..8], None),
        ],
    });
    let cases_file = scratch.path().join("cases.json");
    std::fs::write(&cases_file, cases.to_string()).unwrap();

    let output = Command::new(&python)
        .arg(root().join("scripts/oracle/paddleslim_interop.py"))
        .arg(&cases_file)
        .current_dir(root())
        .output()
        .expect("running scripts/oracle/paddleslim_interop.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "paddleslim_interop.py failed ({}):\n{stdout}\n{}",
        output.status,
        stderr
            .lines()
            .filter(|l| !l.contains("INFO"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON summary from paddleslim_interop.py:\n{stdout}"));

    // PaddleSlim's own file of a whole analysis holds what sen_status.pickle holds (the script compares them).
    assert_eq!(
        summary["own_status"]["attributes"],
        json!(["accumulates", "is_ckp", "sensitivies"])
    );
    assert_eq!(summary["own_status"]["is_ckp"], json!(true));
    assert_eq!(summary["own_status"]["accumulates"], json!("{}"));
    assert_eq!(
        summary["own_status"]["evaluations"],
        json!(1 + GROUPS.len() * PADDLESLIM_RATIOS.len())
    );
    // Given sensgrid's table of its whole grid, PaddleSlim evaluates nothing, not even the baseline.
    assert_eq!(summary["cases"]["full"]["evaluations"], json!([]));
    // Given 0.1 to 0.8, it scores the baseline and each group at 0.9, and no cell the table holds.
    let mut expected = vec![json!("baseline")];
    expected.extend(GROUPS.iter().map(|(key, _, _)| json!([key, 0.9])));
    assert_eq!(summary["cases"]["partial"]["evaluations"], Value::Array(expected));
    // plan.json through `prune_vars` leaves each conv the channels sensgrid's own prune leaves.
    let mut kept = serde_json::Map::new();
    for (key, channels, _) in GROUPS {
        kept.insert(
            key.into(),
            json!(channels - pruned_count(channels, planned.ratios[key])),
        );
    }
    kept.insert(LEAF.0.into(), json!(LEAF.1));
    assert_eq!(summary["pruned_channels"], Value::Object(kept));
}
