//! Pipelined leases on real processes (issue 24): a real `coordinator serve` on a fresh database, real
//! `worker join` processes with JSON logs, PP-OCRv3 det on four synthetic images.
//!
//! A worker with `--prefetch 1` is killed with SIGKILL while it holds two leases, the job it computes and the
//! one it prefetched. A second worker joins and the run ends done with every cell, nothing lost: the two jobs
//! come back when their leases expire (the cluster's 4 s lease) and the second worker does them. Nothing is
//! computed twice: each job is completed once across both logs, and the only job started on both workers is
//! the one the killed worker was computing. The same config run again by a worker with `--prefetch 0` gives the
//! same results, job for job.
//!
//! Interrupted with SIGTERM, a worker with `--prefetch 2` reports the job it computes and hands its prefetched
//! ones back at once, without spending their attempts.
//!
//! A test binary of its own, so cargo runs it apart from the other real-process tests.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Cluster, Database, Log, TailsOnPanic, root, wait_for};

/// How long a worker may take to complete a job and hold its leases: loading the model, the baseline and a cell
/// on two busy cores.
const HOLD_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn a_worker_killed_holding_a_prefetched_job_loses_nothing_and_computes_nothing_twice() {
    let scratch = common::scratch("prefetch_kill");
    let _tails = TailsOnPanic(scratch.clone());
    let config = small_config(&scratch);

    let database = Database::create("prefetch_kill");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    let run = cluster.submit(&config);
    let json = ["--log-format", "json"];
    cluster.start_worker_with("killed", &[&json[..], &["--prefetch", "1"]].concat());

    // Frozen once it has completed a job and holds two leases, so that what the store and its log say is what
    // it held and had done when killed.
    let held = freeze_holding(&cluster, &database, run, "killed", 2);
    cluster.kill_worker("killed");
    let killed = Log::read(&scratch, "killed");
    let computing = killed.running().expect("the killed worker was computing a job");
    assert!(
        held.get(&computing.0) == Some(&computing.1),
        "the job computing, {computing:?}, is not one of the two held: {held:?}"
    );
    let (prefetched, _) = held
        .iter()
        .find(|&(&job, _)| job != computing.0)
        .expect("a prefetched job");
    assert!(
        !started(&killed).contains_key(prefetched),
        "job {prefetched} was prefetched, not started"
    );

    cluster.start_worker_with("second", &[&json[..], &["--prefetch", "1"]].concat());
    cluster.watch(run);
    assert_eq!(
        database.psql(&format!("SELECT state FROM run WHERE id = {run}")),
        "done"
    );
    let cells: usize = database
        .psql(&format!(
            "SELECT count(*) FROM job WHERE run_id = {run} AND kind = 'cell'"
        ))
        .parse()
        .unwrap();
    assert!(cells >= 4, "{cells} cells: too few for the test to hold two");
    assert_eq!(
        database.psql(&format!(
            "SELECT count(*) FROM job WHERE run_id = {run} AND state <> 'done'"
        )),
        "0",
        "every job done: {}",
        database.psql(&format!(
            "SELECT kind, group_key, ratio, state, last_error FROM job WHERE run_id = {run}"
        ))
    );
    // Both held jobs came back and went to the second worker, under a later lease.
    for (job, epoch) in &held {
        assert_eq!(
            database.psql(&format!(
                "SELECT w.name || ' ' || (j.lease_epoch > {epoch}) FROM job j JOIN worker w ON w.id = j.done_by \
                 WHERE j.id = {job}"
            )),
            "second true",
            "job {job}, held at epoch {epoch} when the worker was killed"
        );
    }
    let results = scratch.join("results");
    cluster.results(run, &results);
    let csv = std::fs::read_to_string(results.join("sensitivities.csv")).unwrap();
    assert_eq!(csv.lines().count(), cells + 1, "a line per cell: {csv}");

    // Nothing computed twice: one completion per job across both logs, none of the killed worker's again, and
    // only the job it was computing started on both.
    let second = Log::read(&scratch, "second");
    let jobs: Vec<i64> = database
        .psql(&format!("SELECT id FROM job WHERE run_id = {run} ORDER BY id"))
        .lines()
        .map(|id| id.parse().unwrap())
        .collect();
    let (completed_killed, completed_second) = (completed(&killed), completed(&second));
    for job in &jobs {
        let times = completed_killed.get(job).unwrap_or(&0) + completed_second.get(job).unwrap_or(&0);
        assert_eq!(
            times, 1,
            "job {job} completed {times} times: killed {completed_killed:?}, second {completed_second:?}"
        );
    }
    let (started_killed, started_second) = (started(&killed), started(&second));
    let started_on_both: Vec<&i64> = started_killed
        .keys()
        .filter(|job| started_second.contains_key(job))
        .collect();
    assert_eq!(
        started_on_both,
        [&computing.0],
        "started on both workers: killed {started_killed:?}, second {started_second:?}"
    );
    assert!(
        started_killed.values().chain(started_second.values()).all(|&n| n == 1),
        "a job started twice on one worker: killed {started_killed:?}, second {started_second:?}"
    );
    // The second worker pipelined: a job started before the completion of the one before it was taken.
    assert!(
        pipelined(&second),
        "the second worker never started a job before the previous one's completion"
    );

    // The same config without prefetching: the same results, job for job.
    cluster.stop_worker("second");
    cluster.start_worker_with("serial", &[&json[..], &["--prefetch", "0"]].concat());
    let serial_run = cluster.submit(&config);
    cluster.watch(serial_run);
    let serial = Log::read(&scratch, "serial");
    assert!(
        !pipelined(&serial),
        "--prefetch 0 started a job before the previous one was completed"
    );
    let results_of = |run: i64| {
        database.psql(&format!(
            "SELECT kind || ' ' || coalesce(group_key, '') || ' ' || coalesce(ratio::text, '') || ' ' || (result -> 'metrics') \
             FROM job WHERE run_id = {run} ORDER BY kind, group_key, ratio"
        ))
    };
    assert_eq!(
        results_of(run),
        results_of(serial_run),
        "prefetch 1 (run {run}) and prefetch 0 (run {serial_run})"
    );
}

