//! `-o` overrides: several pairs after one flag, repeated flags, YAML values, and one-line errors that name the
//! override.

use std::path::PathBuf;

use sensgrid_eval::config::{Config, PostProcess};
use sensgrid_eval::det::{BoxType, DbPostProcess, ScoreMode};

use super::{DET_OVERRIDES, error, fixture, fixture_text, one_line};

fn det(overrides: &[&str]) -> Config {
    Config::load(fixture("ch_det_mv3_db_v2.0.yml"), overrides).unwrap()
}

fn db(config: &Config) -> &DbPostProcess {
    match config.post_process() {
        PostProcess::DBPostProcess(db) => db,
        other => panic!("{other:?}"),
    }
}

#[test]
fn several_pairs_per_flag_and_repeated_flags_apply_in_order() {
    // `-o A=1 B=2 -o C=3 -o A=4`, as a CLI hands over its groups.
    let groups: Vec<Vec<&str>> = vec![
        vec!["Global.pretrained_model=first.onnx", "Eval.dataset.data_dir=/data"],
        vec![
            "Eval.dataset.label_file_list=[a.txt,b.txt]",
            "PostProcess.box_thresh=0.5",
        ],
        vec!["Global.pretrained_model=second.onnx"],
    ];
    let config = det(&groups.concat());
    assert_eq!(config.model_path(), std::path::absolute("second.onnx").unwrap());
    assert_eq!(config.eval_dataset().data_dir, PathBuf::from("/data"));
    assert_eq!(
        config.eval_dataset().label_file_list,
        [PathBuf::from("a.txt"), PathBuf::from("b.txt")]
    );
    assert_eq!(db(&config).box_thresh, 0.5);
}

#[test]
fn values_are_parsed_as_yaml() {
    let mut overrides = DET_OVERRIDES.to_vec();
    overrides.extend([
        "PostProcess.thresh=0.25",
        "PostProcess.max_candidates=500",
        "PostProcess.use_dilation=True",
        "PostProcess.score_mode=slow",
        "Sensitivity.ratios=[0.2,0.4]",
        "Sensitivity.early_stop_loss=0.1",
        "Sensitivity.early_stop_loss=null",
        "Sensitivity.skip=['backbone.*', head]",
        "Eval.dataset.ratio_list=0.5",
        "Prune={max_loss: 0.05}",
    ]);
    let config = det(&overrides);
    let db = db(&config);
    assert_eq!((db.thresh, db.max_candidates, db.use_dilation), (0.25, 500, true));
    assert_eq!(db.score_mode, ScoreMode::Slow);
    let s = config.sensitivity();
    assert_eq!(s.ratios, [0.2, 0.4]);
    assert_eq!(s.early_stop_loss, None);
    assert_eq!(
        s.skip.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        ["backbone.*", "head"]
    );
    assert_eq!(config.eval_dataset().ratio_list, [0.5, 0.5]);
    assert_eq!(
        config.prune().unwrap().target,
        sensgrid_eval::config::PruneTarget::MaxLoss(0.05)
    );
    // One label file, given as a plain path.
    let config = det(&[DET_OVERRIDES[0], "Eval.dataset.label_file_list=test.txt"]);
    assert_eq!(config.eval_dataset().label_file_list, [PathBuf::from("test.txt")]);
    assert_eq!(config.eval_dataset().ratio_list, [1.0]);
}

#[test]
fn a_section_given_whole_merges_into_the_files() {
    let config = det(&[&DET_OVERRIDES[..], &["PostProcess={box_thresh: 0.4, box_type: poly}"]].concat());
    let db = db(&config);
    assert_eq!((db.thresh, db.box_thresh, db.unclip_ratio), (0.3, 0.4, 1.5));
    assert_eq!(db.box_type, BoxType::Poly);
}

