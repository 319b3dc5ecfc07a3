//! Item 6: signals. `coordinator run` takes its workers down on SIGINT, SIGTERM and SIGHUP (SIGHUP left them
//! running under init before), and a worker's shutdown is bounded in time: one SIGTERM with a report it cannot
//! deliver (its coordinator gone) used to be ignored while it retried forever, and a second one while its
//! coordinator no longer answered (stopped mid-call) waited on the hand-back forever.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, CLIENT_TIMEOUT, Cluster, Database, Proc, RUN_TIMEOUT, TailsOnPanic, path, root, wait_for};

#[test]
fn coordinator_run_takes_its_workers_down_on_sigint_sigterm_and_sighup() {
    let scratch = common::scratch("signals_run");
    let _tails = TailsOnPanic(scratch.clone());
    let data = scratch.join("data");
    common::synth("det", "3", "5", &data);
    let config = slow_config(&scratch, &data);
    let out = scratch.join("out");
    for (signal, name) in [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
    ] {
        let mut run = Proc(
            Command::new(common::coordinator_bin())
                .args(["run", "--workers", "2", "--device", "cpu", "-c"])
                .arg(&config)
                .arg("--out")
                .arg(&out)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(scratch.join(format!("run-{name}.log"))).unwrap())
                .spawn()
                .unwrap(),
        );
        wait_for(RUN_TIMEOUT, "both workers to run", || {
            (workers_of(&out).len() == 2).then_some(())
        });
        common::signal(&run, signal);
        let status = wait_for(Duration::from_secs(30), &format!("run to end on {name}"), || {
            run.try_wait().unwrap()
        });
        assert_eq!(status.signal(), Some(signal), "run on {name}: {status}");
        // The workers are killed before the coordinator ends; give the kernel a moment to reap them.
        wait_for(Duration::from_secs(10), &format!("no worker left after {name}"), || {
            workers_of(&out).is_empty().then_some(())
        });
    }
}

#[test]
fn a_worker_leaves_within_its_grace_on_one_sigterm_with_an_undeliverable_report() {
    let scratch = common::scratch("signals_report");
    let _tails = TailsOnPanic(scratch.clone());
    let database = Database::create("signals_report");
    let mut cluster = busy_cluster(&scratch, &database);
    let log = scratch.join("w1.log");
    // The coordinator goes away while the worker computes (its model and set downloaded): its report then
    // fails, and is retried.
    let cache = scratch.join("cache-w1");
    wait_for(RUN_TIMEOUT, "w1 to have downloaded the job's model and set", || {
        (entries(&cache.join("models")) > 0 && entries(&cache.join("bundles")) > 0).then_some(())
    });
    let coordinator = cluster.coordinator.take().unwrap();
    drop(coordinator);
    wait_for(Duration::from_secs(120), "the report to fail", || {
        read(&log).contains("reporting failed; retrying").then_some(())
    });
    let (_, worker) = cluster.workers.first().unwrap();
    common::signal(worker, libc::SIGTERM);
    let signalled = Instant::now();
    let (_, mut worker) = cluster.workers.remove(0);
    let status = wait_for(Duration::from_secs(40), "the worker to leave on one SIGTERM", || {
        worker.try_wait().unwrap()
    });
    // REPORT_GRACE is 10 s after the first interrupt; the backoff's sleep ends early on it.
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(20), "the worker took {took:?} to leave");
    assert!(status.success(), "worker: {status}");
    assert!(read(&log).contains("report not delivered"), "{}", read(&log));
}

#[test]
fn a_worker_leaves_within_its_grace_on_a_second_sigterm_while_its_coordinator_hangs() {
    let scratch = common::scratch("signals_hang");
    let _tails = TailsOnPanic(scratch.clone());
    let database = Database::create("signals_hang");
    let mut cluster = busy_cluster(&scratch, &database);
    // Stopped, the coordinator keeps its socket: calls connect and then wait for an answer that never comes.
    common::signal(cluster.coordinator.as_ref().unwrap(), libc::SIGSTOP);
    let (_, mut worker) = cluster.workers.remove(0);
    common::signal(&worker, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    common::signal(&worker, libc::SIGTERM);
    let signalled = Instant::now();
    let status = wait_for(
        Duration::from_secs(40),
        "the worker to leave on a second SIGTERM",
        || worker.try_wait().unwrap(),
    );
    let took = signalled.elapsed();
    // HAND_BACK_GRACE is 5 s after the second interrupt.
    assert!(
        took < Duration::from_secs(15),
        "the worker took {took:?} to leave: {status}"
    );
    common::signal(cluster.coordinator.as_ref().unwrap(), libc::SIGCONT);
}

/// A coordinator on `database` and one worker `w1` that has started the first job of a run (six images at
/// full size: seconds of work).
fn busy_cluster(scratch: &Path, database: &Database) -> Cluster {
    let data = scratch.join("data");
    common::synth("det", "6", "5", &data);
    let config = slow_config(scratch, &data);
    let mut cluster = Cluster::new(scratch, &database.url);
    cluster.start_coordinator();
    cluster.start_worker("w1");
    cluster.client_ok(&["submit", "-c", path(&config)], CLIENT_TIMEOUT);
    let log = scratch.join("w1.log");
    wait_for(RUN_TIMEOUT, "w1 to start a job", || {
        read(&log).contains(": started").then_some(())
    });
    cluster
}

/// The det config at full size (960 pixels a side): a job takes seconds, long enough to be caught in it.
fn slow_config(scratch: &Path, data: &Path) -> std::path::PathBuf {
    let model = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    let sections = "Sensitivity:\n  ratios: [0.5]\n  skip: ['conv2d_transpose_*', 'conv2d_[1-9]*']\n";
    let config = scratch.join("det.yml");
    let text = common::det_config(&model, data, sections).replace("limit_side_len: 320", "limit_side_len: 960");
    std::fs::write(&config, text).unwrap();
    config
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The pids of the `worker join` processes whose cache is under `out`.
fn workers_of(out: &Path) -> Vec<u32> {
    let needle = out.join("cache-").display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(" join ") && cmdline.contains(&needle)).then_some(pid)
        })
        .collect()
}