/// The first interrupt (SIGTERM) to a worker holding its job and two prefetched ones: it finishes and reports the
/// job it computes, hands the prefetched ones back at once without spending an attempt (not at lease expiry),
/// and leaves; another worker ends the run.
#[test]
fn an_interrupted_worker_reports_its_job_and_hands_its_prefetched_ones_back_at_once() {
    let scratch = common::scratch("prefetch_interrupt");
    let _tails = TailsOnPanic(scratch.clone());
    let config = small_config(&scratch);
    let database = Database::create("prefetch_interrupt");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    let run = cluster.submit(&config);
    cluster.start_worker_with("interrupted", &["--log-format", "json", "--prefetch", "2"]);

    // Frozen holding a cell and two prefetched ones, past the baseline: the job it finishes must end well within
    // the report's grace after the interrupt. Should the worker start a prefetched one before it sees the
    // signal, one is still left to hand back.
    let held = freeze_holding(&cluster, &database, run, "interrupted", 3);
    let computing = Log::read(&scratch, "interrupted")
        .running()
        .expect("the worker was computing a job");
    // Pending while it is frozen: the first interrupt it sees.
    cluster.signal_workers(libc::SIGTERM);
    cluster.signal_workers(libc::SIGCONT);
    let (_, worker) = cluster
        .workers
        .iter_mut()
        .find(|(name, _)| name == "interrupted")
        .unwrap();
    let status = wait_for(Duration::from_secs(60), "the interrupted worker to leave", || {
        worker.try_wait().unwrap()
    });
    assert!(status.success(), "the interrupted worker exited with {status}");

    let log = Log::read(&scratch, "interrupted");
    let (completed, handed_back) = (completed(&log), count(&log, "handed back"));
    assert!(
        completed.contains_key(&computing.0),
        "the job computing at the interrupt, {computing:?}, was not reported"
    );
    assert!(!handed_back.is_empty(), "nothing handed back of {held:?}");
    for (job, epoch) in &held {
        if completed.contains_key(job) {
            continue;
        }
        assert!(
            handed_back.contains_key(job),
            "job {job} was neither completed nor handed back"
        );
        // Queued again at once, the attempt its claim counted taken back (an expired lease spends it).
        assert_eq!(
            database.psql(&format!(
                "SELECT state || ' ' || attempt || ' ' || lease_epoch || ' ' || last_error FROM job WHERE id = {job}"
            )),
            format!("queued 0 {epoch} released: the worker was interrupted")
        );
    }
    cluster.start_worker("after");
    cluster.watch(run);
    assert_eq!(
        database.psql(&format!(
            "SELECT count(*) FROM job WHERE run_id = {run} AND state <> 'done'"
        )),
        "0"
    );
}

