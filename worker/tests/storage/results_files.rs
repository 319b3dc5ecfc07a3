//! Item 4 of the storage-faults issue: `coordinator results` wrote its files in place, so a full disk left a
//! 0-byte `sen.pickle` or `sensitivities.csv`, new files beside old ones, and truncated plots behind exit code
//! 0 and a warning. Now every file is written and synced under a temporary name and renamed into place only
//! once all of them are: a full disk fails the command naming the file (exit 2, README "Exit codes"), and the
//! earlier results stay exactly as they were, with nothing beside them.
//!
//! One finished run (one worker, a handful of cells), then `results --out` onto a tmpfs of the test's own:
//! with room; full (no file fits); with room for the tables but not the plots; with room again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::artifacts::one_cell_config;
use super::common::{self, CLIENT_TIMEOUT, Cluster, Database, Output, TailsOnPanic, path};
use super::tmpfs::Tmpfs;

/// tmpfs gives files whole pages.
const PAGE: u64 = 4096;

/// The plots `results` draws; the other files are tables and reports.
const PLOTS: [&str; 4] = ["sensitivity.png", "sensitivity.svg", "heatmap.png", "pruned.png"];

#[test]
fn results_on_a_full_disk_fail_naming_the_file_and_leave_the_earlier_results_whole() {
    let scratch = common::scratch("storage_results_files");
    let _tails = TailsOnPanic(scratch.clone());
    let config = one_cell_config(&scratch);

    let database = Database::create("storage_results");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    cluster.start_worker("w1");
    let run = cluster.submit(&config);
    cluster.watch(run);
    let run = run.to_string();

    let disk = Tmpfs::mount(&scratch.join("disk"), 64 << 20);
    let out = disk.dir.join("out");
    let results = ["results", &run, "--out", path(&out)];
    cluster.client_ok(&results, CLIENT_TIMEOUT);
    let before = files(&out);
    for name in [
        "sen.pickle",
        "sensitivities.csv",
        "sensitivities.json",
        "sensitivity.png",
        "heatmap.png",
    ] {
        assert!(
            !before.get(name).is_none_or(Vec::is_empty),
            "results wrote no {name}: {:?}",
            before.keys()
        );
    }
    // A plan makes the next results larger than these: plan.json and pruned.png are new, so writing in place
    // cannot reuse the pages of the files it replaces.
    cluster.client_ok(&["plan", &run, "--max-loss", "0.5"], CLIENT_TIMEOUT);

    // 1. A full disk: no file fits.
    let filler = disk.fill(0);
    let refused = cluster.client(&results, CLIENT_TIMEOUT);
    assert_unchanged(&out, &before, "after results on a full disk");
    assert_refused(&refused, &[out.join("sen.pickle")]);

    // 2. Room for the tables and reports, not for the plots: a plot that cannot be written fails like any file.
    std::fs::remove_file(&filler).unwrap();
    let tables: u64 = before
        .iter()
        .filter(|(name, _)| !PLOTS.contains(&name.as_str()))
        .map(|(_, bytes)| pages(bytes.len()))
        .sum();
    // plan.json is new, and the reports may grow by a page.
    let room = tables + 4 * PAGE;
    let plots: u64 = before
        .iter()
        .filter(|(name, _)| PLOTS.contains(&name.as_str()))
        .map(|(_, bytes)| pages(bytes.len()))
        .sum();
    assert!(
        plots > 2 * (room - tables),
        "the plots ({plots} bytes) are too small for this test"
    );
    let filler = disk.fill(room);
    let refused = cluster.client(&results, CLIENT_TIMEOUT);
    assert_unchanged(&out, &before, "after results with no room for the plots");
    assert_refused(&refused, &PLOTS.map(|name| out.join(name)));

    // 3. With room: every file written, the new ones too, and whole.
    std::fs::remove_file(&filler).unwrap();
    cluster.client_ok(&results, CLIENT_TIMEOUT);
    let after = files(&out);
    for name in before.keys().map(String::as_str).chain(["plan.json", "pruned.png"]) {
        assert!(
            !after.get(name).is_none_or(Vec::is_empty),
            "results wrote no {name}: {:?}",
            after.keys()
        );
    }
    for (name, bytes) in &after {
        assert!(!name.starts_with('.'), "a temporary file is left: {name}");
        if name.ends_with(".png") {
            assert!(
                bytes.ends_with(b"IEND\xae\x42\x60\x82"),
                "{name} is truncated ({} bytes)",
                bytes.len()
            );
        }
    }
    assert_eq!(
        after["sen.pickle"], before["sen.pickle"],
        "the same run's sen.pickle changed"
    );
}

/// Every file in `dir` (hidden ones too) with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

fn pages(len: usize) -> u64 {
    (len as u64).div_ceil(PAGE) * PAGE
}

/// `results` failed with exit code 2, saying the disk is full and naming one of `named`.
fn assert_refused(output: &Output, named: &[PathBuf]) {
    assert_eq!(
        output.status.code(),
        Some(2),
        "results on a full disk: {}\n{}",
        output.status,
        output.stderr
    );
    assert!(
        output.stderr.contains("No space left on device"),
        "results does not say the disk is full: {}",
        output.stderr
    );
    assert!(
        named
            .iter()
            .any(|path| output.stderr.contains(&path.display().to_string())),
        "results does not name any of {named:?}: {}",
        output.stderr
    );
}

/// `dir` holds exactly the files of `before`, byte for byte: nothing truncated, nothing new, no temporary.
fn assert_unchanged(dir: &Path, before: &BTreeMap<String, Vec<u8>>, when: &str) {
    let now = files(dir);
    let names = |files: &BTreeMap<String, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&now), names(before), "the files {when}");
    for (name, bytes) in &now {
        assert!(
            bytes == &before[name],
            "{name} changed {when}: {} bytes, {} before",
            bytes.len(),
            before[name].len()
        );
    }
}
