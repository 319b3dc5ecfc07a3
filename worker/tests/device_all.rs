//! `worker join --device all` on real processes: a worker per device in one process. This machine has no GPU,
//! so the hidden, test-only `SENSGRID_CPU_STANDINS=N` makes `all` see N CPU stand-ins where it would see N
//! GPUs; everything past that choice (a thread, lease loop, registration, name and cache folder per device,
//! signals, a failed device) is what a multi-GPU box runs. Which devices `all` picks from a GPU count is
//! unit-tested in `devices.rs`.
//!
//! 1. One process registers N workers, each named after its device and with its own cache folder; a run's jobs
//!    are done by more than one of them; one SIGTERM makes all of them leave, and the process exits 0.
//! 2. One device's worker failing for good (its cache folder held by another worker) stops the others and the
//!    process exits non-zero naming that device, instead of running on without it.
//!
//! A test binary of its own, so cargo runs it alone: three workers keep both cores busy.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Cluster, Database, Proc, RUN_TIMEOUT, TailsOnPanic, WORKER_TOKEN, signal, wait_for};

/// How many CPU stand-ins `--device all` sees.
const STANDINS: usize = 3;
/// How long the workers may take to start, or to leave once told to, on two busy cores.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// `worker join --device all --name box --cache-dir CACHE` with [`STANDINS`] stand-ins, its log in `log`.
fn join_all(cluster: &Cluster, cache: &Path, log: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["join", "--coordinator", &cluster.url(), "--token", WORKER_TOKEN])
            .args(["--device", "all", "--name", "box", "--cache-dir"])
            .arg(cache)
            .env("SENSGRID_CPU_STANDINS", STANDINS.to_string())
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn standin(index: usize) -> String {
    format!("cpu-standin-{index}")
}

#[test]
fn device_all_registers_a_worker_per_device_that_share_a_run_and_one_sigterm_stops_them_all() {
    let scratch = common::scratch("device_all");
    let _tails = TailsOnPanic(scratch.clone());
    let data = scratch.join("data");
    common::synth("det", "4", "5", &data);
    let model = common::root().join("models/ch_PP-OCRv3_det_infer.onnx");
    // Two groups at three ratios: six cells for three workers.
    let sections = "Sensitivity:\n  ratios: [0.2, 0.4, 0.6]\n  skip: ['conv2d_transpose_*', 'conv2d_[1-9]*']\n";
    let config = scratch.join("det.yml");
    std::fs::write(&config, common::det_config(&model, &data, sections)).unwrap();

    let database = Database::create("device_all");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    let cache = scratch.join("cache");
    let mut worker = join_all(&cluster, &cache, &scratch.join("all.log"));

    let expected: Vec<String> = (0..STANDINS).map(|i| format!("box/{} cpu", standin(i))).collect();
    let registered = wait_for(START_TIMEOUT, "every device's worker to register", || {
        let rows = database.psql("SELECT name || ' ' || device FROM worker ORDER BY name");
        (rows.lines().count() == STANDINS).then_some(rows)
    });
    assert_eq!(registered.lines().collect::<Vec<_>>(), expected);
    let listed = cluster.client_ok(&["workers"], common::CLIENT_TIMEOUT).stdout;
    for index in 0..STANDINS {
        assert!(listed.contains(&format!("box/{}", standin(index))), "{listed}");
        assert!(
            cache.join(standin(index)).join("lock").is_file(),
            "{} has no cache folder of its own",
            standin(index)
        );
    }

    let run = cluster.submit(&config);
    let watched = cluster.client(&["watch", &run.to_string()], RUN_TIMEOUT);
    assert_eq!(watched.status.code(), Some(0), "watch: {}", watched.stderr);
    let done_by = database.psql(&format!(
        "SELECT DISTINCT w.name FROM job j JOIN worker w ON w.id = j.done_by WHERE j.run_id = {run} ORDER BY 1"
    ));
    assert!(done_by.lines().count() > 1, "one worker did the whole run: {done_by}");

    // One SIGTERM, as `docker compose stop` sends: every worker leaves, then the process, with success.
    signal(&worker, libc::SIGTERM);
    let status = wait_for(START_TIMEOUT, "the workers to leave", || worker.0.try_wait().unwrap());
    assert!(status.success(), "exited with {status} after SIGTERM");
    let log = std::fs::read_to_string(scratch.join("all.log")).unwrap();
    assert_eq!(log.matches("worker left").count(), STANDINS, "{log}");
}

#[test]
fn device_all_stops_every_worker_and_fails_naming_the_device_whose_worker_stopped_for_good() {
    let scratch = common::scratch("device_all_failed");
    let _tails = TailsOnPanic(scratch.clone());
    let database = Database::create("device_all_failed");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    let cache = scratch.join("cache");

    // A worker of its own on the second stand-in's cache folder: that stand-in cannot lock it.
    let held = standin(1);
    let holder_log = scratch.join("holder.log");
    let _holder = Proc(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["join", "--coordinator", &cluster.url(), "--token", WORKER_TOKEN])
            .args(["--device", "cpu", "--name", "holder", "--cache-dir"])
            .arg(cache.join(&held))
            .stdout(Stdio::null())
            .stderr(File::create(&holder_log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(START_TIMEOUT, "the holder to register", || {
        std::fs::read_to_string(&holder_log)
            .unwrap()
            .contains("registered")
            .then_some(())
    });

    let log = scratch.join("all.log");
    let mut worker = join_all(&cluster, &cache, &log);
    let status = wait_for(START_TIMEOUT, "--device all to exit", || worker.0.try_wait().unwrap());
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(2), "{log}");
    let error = log.lines().last().unwrap_or_default();
    assert!(
        error.starts_with("error: worker stopped for good:")
            && error.contains(&format!("{held}: --cache-dir"))
            && error.contains("another worker holds it"),
        "{log}"
    );
    for index in [0, 2] {
        assert!(
            !error.contains(&standin(index)),
            "{} did not fail: {log}",
            standin(index)
        );
    }
    assert!(
        log.contains("asking the other workers to finish their jobs and leave"),
        "{log}"
    );
    assert_eq!(log.matches("worker left").count(), STANDINS - 1, "{log}");
}