/// A det config on a fresh synthetic set of six images: two groups (conv2d_0 and conv2d_1) at nine ratios,
/// eighteen cells of a fraction of a second each once the baseline has loaded the model (for seconds).
fn small_config(scratch: &Path) -> PathBuf {
    let data = scratch.join("data");
    common::synth("det", "6", "11", &data);
    let sections = "Sensitivity:\n  ratios: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]\n  skip: ['conv2d_transpose_*', 'conv2d_[2-9]*', 'conv2d_1[0-9]*']\n";
    let model = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    let config = scratch.join("det.yml");
    std::fs::write(&config, common::det_config(&model, &data, sections)).unwrap();
    config
}

/// Waits until `worker`, the cluster's only worker, has completed a job of `run` and holds `leases` of its jobs,
/// then freezes it (SIGSTOP): the leases it holds, job to epoch. The store and its log say from then on what
/// it held and had done.
fn freeze_holding(cluster: &Cluster, database: &Database, run: i64, worker: &str, leases: usize) -> BTreeMap<i64, i64> {
    let leased = format!(
        "SELECT string_agg(j.id || ':' || j.lease_epoch, ' ' ORDER BY j.id) FROM job j \
         JOIN worker w ON w.id = j.lease_owner WHERE j.run_id = {run} AND j.state = 'leased' AND w.name = '{worker}'"
    );
    let holding = || {
        let held = parse_leases(&database.psql(&leased));
        (held.len() == leases && !completed(&Log::read(&cluster.scratch, worker)).is_empty()).then_some(held)
    };
    wait_for(HOLD_TIMEOUT, &format!("{worker} to hold {leases} leases"), || {
        holding()?;
        cluster.signal_workers(libc::SIGSTOP);
        // Lets a call already sent land on the coordinator.
        std::thread::sleep(Duration::from_millis(500));
        let held = holding();
        if held.is_none() {
            cluster.signal_workers(libc::SIGCONT);
        }
        held
    })
}

/// `id:epoch id:epoch …` as a map.
fn parse_leases(text: &str) -> BTreeMap<i64, i64> {
    text.split_whitespace()
        .map(|lease| {
            let (job, epoch) = lease.split_once(':').unwrap();
            (job.parse().unwrap(), epoch.parse().unwrap())
        })
        .collect()
}

/// How often each job has `message` in `log`.
fn count(log: &Log, message: &str) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for (job, _, event) in log.events() {
        if event == message {
            *counts.entry(job).or_default() += 1;
        }
    }
    counts
}

fn completed(log: &Log) -> BTreeMap<i64, usize> {
    count(log, "completed")
}

fn started(log: &Log) -> BTreeMap<i64, usize> {
    count(log, "started")
}

/// Whether the worker ever started a job before the coordinator had taken the previous job's completion.
fn pipelined(log: &Log) -> bool {
    let mut open = 0usize;
    for (_, _, event) in log.events() {
        match event.as_str() {
            "started" => {
                if open > 0 {
                    return true;
                }
                open += 1;
            }
            "completed" => open = open.saturating_sub(1),
            _ => {}
        }
    }
    false
}
