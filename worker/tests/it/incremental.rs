//! Incremental cells (issue 16): a masked evaluation that runs each batch only from the first step its
//! mask changes, from activations kept across the cells of a group, gives exactly what a full evaluation
//! gives: the same metric dict and bit-identical model outputs, on every group of PP-OCRv3 det, with the
//! boundary cache large enough and too small. The weights are restored bit for bit afterwards.

use std::path::PathBuf;

use sensgrid_model::onnx;
use sensgrid_model::prune::{Criterion, Plan};
use sensgrid_worker::evaluate::Session;
use tch::Tensor;

use super::oracle::{model, root, scratch, worker};

const MODEL: &str = "ch_PP-OCRv3_det_infer.onnx";
/// Three synthetic det images, resized to at most 160 pixels a side: small enough that evaluating every
/// group several times stays within seconds, and of different sizes (each its own batch).
const IMAGES: usize = 3;

/// The synthetic det set and a config that evaluates it at a small size.
fn det_config() -> PathBuf {
    let dir = scratch("incremental", "det-3");
    let config = dir.join("det.yml");
    if !config.exists() {
        let set = dir.join("set");
        let out = worker(&[
            "synth",
            "det",
            "--out",
            set.to_str().unwrap(),
            "--count",
            &IMAGES.to_string(),
            "--seed",
            "16",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let yaml = std::fs::read_to_string(root().join("examples/configs/det_ppocrv3.yml"))
            .unwrap()
            .replace("limit_side_len: 960", "limit_side_len: 160")
            .replace("models/ch_PP-OCRv3_det_infer.onnx", &model(MODEL))
            .replace("data_dir: data/det", &format!("data_dir: {}", set.display()))
            .replace(
                "label_file_list: [data/det/label.txt]",
                &format!("label_file_list: [{}]", set.join("label.txt").display()),
            );
        assert!(yaml.contains("limit_side_len: 160"), "the example config changed");
        std::fs::write(&config, yaml).unwrap();
    }
    config
}

/// A session on the small det set with `overrides`, its eval set read once (as a baseline job does).
fn session(overrides: &[&str], incremental: bool) -> Session {
    let overrides: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
    let config = sensgrid_eval::Config::load(det_config(), &overrides).unwrap();
    let mut session = Session::open(config, tch::Device::Cpu).unwrap();
    session.set_incremental(incremental);
    session.evaluate(&mut |_| Ok(())).unwrap();
    session
}

fn group_keys(session: &mut Session) -> Vec<String> {
    session
        .analysis()
        .unwrap()
        .groups
        .iter()
        .map(|g| g.key.clone())
        .collect()
}

/// Every constant of the session's executor, copied.
fn weights(session: &Session) -> Vec<(String, Tensor)> {
    session
        .graph()
        .constants
        .keys()
        .map(|name| (name.clone(), session.executor().constant(name).unwrap().copy()))
        .collect()
}

/// Evaluates `keys` at `ratios` on both sessions and asserts equal metric dicts and bit-equal outputs.
fn assert_cells_equal(incremental: &mut Session, full: &mut Session, keys: &[String], ratios: &[f64]) {
    for key in keys {
        for &ratio in ratios {
            let plan = Plan::from([(key.clone(), ratio)]);
            let (want, want_outputs) = full
                .evaluate_masked_outputs(&plan, Criterion::L1Norm, &mut |_| Ok(()))
                .unwrap();
            let (got, got_outputs) = incremental
                .evaluate_masked_outputs(&plan, Criterion::L1Norm, &mut |_| Ok(()))
                .unwrap();
            assert_eq!(got, want, "{key} at {ratio}: metric dicts differ");
            assert_eq!(got_outputs.len(), IMAGES);
            for (i, (got, want)) in got_outputs.iter().zip(&want_outputs).enumerate() {
                assert!(got.equal(want), "{key} at {ratio}: image {i}: outputs differ");
            }
        }
    }
}

#[test]
fn every_group_of_ppocrv3_det_evaluates_incrementally_bit_equal_to_full() {
    let mut incremental = session(&[], true);
    let mut full = session(&[], false);
    let baseline = full.evaluate(&mut |_| Ok(())).unwrap();
    let before = weights(&incremental);
    let keys = group_keys(&mut incremental);
    assert!(keys.len() > 20, "PP-OCRv3 det has {} groups", keys.len());

    let ratios = [0.3, 0.7];
    assert_cells_equal(&mut incremental, &mut full, &keys, &ratios);

    let stats = incremental.cache_stats();
    let batches = keys.len() * ratios.len() * IMAGES;
    assert_eq!(stats.full_runs, 0, "{stats:?}");
    assert_eq!(stats.prefixes + stats.reuses, batches, "{stats:?}");
    // Each group's second ratio at least runs from the first one's boundaries.
    assert!(stats.reuses >= batches / 2, "{stats:?}");
    for ((name, was), (_, is)) in before.iter().zip(weights(&incremental)) {
        assert!(was.equal(&is), "constant '{name}' was not restored bit for bit");
    }
    assert!(
        *incremental.graph() == onnx::read(std::path::Path::new(&model(MODEL))).unwrap(),
        "the session's graph was not restored"
    );
    assert_eq!(incremental.evaluate(&mut |_| Ok(())).unwrap(), baseline);
}

#[test]
fn a_cache_too_small_for_a_group_falls_back_to_full_runs_with_the_same_results() {
    // 1 MB: the eval set fits, and leaves too little for the early groups' full-resolution activations.
    let mut incremental = session(&["Sensitivity.cache_mb=1"], true);
    let mut full = session(&[], false);
    let keys = group_keys(&mut incremental);
    // On this set, the first four groups' boundaries do not fit; the next two do.
    assert_cells_equal(&mut incremental, &mut full, &keys[..6], &[0.3, 0.7]);
    let stats = incremental.cache_stats();
    assert!(stats.full_runs > 0, "no group fell back: {stats:?}");
    assert!(stats.reuses > 0, "no group fit: {stats:?}");
}

#[test]
fn the_cells_of_one_group_compute_its_boundary_once() {
    let mut session = session(&[], true);
    let key = group_keys(&mut session)[5].clone();
    for ratio in [0.2, 0.4, 0.6] {
        let plan = Plan::from([(key.clone(), ratio)]);
        session
            .evaluate_masked(&plan, Criterion::L1Norm, &mut |_| Ok(()))
            .unwrap();
    }
    let stats = session.cache_stats();
    assert_eq!(
        (stats.prefixes, stats.reuses, stats.full_runs),
        (IMAGES, 2 * IMAGES, 0),
        "{stats:?}"
    );
    // Off, nothing is cached.
    session.set_incremental(false);
    session
        .evaluate_masked(&Plan::from([(key, 0.8)]), Criterion::L1Norm, &mut |_| Ok(()))
        .unwrap();
    assert_eq!(session.cache_stats(), stats);
}

/// `Sensitivity.precision: fp16`: the weights held in half precision, incremental cells still bit-equal to
/// full ones, every weight restored bit for bit after a cell, and the baseline's metric that of fp32 within
/// what three images of rounding can move.
#[test]
fn in_fp16_cells_are_still_bit_equal_and_restored() {
    let fp16 = ["Sensitivity.precision=fp16"];
    let mut incremental = session(&fp16, true);
    let mut full = session(&fp16, false);
    let keys = group_keys(&mut incremental);
    let before = weights(&incremental);
    assert!(
        before.iter().any(|(_, t)| t.kind() == tch::Kind::Half),
        "no constant is fp16"
    );
    assert_cells_equal(
        &mut incremental,
        &mut full,
        &[keys[2].clone(), keys[20].clone()],
        &[0.3, 0.7],
    );
    for ((name, was), (_, is)) in before.iter().zip(weights(&incremental)) {
        assert!(was.equal(&is), "constant '{name}' was not restored bit for bit");
    }
    let half = incremental.evaluate(&mut |_| Ok(())).unwrap();
    let single = session(&[], false).evaluate(&mut |_| Ok(())).unwrap();
    let hmean = |m: &sensgrid_eval::metric_dict::MetricDict| m.get("hmean").unwrap();
    assert!(
        (hmean(&half) - hmean(&single)).abs() <= 0.1,
        "fp16 {half:?} against fp32 {single:?}"
    );
}
