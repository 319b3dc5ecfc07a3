//! A measured `Prune` target on real processes (issue 21): a real `coordinator serve` on a fresh database of
//! the main Postgres server, two `worker join` processes, PP-OCRv3 det on a small synthetic set.
//!
//! 1. Run A with `Prune.max_model_loss` ends done; its pruned.onnx, scored by the oracle (onnxruntime and
//!    PaddleOCR's rules, `scripts/oracle/e2e_check.py`) against the original model scored the same way, loses
//!    at most that much and has fewer FLOPs. Its probes are in `probes.json`, the chosen one marked.
//! 2. Run B, the same config with A's cells imported (`--resume-from A`), has its coordinator killed with
//!    SIGKILL once a probe is done and before any plan, and restarted: it ends done with the same plan as A.
//! 3. Run C, A's cells imported again and `Prune.latency_reduction` as the target on one worker (one probe at a
//!    time, so nothing else runs while a probe or the export times the model): the search chooses a probe that
//!    measured at least that reduction, and the export records its own measurement (printed: a timing is not
//!    asserted).
//!
//! A test binary of its own, so cargo runs it alone: it keeps both cores busy with two workers.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{
    CLIENT_TIMEOUT, Cluster, Database, RUN_TIMEOUT, TailsOnPanic, path, root, scratch, succeed, synth, wait_for,
};

/// The measured target: the exported model loses at most this share of its hmean.
const MAX_MODEL_LOSS: f64 = 0.05;
/// Run C's target: the export measures at least this share of the latency gone. Small: on a 2-core VM the
/// pessimistic estimate of every group at its largest ratio here ranged from 7.5% to about 20% between runs,
/// and a target above what the chain can reach fails the run (out of reach) rather than the assertion.
const LATENCY_REDUCTION: f64 = 0.05;

