//! How the processes start and end, on real binaries: `coordinator run` never leaves its `worker join` children
//! behind (interrupted, the workers stop and it ends by the signal; killed with SIGKILL, the kernel kills its
//! workers), a restart on the same `--out` appends to the workers' logs, a second worker on one `--cache-dir` is
//! refused, and a stdout whose reader left ends a command quietly.
//!
//! A test binary of its own, so cargo runs it alone: `coordinator run` keeps both cores busy with two workers.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, coordinator_bin, free_port, path, root, scratch, signal, synth, wait_for};

/// How long `coordinator run` may take to check the config and start its workers, on two busy cores.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the workers may outlive their coordinator: a kill is immediate, this only covers a loaded machine.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn coordinator_run_leaves_no_worker_behind_when_interrupted_or_killed_and_a_restart_appends_to_their_logs() {
    let scratch = scratch("lifecycle-run");
    let _tails = common::TailsOnPanic(scratch.clone());
    let data = scratch.join("data");
    synth("det", "2", "3", &data);
    let config = scratch.join("det.yml");
    // Every group at nine ratios: the run lasts long past the moment it is stopped.
    let sensitivity = "Sensitivity:\n  ratios: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]\n";
    let model = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    std::fs::write(&config, common::det_config(&model, &data, sensitivity)).unwrap();
    let out = scratch.join("out");

    // 1. SIGINT (Ctrl-C): the coordinator stops its workers and ends by the signal.
    let mut coordinator = start_run(&config, &out, &scratch.join("run-1.log"));
    let workers = started_workers(&coordinator, &out, 1);
    // The run is created (and named in run.json, for the restart below) once the artifacts are uploaded.
    wait_for(START_TIMEOUT, "the run to be created", || {
        out.join("run.json").is_file().then_some(())
    });
    signal(&coordinator, libc::SIGINT);
    let status = wait_for(Duration::from_secs(60), "coordinator run to stop", || {
        coordinator.try_wait().unwrap()
    });
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGINT),
        "ended by the signal that interrupted it: {status}"
    );
    let stderr = std::fs::read_to_string(scratch.join("run-1.log")).unwrap();
    assert!(stderr.contains("interrupted by SIGINT: workers stopped"), "{stderr}");
    assert_exited(&workers);

    // 2. Started again on the same --out: the run resumes, and the workers' logs keep the first session's lines.
    let mut coordinator = start_run(&config, &out, &scratch.join("run-2.log"));
    let workers = started_workers(&coordinator, &out, 2);
    let stderr = std::fs::read_to_string(scratch.join("run-2.log")).unwrap();
    assert!(stderr.contains("resuming run"), "{stderr}");
    // SIGKILL: no handler runs; the kernel kills the workers (PR_SET_PDEATHSIG).
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
    assert_exited(&workers);
}

#[test]
fn a_second_worker_on_a_cache_dir_a_live_worker_holds_is_refused_naming_it() {
    let scratch = scratch("lifecycle-cache");
    let cache = scratch.join("cache");
    // No coordinator answers there: the first worker holds its cache while it retries connecting.
    let coordinator = format!("http://127.0.0.1:{}", free_port());
    let join = |log: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
        command
            .args(["join", "--coordinator", &coordinator, "--token", "t", "--device", "cpu"])
            .arg("--cache-dir")
            .arg(&cache)
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap());
        command
    };
    let first_log = scratch.join("first.log");
    let _first = Proc(join(&first_log).spawn().unwrap());
    // It opens its cache before it connects.
    wait_for(
        Duration::from_secs(60),
        "the first worker to try the coordinator",
        || {
            std::fs::read_to_string(&first_log)
                .unwrap()
                .contains("connecting failed; retrying")
                .then_some(())
        },
    );
    let second_log = scratch.join("second.log");
    let mut second = Proc(join(&second_log).spawn().unwrap());
    let status = wait_for(Duration::from_secs(60), "the second worker to be refused", || {
        second.try_wait().unwrap()
    });
    let stderr = std::fs::read_to_string(&second_log).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--cache-dir {}: another worker holds it", cache.display())),
        "{stderr}"
    );
}

#[test]
fn inspect_into_a_pipe_whose_reader_left_exits_0_without_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    // `worker inspect MODEL | head -1` once head has exited.
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("inspect")
        .arg(root().join("models/ch_PP-OCRv3_det_infer.onnx"))
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr}");
}

/// `coordinator run` on `config` with two CPU workers, its stderr in `log`.
fn start_run(config: &Path, out: &Path, log: &Path) -> Proc {
    Proc(
        Command::new(coordinator_bin())
            .args(["run", "-c", path(config), "--out", path(out)])
            .args(["--workers", "2", "--device", "cpu"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Waits until each worker's log under `out/logs` holds its `session`th registration (the logs are appended
/// to across restarts), then answers the coordinator's children: its two workers.
fn started_workers(coordinator: &Proc, out: &Path, session: usize) -> Vec<libc::pid_t> {
    wait_for(START_TIMEOUT, "both workers to register", || {
        (1..=2)
            .all(|i| {
                let log = std::fs::read_to_string(out.join("logs").join(format!("worker-{i}.log")));
                log.is_ok_and(|log| log.matches("registered worker_id=").count() >= session)
            })
            .then_some(())
    });
    let coordinator = libc::pid_t::try_from(coordinator.id()).unwrap();
    let workers = children(coordinator);
    assert_eq!(workers.len(), 2, "the coordinator's children: {workers:?}");
    workers
}

/// The live children of `parent`, from /proc.
fn children(parent: libc::pid_t) -> Vec<libc::pid_t> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(state, ppid)| ppid == parent && state != 'Z'))
        .collect()
}

/// A process's state letter and parent, from /proc/PID/stat; `None` once it is gone.
fn proc_stat(pid: libc::pid_t) -> Option<(char, libc::pid_t)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields after it are split from its end.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// Every one of `workers` has exited (gone, or a zombie waiting for a reaper) within [`EXIT_TIMEOUT`]. Those
/// that have not are killed before the test fails, so that none is left running.
fn assert_exited(workers: &[libc::pid_t]) {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let running = |pid: &libc::pid_t| proc_stat(*pid).is_some_and(|(state, _)| state != 'Z');
    let mut alive: Vec<libc::pid_t> = workers.iter().copied().filter(running).collect();
    while !alive.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        alive.retain(running);
    }
    for &pid in &alive {
        // SAFETY: kill(2) on a worker this test saw started; it is still running, so the pid is still its own.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(
        alive.is_empty(),
        "workers {alive:?} outlived their coordinator by {EXIT_TIMEOUT:?}"
    );
}
