//! A recover job on real processes (issue 25): a real `coordinator serve` on a fresh database, real `worker
//! join` processes with JSON logs, PP-OCRv3 det on two synthetic eval images and three training images of
//! another seed.
//!
//! The run's `Recover` section queues the recovery once the export is done. The worker recovering is frozen
//! once the coordinator keeps a checkpoint of the job past its first, then killed with SIGKILL; a second worker
//! takes the job when its lease expires, downloads the last checkpoint and resumes there: the report's
//! `resumed_at` is that checkpoint's step, above 0, and at most `checkpoint_every` steps behind the last step
//! the killed worker reported, and its history holds every step once, the killed worker's included. The run ends
//! done, and `coordinator results` writes `recovered.onnx`, `recover_report.json` and `recover.png`.
//!
//! A test binary of its own, so cargo runs it apart from the other real-process tests.

mod common;

use std::time::Duration;

use common::{Cluster, Database, Log, TailsOnPanic, wait_for};
use serde_json::Value;

/// Steps of the recovery, and how often it checkpoints.
const STEPS: u64 = 40;
const CHECKPOINT_EVERY: u64 = 4;
/// How long the pipeline may take to reach the recovery's second checkpoint: the baseline, four cells and the
/// export on two busy cores, then the recovery's first steps.
const RECOVERING_TIMEOUT: Duration = Duration::from_secs(400);

#[test]
fn a_worker_killed_during_recovery_is_resumed_from_its_checkpoint_by_another() {
    let scratch = common::scratch("recover_kill");
    let _tails = TailsOnPanic(scratch.clone());
    let config = common::det_recover_config(&scratch, STEPS, CHECKPOINT_EVERY, STEPS);

    let database = Database::create("recover_kill");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    let run = cluster.submit(&config);
    let json = ["--log-format", "json"];
    cluster.start_worker_with("killed", &json);

    // Frozen once the store keeps a checkpoint past the first, so that what the store says is what the killed
    // worker had shipped and reported.
    let recovering = format!(
        "SELECT (progress->>'step') || ' ' || checkpoint_digest FROM job \
         WHERE run_id = {run} AND kind = 'recover' AND state = 'leased' AND checkpoint_digest IS NOT NULL \
         AND (progress->>'step')::bigint > {CHECKPOINT_EVERY}"
    );
    let (last_step, checkpoint) = wait_for(RECOVERING_TIMEOUT, "the recovery's second checkpoint", || {
        database.psql(&recovering).lines().next()?;
        cluster.signal_workers(libc::SIGSTOP);
        // Lets a heartbeat already sent land on the coordinator.
        std::thread::sleep(Duration::from_millis(500));
        let line = database.psql(&recovering);
        let Some((step, digest)) = line.split_once(' ') else {
            cluster.signal_workers(libc::SIGCONT);
            return None;
        };
        Some((step.parse::<u64>().unwrap(), digest.to_owned()))
    });
    cluster.kill_worker("killed");
    assert!(
        scratch.join("artifacts").join(&checkpoint).is_file(),
        "the checkpoint {checkpoint} is in the coordinator's artifact store"
    );

    cluster.start_worker_with("second", &json);
    cluster.watch(run);
    assert_eq!(
        database.psql(&format!("SELECT state FROM run WHERE id = {run}")),
        "done",
        "{}",
        database.psql(&format!(
            "SELECT kind, state, last_error FROM job WHERE run_id = {run} AND state <> 'done'"
        ))
    );
    assert_eq!(
        database.psql(&format!(
            "SELECT w.name FROM job j JOIN worker w ON w.id = j.done_by WHERE j.run_id = {run} AND j.kind = 'recover'"
        )),
        "second"
    );

    let results = scratch.join("results");
    cluster.results(run, &results);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("recover_report.json")).unwrap()).unwrap();
    let resumed_at = report["resumed_at"].as_u64().expect("the report says where it resumed");
    assert!(
        resumed_at > 0 && resumed_at <= last_step && last_step - resumed_at <= CHECKPOINT_EVERY,
        "resumed at step {resumed_at}; the killed worker had reported step {last_step}"
    );
    assert_eq!(resumed_at % CHECKPOINT_EVERY, 0, "a checkpoint's step");
    assert_eq!(report["steps"], STEPS);
    // The killed worker's steps up to the checkpoint come from it: every step once, the first included.
    let history: Vec<u64> = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["step"].as_u64().unwrap())
        .collect();
    assert_eq!(history, (1..=STEPS).collect::<Vec<_>>());
    let recovered = std::fs::read(results.join("recovered.onnx")).unwrap();
    assert!(recovered.len() > 1000, "recovered.onnx: {} bytes", recovered.len());
    let plot = std::fs::read(results.join("recover.png")).unwrap();
    assert!(plot.starts_with(b"\x89PNG"), "recover.png is a PNG");
    let second = Log::read(&scratch, "second");
    assert!(
        second
            .events()
            .any(|(_, _, message)| message == "resuming from the job's last checkpoint"),
        "the second worker downloaded the checkpoint"
    );
}