#[test]
fn a_max_model_loss_run_exports_a_model_the_oracle_scores_within_it_and_survives_a_restart_mid_search() {
    let scratch = scratch("probe");
    let _tails = TailsOnPanic(scratch.clone());
    let root = root();
    let data = scratch.join("data");
    synth("det", "6", "7", &data);
    let model = root.join("models/ch_PP-OCRv3_det_infer.onnx");
    let config = scratch.join("det_probe.yml");
    std::fs::write(&config, det_config(&model, &data)).unwrap();

    let database = Database::create("probe");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    cluster.start_worker("w1");
    cluster.start_worker("w2");

    // 1. Run A, undisturbed.
    let run_a = cluster.submit(&config);
    cluster.watch(run_a);
    let dir_a = scratch.join("run-a");
    cluster.results(run_a, &dir_a);
    let report = read_json(&dir_a.join("prune_report.json"));
    let (before, after) = (
        report["metric_before"].as_f64().unwrap(),
        report["metric_after"].as_f64().unwrap(),
    );
    assert!(
        (before - after) / before <= MAX_MODEL_LOSS,
        "run {run_a}'s own export loses more than {MAX_MODEL_LOSS}: {report}"
    );
    let probes = read_json(&dir_a.join("probes.json"));
    let probe_rows = probes["probes"].as_array().expect("probes.json lists the probes");
    assert!(probe_rows.len() >= 2, "one probe does not make a search: {probes}");
    assert_eq!(
        probe_rows.iter().filter(|p| p["chosen"] == true).count(),
        1,
        "exactly one probe is the plan: {probes}"
    );
    let mut check = common::check_results(&dir_a, &data);
    check
        .arg("--max-model-loss")
        .arg(MAX_MODEL_LOSS.to_string())
        .arg("--original-model")
        .arg(&model);
    eprintln!("{}", succeed(&mut check).trim_end());

    // 2. Run B: A's cells imported, the coordinator killed in the probe phase.
    let out = cluster.client_ok(
        &["submit", "-c", path(&config), "--resume-from", &run_a.to_string()],
        CLIENT_TIMEOUT,
    );
    let run_b: i64 = out.stdout.lines().last().unwrap_or_default().parse().unwrap();
    let probe_phase = format!(
        "SELECT count(*) FILTER (WHERE j.kind = 'probe' AND j.state = 'done') > 0 AND r.plan IS NULL
         FROM run r JOIN job j ON j.run_id = r.id WHERE r.id = {run_b} GROUP BY r.plan"
    );
    wait_for(RUN_TIMEOUT, "a done probe of run B before its plan", || {
        (database.psql(&probe_phase) == "t").then_some(())
    });
    cluster.kill_coordinator();
    let planned: String = database.psql(&format!("SELECT plan IS NOT NULL FROM run WHERE id = {run_b}"));
    assert_eq!(planned, "f", "run {run_b} was planned before its coordinator died");
    let probes_at_kill = database.psql(&format!(
        "SELECT count(*) FROM job WHERE run_id = {run_b} AND kind = 'probe' AND state = 'done'"
    ));
    eprintln!("probe: killed the coordinator with {probes_at_kill} probes of run {run_b} done and no plan");
    cluster.start_coordinator();
    cluster.watch(run_b);
    let dir_b = scratch.join("run-b");
    cluster.results(run_b, &dir_b);
    assert_eq!(
        read_json(&dir_b.join("plan.json")),
        read_json(&dir_a.join("plan.json")),
        "run {run_b}, restarted mid-search, chose another plan than run {run_a}"
    );
    assert_eq!(
        read_json(&dir_b.join("prune_report.json"))["metric_after"],
        report["metric_after"]
    );

    // 3. Run C: a latency target, measured.
    cluster.stop_worker("w2");
    let target = format!("Prune.latency_reduction={LATENCY_REDUCTION}");
    let out = cluster.client_ok(
        &[
            "submit",
            "-c",
            path(&config),
            "--resume-from",
            &run_a.to_string(),
            "-o",
            "Prune.max_model_loss=null",
            &target,
        ],
        CLIENT_TIMEOUT,
    );
    let run_c: i64 = out.stdout.lines().last().unwrap_or_default().parse().unwrap();
    cluster.watch(run_c);
    let dir_c = scratch.join("run-c");
    cluster.results(run_c, &dir_c);
    let report_c = read_json(&dir_c.join("prune_report.json"));
    // The search chose a probe whose own measurement met the target (its margin is recorded, and the target
    // is listed as held): that is the coordinator's decision on recorded numbers, so it is asserted. The
    // export's re-measurement is a timing on a shared 2-core VM, so it is checked to exist and printed, not
    // bounded: tests never assert on timings (the brief); a benchmark in bench/ is the place for that.
    let target_c = &report_c["target"];
    assert_eq!(target_c["kind"], "measured", "{report_c}");
    assert_eq!(
        target_c["latency_reduction_target"].as_f64(),
        Some(LATENCY_REDUCTION),
        "{report_c}"
    );
    let held: Vec<&str> = target_c["held"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        held.contains(&"latency_reduction"),
        "run {run_c}'s chosen probe did not meet its target: {report_c}"
    );
    let margin = target_c["latency_margin"].as_f64().unwrap_or(f64::NAN);
    assert!(margin >= 0.0, "run {run_c}'s latency margin is {margin}: {report_c}");
    let reduction = report_c["latency_reduction"]
        .as_f64()
        .unwrap_or_else(|| panic!("prune_report.json has no latency_reduction: {report_c}"));
    assert!(reduction.is_finite() && reduction < 1.0, "{report_c}");
    eprintln!("probe: run {run_c}'s export measured a latency reduction of {reduction:.4}: {report_c}");
}

fn read_json(file: &Path) -> Value {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Two ratios on the 15 groups outside conv2d_30 to conv2d_69 and the transposed convs (30 cells), then the
/// search for the largest cut that keeps MAX_MODEL_LOSS.
fn det_config(model: &Path, data: &Path) -> String {
    common::det_config(
        model,
        data,
        &format!(
            "Sensitivity:
  ratios: [0.2, 0.5]
  criterion: l1_norm
  metric: hmean
  skip: ['conv2d_transpose_*', 'conv2d_[3-6]?.w_0']
Prune:
  max_model_loss: {MAX_MODEL_LOSS}
  export: true
"
        ),
    )
}