#[test]
fn malformed_overrides_are_one_line_errors_naming_them() {
    let text = fixture_text("ch_det_mv3_db_v2.0.yml");
    let e = |o: &str| error(&text, &[DET_OVERRIDES[0], o]);
    assert_eq!(
        e("Global.pretrained_model"),
        "-o Global.pretrained_model: expected KEY=VALUE"
    );
    assert_eq!(e("=det.onnx"), "-o =det.onnx: empty key (expected KEY=VALUE)");
    assert_eq!(
        e("Global..x=1"),
        "-o Global..x=1: empty key segment (expected KEY.SUBKEY=VALUE)"
    );
    assert!(
        e("Sensitivity.ratios=[0.2,").starts_with("-o Sensitivity.ratios=[0.2,: not valid YAML: "),
        "{}",
        e("Sensitivity.ratios=[0.2,")
    );
    assert_eq!(
        e("Global.use_gpu.device=0"),
        "-o Global.use_gpu.device=0: Global.use_gpu: expected a map to set 'device' in, got true"
    );
    assert_eq!(
        e("Evall.dataset.data_dir=/d"),
        "-o Evall.dataset.data_dir=/d: Evall: no such section in the config (did you mean Eval?)"
    );
    assert_eq!(
        e("Eval.datasets.data_dir=/d"),
        "-o Eval.datasets.data_dir=/d: Eval.datasets: no such key"
    );
}

#[test]
fn overridden_values_are_checked_and_name_the_override() {
    let text = fixture_text("ch_det_mv3_db_v2.0.yml");
    let e = |o: &str| error(&text, &[&DET_OVERRIDES[..], &[o]].concat());
    assert_eq!(
        e("PostProcess.thresh=x"),
        "-o PostProcess.thresh=x: expected a number, got \"x\""
    );
    assert_eq!(
        e("PostProcess.thres=0.2"),
        "-o PostProcess.thres=0.2: unknown key (expected one of name, thresh, box_thresh, max_candidates, \
         unclip_ratio, use_dilation, score_mode, box_type)"
    );
    assert_eq!(
        e("Sensitivity.ratios=[0.2,x]"),
        "-o Sensitivity.ratios=[0.2,x]: Sensitivity.ratios[1]: expected a number, got \"x\""
    );
    assert_eq!(
        e("Sensitivity.ratioss=[0.2]"),
        "-o Sensitivity.ratioss=[0.2]: unknown key (expected one of ratios, criterion, skip, metric, \
         eval_samples, seed, early_stop_loss, precision, cache_mb)"
    );
    assert_eq!(
        e("Eval.dataset.label_file_list=[]"),
        "-o Eval.dataset.label_file_list=[]: expected at least one label file, got an empty list"
    );
    assert_eq!(
        e("Prune={max_loss: 0.1, flops_reduction: 0.2}"),
        "-o Prune={max_loss: 0.1, flops_reduction: 0.2}: max_loss is PaddleSlim's per-group threshold and stands \
         alone: set it, or max_model_loss / flops_reduction / latency_reduction"
    );
    assert_eq!(
        e("Global.pretrained_model=null"),
        "-o Global.pretrained_model=null: required (the .onnx model to analyse; set it with \
         -o Global.pretrained_model=PATH)"
    );
}

#[test]
fn a_missing_file_is_one_line() {
    let e = one_line(Config::load("/nonexistent/det.yml", &DET_OVERRIDES).unwrap_err());
    assert!(e.starts_with("/nonexistent/det.yml: "), "{e}");
}

#[test]
fn the_views_keep_where_skip_and_the_post_process_name_are_set() {
    let config = det(&DET_OVERRIDES);
    assert_eq!(config.sensitivity().skip_at, None);
    let name_line = 1 + fixture_text("ch_det_mv3_db_v2.0.yml")
        .lines()
        .position(|line| line == "  name: DBPostProcess")
        .unwrap();
    assert_eq!(
        config.post_process_at().to_string(),
        format!("{}:{name_line}", fixture("ch_det_mv3_db_v2.0.yml").display())
    );

    let skip = "Sensitivity.skip=['backbone.*']";
    let name = "PostProcess.name=DBPostProcess";
    let config = det(&[&DET_OVERRIDES[..], &[skip, name]].concat());
    assert_eq!(
        config.sensitivity().skip_at.as_ref().map(ToString::to_string),
        Some(format!("-o {skip}"))
    );
    assert_eq!(config.post_process_at().to_string(), format!("-o {name}"));
}
