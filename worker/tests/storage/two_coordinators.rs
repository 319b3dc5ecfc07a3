//! Item 5: two `coordinator serve` processes on one Postgres database, each with a worker of its own. Both
//! pipelines see a run's grid finish and both plan it; the second plan used to queue the export anew while a
//! worker held it (or reopen the run once it was done), so the export was computed twice. Now the first plan
//! is the run's: the export is leased once (one epoch), started once, and the run ends done with one pruned
//! model.
//!
//! The race is made certain, not left to timing: for the planned run, each coordinator's artifact dir (a
//! symlink) points at a copy whose model is a FIFO, so each pipeline, having read the run unplanned, waits in
//! its planner until the test writes the model into its FIFO: first A's, then, once A's export is leased,
//! B's. The workers hold the model and set in their caches from a first run, so nothing else reads the FIFOs.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::common::{Cluster, Database, RUN_TIMEOUT, TailsOnPanic, root, scratch, synth, wait_for};

/// 3 of PP-OCRv3 det's groups at one ratio: the grid is done within seconds.
const SKIP: &str = "['conv2d_transpose_*', 'conv2d_[1-6]?.w_0', 'conv2d_[4-9].w_0']";

#[test]
fn two_coordinators_on_one_database_export_a_planned_run_once() {
    let scratch = scratch("two_coordinators");
    let scratch_b = scratch.join("b");
    std::fs::create_dir_all(scratch_b.join("client")).unwrap();
    let _tails = TailsOnPanic(scratch.clone());
    let _tails_b = TailsOnPanic(scratch_b.clone());
    // Both coordinators serve one store of artifacts, each through a symlink of its own.
    let store = scratch.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let (link_a, link_b) = (scratch.join("artifacts"), scratch_b.join("artifacts"));
    point(&link_a, &store);
    point(&link_b, &store);
    let data = scratch.join("data");
    synth("det", "4", "7", &data);
    let model = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    let grid_config = scratch.join("det_grid.yml");
    std::fs::write(&grid_config, det_config(&model, &data, "")).unwrap();
    let prune_config = scratch.join("det_prune.yml");
    std::fs::write(&prune_config, det_config(&model, &data, PRUNE)).unwrap();

    let database = Database::create("two_coordinators");
    let mut a = Cluster::new(&scratch, &database.url);
    let mut b = Cluster::new(&scratch_b, &database.url);
    a.start_coordinator();
    b.start_coordinator();
    a.start_worker("a1");
    b.start_worker("b1");

    // A grid alone: both coordinators hand out its jobs, and both workers cache the model and the set.
    let grid = a.submit(&grid_config);
    a.watch(grid);
    let workers = database.psql(&format!(
        "SELECT count(DISTINCT done_by) FROM job WHERE run_id = {grid} AND done_by IS NOT NULL"
    ));
    assert_eq!(workers, "2", "both coordinators' workers computed jobs of run {grid}");

    // The planned run: each coordinator's planner reads the model from a FIFO of its own.
    let digest = database.psql(&format!("SELECT model_digest FROM run WHERE id = {grid}"));
    let fifo_a = fifo_copy(&store, &scratch.join("store-a"), &digest);
    let fifo_b = fifo_copy(&store, &scratch.join("store-b"), &digest);
    let run = a.submit(&prune_config);
    point(&link_a, &scratch.join("store-a"));
    point(&link_b, &scratch.join("store-b"));
    let writer_a = wait_for(
        RUN_TIMEOUT,
        "A's pipeline to plan run 2 (its planner opens its FIFO)",
        || open_reader_end(&fifo_a),
    );
    let writer_b = wait_for(
        RUN_TIMEOUT,
        "B's pipeline to plan run 2 (its planner opens its FIFO)",
        || open_reader_end(&fifo_b),
    );
    let unplanned = database.psql(&format!("SELECT plan IS NULL FROM run WHERE id = {run}"));
    assert_eq!(unplanned, "t", "both pipelines read run {run} unplanned");
    feed(writer_a, &model);
    let export_leased =
        format!("SELECT count(*) FROM job WHERE run_id = {run} AND kind = 'export' AND state = 'leased'");
    wait_for(RUN_TIMEOUT, "A's plan and its export leased", || {
        (database.psql(&export_leased) == "1").then_some(())
    });
    // B plans from what it read before A's plan: its plan comes second, while a worker holds the export.
    feed(writer_b, &model);
    a.watch(run);

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
        "run {run}'s export was leased once and made a pruned model: {exports}"
    );
    let started = format!("run_id={run} ");
    let export_starts: usize = [scratch.join("a1.log"), scratch_b.join("b1.log")]
        .iter()
        .map(|log| {
            std::fs::read_to_string(log)
                .unwrap()
                .lines()
                .filter(|l| l.contains(&started) && l.contains("kind=export}: started"))
                .count()
        })
        .sum();
    assert_eq!(
        export_starts, 1,
        "run {run}'s export was computed once across both workers"
    );
}

/// Points the symlink `link` at `target`, in one rename.
fn point(link: &Path, target: &Path) {
    let next = link.with_extension("next");
    let _ = std::fs::remove_file(&next);
    std::os::unix::fs::symlink(target, &next).unwrap();
    std::fs::rename(&next, link).unwrap();
}

/// `dir`: every file of `store` (hard links), but the model `digest` a FIFO. Its path.
fn fifo_copy(store: &Path, dir: &Path, digest: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(store).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name() != digest {
            std::fs::hard_link(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let fifo = dir.join(digest);
    let path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a valid C string.
    assert_eq!(
        unsafe { libc::mkfifo(path.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        fifo.display()
    );
    fifo
}

/// The FIFO's writing end once a reader has opened it (a planner is waiting in it); `None` before.
fn open_reader_end(fifo: &Path) -> Option<File> {
    let path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: open(2) on a valid C string; without a reader a non-blocking open for writing fails (ENXIO).
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is open and ours; blocking writes from here on, so write_all writes the whole model.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        Some(File::from_raw_fd(fd))
    }
}

/// Writes the model into a waiting planner's FIFO and closes it: the planner reads it whole and plans.
fn feed(mut writer: File, model: &Path) {
    writer.write_all(&std::fs::read(model).unwrap()).unwrap();
}

const PRUNE: &str = "Prune:
  max_loss: 0.5
  export: true
";

/// One ratio on three groups (three cells), then `prune`.
fn det_config(model: &Path, data: &Path, prune: &str) -> String {
    crate::common::det_config(
        model,
        data,
        &format!(
            "Sensitivity:
  ratios: [0.5]
  criterion: l1_norm
  metric: hmean
  skip: {SKIP}
{prune}"
        ),
    )
}
