//! Item 5: two `coordinator serve` processes on one Postgres database, each with a worker of its own. Both
//! pipelines see the run's grid finish and both plan it; the second plan used to queue the export anew while a
//! worker held it (or reopen the run once it was done), so the export was computed twice. Now the first plan
//! is the run's: the export is claimed once (one lease epoch), uploaded once, and the run ends done with one
//! pruned model.

use std::path::Path;
use std::time::Duration;

use crate::common::{Cluster, Database, TailsOnPanic, root, scratch, synth};

/// 3 of PP-OCRv3 det's groups at one ratio: the grid is done within seconds, and the run is all about its plan.
const SKIP: &str = "['conv2d_transpose_*', 'conv2d_[1-6]?.w_0', 'conv2d_[4-9].w_0']";

#[test]
fn two_coordinators_on_one_database_export_a_planned_run_once() {
    let scratch = scratch("two_coordinators");
    let scratch_b = scratch.join("b");
    std::fs::create_dir_all(scratch_b.join("client")).unwrap();
    // Both serve the same artifacts: a run submitted to one has its model and set where the other's workers
    // fetch them.
    std::os::unix::fs::symlink(scratch.join("artifacts"), scratch_b.join("artifacts")).unwrap();
    let _tails = TailsOnPanic(scratch.clone());
    let _tails_b = TailsOnPanic(scratch_b.clone());
    let data = scratch.join("data");
    synth("det", "4", "7", &data);
    let model = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    let config = scratch.join("det_two_coordinators.yml");
    std::fs::write(&config, det_config(&model, &data)).unwrap();

    let database = Database::create("two_coordinators");
    let mut a = Cluster::new(&scratch, &database.url);
    let mut b = Cluster::new(&scratch_b, &database.url);
    a.start_coordinator();
    b.start_coordinator();
    a.start_worker("a1");
    b.start_worker("b1");

    let run = a.submit(&config);
    a.watch(run);
    // A pipeline round that read the run before it was planned may still be planning: give it a few rounds
    // (`--sweep 500ms`) to land before looking.
    std::thread::sleep(Duration::from_secs(3));

    let state = database.psql(&format!("SELECT state FROM run WHERE id = {run}"));
    assert_eq!(state, "done", "run {run}");
    let exports = database.psql(&format!(
        "SELECT state || ' attempt ' || attempt || ' epoch ' || lease_epoch || ' digest ' || \
         coalesce(result ->> 'artifact_digest', 'none') FROM job WHERE run_id = {run} AND kind = 'export'"
    ));
    let rows: Vec<&str> = exports.lines().collect();
    assert_eq!(rows.len(), 1, "run {run} has one export job: {exports}");
    assert!(
        rows[0].starts_with("done attempt 1 epoch 1 digest ") && !rows[0].ends_with("none"),
        "run {run}'s export was claimed once and made a pruned model: {exports}"
    );
    let uploads: usize = ["a1", "b1"]
        .iter()
        .zip([&scratch, &scratch_b])
        .map(|(name, dir)| {
            let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap();
            log.lines().filter(|l| l.contains("uploaded the pruned model")).count()
        })
        .sum();
    assert_eq!(uploads, 1, "the pruned model was computed and uploaded once across both workers");
    // Each coordinator handed out jobs: both pipelines and both dispatchers were at work on the run.
    let workers = database.psql(&format!(
        "SELECT count(DISTINCT done_by) FROM job WHERE run_id = {run} AND done_by IS NOT NULL"
    ));
    assert_eq!(workers, "2", "both coordinators' workers computed jobs of run {run}");
}

/// One ratio on three groups (three cells), then a table plan that exports.
fn det_config(model: &Path, data: &Path) -> String {
    crate::common::det_config(
        model,
        data,
        &format!(
            "Sensitivity:
  ratios: [0.5]
  criterion: l1_norm
  metric: hmean
  skip: {SKIP}
Prune:
  max_loss: 0.5
  export: true
"
        ),
    )
}
