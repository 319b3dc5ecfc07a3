//! `worker eval` against two independent references on synthetic sets (`worker synth`):
//! `scripts/oracle/eval_reference.py` runs the same models in onnxruntime and scores them with PaddleOCR's
//! rules written anew (`paddle_rules`) and with the post-processing shipped in the rapidocr wheel
//! (`rapidocr`). Our metrics must equal both within 0.005. Also the one-line errors of bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::oracle::{model, root, scratch, worker};

const TOLERANCE: f64 = 0.005;

/// A synthetic set rendered by `worker synth` (deterministic, so an existing one is reused).
fn synth(kind: &str, count: usize, seed: u64, jpeg: bool) -> PathBuf {
    let name = format!("{kind}-{count}-{seed}{}", if jpeg { "-jpeg" } else { "" });
    let dir = scratch("eval-sets", &name);
    if !dir.join("label.txt").exists() {
        let (count, seed) = (count.to_string(), seed.to_string());
        let mut args = vec![
            "synth",
            kind,
            "--out",
            dir.to_str().unwrap(),
            "--count",
            &count,
            "--seed",
            &seed,
        ];
        if jpeg {
            args.push("--jpeg");
        }
        let out = worker(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    dir
}

/// `worker eval` on `config` with the set's paths and `overrides`: the metric dict it prints.
fn ours(config: &str, set: &Path, overrides: &[&str]) -> Value {
    let data_dir = format!("Eval.dataset.data_dir={}", set.display());
    let labels = format!("Eval.dataset.label_file_list=[{}]", set.join("label.txt").display());
    let config = root().join(config);
    let mut args = vec![
        "eval",
        "--config",
        config.to_str().unwrap(),
        "--device",
        "cpu",
        "-o",
        &data_dir,
        &labels,
    ];
    args.extend(overrides);
    let out = worker(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "worker eval: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// Both references' metric dicts for the same set.
fn references(kind: &str, model_file: &str, set: &Path, extra: &[&str]) -> Value {
    let out_path = set.join(format!("reference-{model_file}.json"));
    let status = Command::new(root().join(".oracle/bin/python"))
        .arg(root().join("scripts/oracle/eval_reference.py"))
        .args(["--kind", kind, "--model", &model(model_file)])
        .args(["--data-dir", set.to_str().unwrap()])
        .args(["--label-file", set.join("label.txt").to_str().unwrap()])
        .args(extra)
        .args(["--out", out_path.to_str().unwrap()])
        .status()
        .expect("running eval_reference.py (make setup makes .oracle)");
    assert!(status.success(), "eval_reference.py failed");
    serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap()
}

/// Our `keys` equal both references' within the tolerance, on the same number of samples.
fn assert_agree(ours: &Value, references: &Value, keys: &[&str]) {
    for side in ["paddle_rules", "rapidocr"] {
        let reference = &references[side];
        assert_eq!(
            ours["num_samples"].as_f64(),
            reference["num_samples"].as_f64(),
            "{side}"
        );
        for key in keys {
            let (a, b) = (ours[key].as_f64().unwrap(), reference[key].as_f64().unwrap());
            assert!((a - b).abs() <= TOLERANCE, "{key}: ours {a}, {side} {b}");
        }
    }
}

const DET_CONFIG: &str = "eval/tests/fixtures/configs/ch_det_mv3_db_v2.0.yml";
/// The config's PostProcess, for the references.
const DET_POST: [&str; 4] = ["--box-thresh", "0.6", "--unclip-ratio", "1.5"];

#[test]
fn det_v3_on_50_synthetic_images_matches_both_references_with_hmean_above_0_7() {
    let set = synth("det", 50, 1, false);
    let metrics = ours(
        DET_CONFIG,
        &set,
        &["Global.pretrained_model=".to_owned() + &model("ch_PP-OCRv3_det_infer.onnx")]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(metrics["num_samples"].as_f64(), Some(50.0));
    assert!(metrics["hmean"].as_f64().unwrap() >= 0.7, "{metrics}");
    let refs = references("det", "ch_PP-OCRv3_det_infer.onnx", &set, &DET_POST);
    assert_agree(&metrics, &refs, &["precision", "recall", "hmean"]);
}

/// The mean absolute difference of our decoded pixels from `cv2.imdecode(IMREAD_COLOR)`'s over every image
/// of a set.
fn mean_pixel_difference_from_opencv(set: &Path) -> f64 {
    let images: Vec<PathBuf> = {
        let mut files: Vec<PathBuf> = std::fs::read_dir(set.join("images"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    let raw = set.join("opencv.raw");
    let script = "import sys, cv2, numpy as np\n\
                  out = open(sys.argv[1], 'wb')\n\
                  for p in sys.argv[2:]:\n    \
                  out.write(cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_COLOR).tobytes())\n";
    let status = Command::new(root().join(".oracle/bin/python"))
        .args(["-c", script, raw.to_str().unwrap()])
        .args(&images)
        .status()
        .unwrap();
    assert!(status.success(), "decoding with OpenCV failed");
    let want = std::fs::read(&raw).unwrap();
    let mut got = Vec::with_capacity(want.len());
    for path in &images {
        let bytes = std::fs::read(path).unwrap();
        got.extend(
            sensgrid_eval::image::decode(&bytes, sensgrid_eval::image::ReadMode::Color, true)
                .unwrap()
                .data,
        );
    }
    assert_eq!(got.len(), want.len(), "decoded sizes differ from OpenCV's");
    let total: u64 = got.iter().zip(&want).map(|(&a, &b)| u64::from(a.abs_diff(b))).sum();
    total as f64 / got.len() as f64
}

#[test]
fn det_on_a_jpeg_set_matches_opencv_decoding_references() {
    let set = synth("det", 20, 5, true);
    let mean = mean_pixel_difference_from_opencv(&set);
    eprintln!("JPEG set: mean pixel difference from OpenCV {mean:.4}");
    assert!(mean <= 1.0, "mean pixel difference from OpenCV {mean}");
    let model_override = format!("Global.pretrained_model={}", model("ch_PP-OCRv3_det_infer.onnx"));
    let metrics = ours(DET_CONFIG, &set, &[&model_override]);
    let refs = references("det", "ch_PP-OCRv3_det_infer.onnx", &set, &DET_POST);
    assert_agree(&metrics, &refs, &["precision", "recall", "hmean"]);
}

#[test]
fn rec_v2_matches_both_references() {
    let set = synth("rec", 200, 4, false);
    let dict = model("ppocr_keys_v1.txt");
    let model_override = format!("Global.pretrained_model={}", model("ch_PP-OCRv2_rec_infer.onnx"));
    let dict_override = format!("Global.character_dict_path={dict}");
    let metrics = ours(
        "examples/configs/rec_ppocrv2.yml",
        &set,
        &[&model_override, &dict_override],
    );
    let refs = references(
        "rec",
        "ch_PP-OCRv2_rec_infer.onnx",
        &set,
        &["--dict", &dict, "--use-space-char", "--rec-image-shape", "3,32,320"],
    );
    assert_agree(&metrics, &refs, &["acc", "norm_edit_dis"]);
}

#[test]
fn rec_v4_with_paddleocr_v3_config_matches_both_references() {
    let set = synth("rec", 200, 2, false);
    let model_override = format!("Global.pretrained_model={}", model("ch_PP-OCRv4_rec_infer.onnx"));
    let dict = model("ppocrv4_rec_keys.txt");
    let dict_override = format!("Global.character_dict_path={dict}");
    let metrics = ours(
        "eval/tests/fixtures/configs/ch_PP-OCRv3_rec.yml",
        &set,
        &[&model_override, &dict_override],
    );
    // The v3 config sets RecMetric.ignore_space: False and uses MultiLabelEncode.
    let refs = references(
        "rec",
        "ch_PP-OCRv4_rec_infer.onnx",
        &set,
        &[
            "--dict",
            &dict,
            "--use-space-char",
            "--label-encode",
            "multi",
            "--ignore-space",
            "false",
        ],
    );
    assert_agree(&metrics, &refs, &["acc", "norm_edit_dis"]);
}

#[test]
fn cls_matches_both_references() {
    let set = synth("cls", 200, 3, false);
    let model_override = format!(
        "Global.pretrained_model={}",
        model("ch_ppocr_mobile_v2.0_cls_infer.onnx")
    );
    let metrics = ours("eval/tests/fixtures/configs/cls_mv3.yml", &set, &[&model_override]);
    let refs = references("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", &set, &[]);
    assert_agree(&metrics, &refs, &["acc"]);
}

/// `worker eval` with `args` fails with one line holding every needle.
fn assert_eval_refused(args: &[&str], needles: &[&str]) {
    let mut all = vec!["eval", "--device", "cpu"];
    all.extend(args);
    let out = worker(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr}");
    }
}

#[test]
fn bad_configs_overrides_and_label_files_give_one_line_with_their_location() {
    let dir = scratch("eval", "bad-input");
    let det = root().join(DET_CONFIG);
    let det = det.to_str().unwrap();

    // A key the strict PostProcess section does not know, with its line.
    let text = std::fs::read_to_string(det)
        .unwrap()
        .replace("  unclip_ratio: 1.5", "  unclip_ration: 1.5");
    let bad_key = dir.join("bad_key.yml");
    std::fs::write(&bad_key, text).unwrap();
    let model_override = format!("Global.pretrained_model={}", model("ch_PP-OCRv3_det_infer.onnx"));
    assert_eval_refused(
        &["--config", bad_key.to_str().unwrap(), "-o", &model_override],
        &["bad_key.yml:", "PostProcess.unclip_ration"],
    );

    // An override that is not KEY=VALUE.
    assert_eval_refused(
        &["--config", det, "-o", "Global.pretrained_model"],
        &["Global.pretrained_model"],
    );

    // A malformed label line, named by file and line.
    let set = dir.join("set");
    std::fs::create_dir_all(set.join("images")).unwrap();
    let labels = set.join("label.txt");
    std::fs::write(&labels, "images/a.png\t[]\nimages/b.png has no tab\n").unwrap();
    let data_dir = format!("Eval.dataset.data_dir={}", set.display());
    let label_files = format!("Eval.dataset.label_file_list=[{}]", labels.display());
    let args = ["--config", det, "-o", &model_override, &data_dir, &label_files];
    assert_eval_refused(&args, &[&format!("{}:2", labels.display())]);

    // A missing image, named with its line.
    std::fs::write(
        &labels,
        "images/missing.png\t[{\"transcription\": \"a\", \"points\": [[0, 0], [4, 0], [4, 4], [0, 4]]}]\n",
    )
    .unwrap();
    assert_eval_refused(&args, &[&format!("{}:1", labels.display()), "missing.png"]);
}

#[test]
fn a_masked_evaluation_changes_the_metric_and_leaves_the_session_as_it_was() {
    use sensgrid_model::prune::{Criterion, Plan};
    use sensgrid_worker::evaluate::Session;

    let set = synth("cls", 200, 3, false);
    let overrides = [
        format!(
            "Global.pretrained_model={}",
            model("ch_ppocr_mobile_v2.0_cls_infer.onnx")
        ),
        format!("Eval.dataset.data_dir={}", set.display()),
        format!("Eval.dataset.label_file_list=[{}]", set.join("label.txt").display()),
    ];
    let config =
        sensgrid_eval::Config::load(root().join("eval/tests/fixtures/configs/cls_mv3.yml"), &overrides).unwrap();
    let mut session = Session::open(config, tch::Device::Cpu).unwrap();
    let mut seen = Vec::new();
    let before = session
        .evaluate(&mut |p| {
            seen.push(p.done);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.last(), Some(&200), "progress reaches the set's size");
    // Every group at 0.8: a cut that must change predictions.
    let plan: Plan = session
        .analysis()
        .unwrap()
        .groups
        .iter()
        .map(|g| (g.key.clone(), 0.8))
        .collect();
    let masked = session
        .evaluate_masked(&plan, Criterion::L1Norm, &mut |_| Ok(()))
        .unwrap();
    let after = session.evaluate(&mut |_| Ok(())).unwrap();
    assert_ne!(masked.get("acc"), before.get("acc"), "the mask changed nothing");
    assert_eq!(
        after, before,
        "evaluating after a masked evaluation gives the unmasked metrics"
    );
}
