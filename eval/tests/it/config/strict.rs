//! A bad key or value in each strict section is refused in one line naming the file, the line and the key path.

use super::{DET_OVERRIDES, det_with, error, fixture_text, replace_once};

/// The det fixture with `section` put in front of it, so its lines count from 1.
fn det_after(section: &str) -> String {
    format!("{section}{}", fixture_text("ch_det_mv3_db_v2.0.yml"))
}

#[test]
fn sensitivity_unknown_key() {
    assert_eq!(
        error(
            &det_after("Sensitivity:\n  ratios: [0.1, 0.5]\n  ratioss: 3\n"),
            &DET_OVERRIDES
        ),
        "det.yml:3: Sensitivity.ratioss: unknown key (expected one of ratios, criterion, skip, metric, \
         eval_samples, seed, early_stop_loss, precision, cache_mb)"
    );
}

#[test]
fn sensitivity_ratios_are_checked_item_by_item() {
    let e = |ratios: &str| {
        error(
            &det_after(&format!("Sensitivity:\n  ratios: {ratios}\n")),
            &DET_OVERRIDES,
        )
    };
    assert_eq!(
        e("[0.1, 0.2, high]"),
        "det.yml:2: Sensitivity.ratios[2]: expected a number, got \"high\""
    );
    assert_eq!(
        e("[0.1, 0.3, 0.2]"),
        "det.yml:2: Sensitivity.ratios[2]: ratios must be strictly increasing, got 0.2 after 0.3"
    );
    assert_eq!(
        e("[0.5, 1]"),
        "det.yml:2: Sensitivity.ratios[1]: expected a number in (0, 1), got 1"
    );
    assert_eq!(
        e("[]"),
        "det.yml:2: Sensitivity.ratios: expected at least one ratio, got an empty list"
    );
    assert_eq!(e("0.5"), "det.yml:2: Sensitivity.ratios: expected a list, got 0.5");
    // In block style each item has its own line.
    assert_eq!(
        e("\n    - 0.1\n    - 0.2\n    - x"),
        "det.yml:5: Sensitivity.ratios[2]: expected a number, got \"x\""
    );
}

#[test]
fn sensitivity_choices_and_globs() {
    let e = |line: &str| error(&det_after(&format!("Sensitivity:\n  {line}\n")), &DET_OVERRIDES);
    assert_eq!(
        e("criterion: l2_norm"),
        "det.yml:2: Sensitivity.criterion: expected one of l1_norm, l1_norm_group, fpgm, got \"l2_norm\""
    );
    assert_eq!(
        e("metric: acc"),
        "det.yml:2: Sensitivity.metric: expected one of precision, recall, hmean, got \"acc\""
    );
    assert_eq!(
        e("precision: int8"),
        "det.yml:2: Sensitivity.precision: expected one of fp32, fp16, got \"int8\""
    );
    assert_eq!(
        e("eval_samples: -1"),
        "det.yml:2: Sensitivity.eval_samples: expected an integer >= 0, got -1"
    );
    assert_eq!(
        e("early_stop_loss: 0"),
        "det.yml:2: Sensitivity.early_stop_loss: expected a number > 0, got 0"
    );
    assert_eq!(
        e("skip: ['conv[0-9']"),
        "det.yml:2: Sensitivity.skip[0]: a '[' is not closed by ']'"
    );
    assert_eq!(
        e("skip: conv*"),
        "det.yml:2: Sensitivity.skip: expected a list, got \"conv*\""
    );
}

#[test]
fn prune_needs_exactly_one_target() {
    let e = |section: &str| error(&det_after(section), &DET_OVERRIDES);
    assert_eq!(
        e("Prune:\n  max_loss: 0.1\n  flops: 0.3\n"),
        "det.yml:3: Prune.flops: unknown key (expected one of max_loss, flops_reduction, max_model_loss, \
         latency_reduction, tolerance, export)"
    );
    assert_eq!(
        e("Prune:\n  max_loss: 0.1\n  flops_reduction: 0.3\n"),
        "det.yml:1: Prune: max_loss is PaddleSlim's per-group threshold and stands alone: set it, or \
         max_model_loss / flops_reduction / latency_reduction"
    );
    assert_eq!(
        e("Prune:\n  max_loss: 0.1\n  max_model_loss: 0.02\n"),
        "det.yml:1: Prune: max_loss is PaddleSlim's per-group threshold and stands alone: set it, or \
         max_model_loss / flops_reduction / latency_reduction"
    );
    assert_eq!(
        e("Prune:\n  max_model_loss: 0.02\n  flops_reduction: 0.3\n  latency_reduction: 0.2\n"),
        "det.yml:1: Prune: set one of flops_reduction and latency_reduction, not both"
    );
    assert_eq!(
        e("Prune:\n  flops_reduction: 0.3\n  tolerance: 0.05\n"),
        "det.yml:1: Prune: tolerance goes with max_model_loss or latency_reduction (a measured target)"
    );
    assert_eq!(
        e("Prune:\n  max_model_loss: 1.5\n"),
        "det.yml:2: Prune.max_model_loss: expected a number in (0, 1), got 1.5"
    );
    assert_eq!(
        e("Prune:\n  export: true\n"),
        "det.yml:1: Prune: set one of max_loss, flops_reduction, max_model_loss and latency_reduction \
         (max_model_loss combines with one of the reductions)"
    );
    assert_eq!(
        e("Prune:\n  max_loss: 5%\n"),
        "det.yml:2: Prune.max_loss: expected a number, got \"5%\""
    );
    assert_eq!(
        e("Prune:\n  max_loss: 0.1\n  export: yes please\n"),
        "det.yml:3: Prune.export: expected true or false, got \"yes please\""
    );
}

#[test]
fn post_process_keys_and_values() {
    assert_eq!(
        error(&det_with("  box_thresh: 0.6\n", "  box_thresh: high\n"), &DET_OVERRIDES),
        "det.yml:59: PostProcess.box_thresh: expected a number, got \"high\""
    );
    assert_eq!(
        error(&det_with("  unclip_ratio: 1.5\n", "  unclip: 1.5\n"), &DET_OVERRIDES),
        "det.yml:61: PostProcess.unclip: unknown key (expected one of name, thresh, box_thresh, max_candidates, \
         unclip_ratio, use_dilation, score_mode, box_type)"
    );
    assert_eq!(
        error(
            &det_with("  max_candidates: 1000\n", "  max_candidates: 1000.0\n"),
            &DET_OVERRIDES
        ),
        "det.yml:60: PostProcess.max_candidates: expected an integer, got 1000.0"
    );
    assert_eq!(
        error(&det_with("  thresh: 0.3\n", "  thresh: 1.3\n"), &DET_OVERRIDES),
        "det.yml:58: PostProcess.thresh: expected a number in [0, 1], got 1.3"
    );
    assert_eq!(
        error(
            &det_with("  name: DBPostProcess\n", "  name: EASTPostProcess\n"),
            &DET_OVERRIDES
        ),
        "det.yml:57: PostProcess.name: expected one of DBPostProcess, CTCLabelDecode, ClsPostProcess, \
         got \"EASTPostProcess\""
    );
    assert_eq!(
        error(
            &det_with("  name: DBPostProcess\n", "  score_mode: fast\n"),
            &DET_OVERRIDES
        ),
        "det.yml:56: PostProcess.name: required (one of DBPostProcess, CTCLabelDecode, ClsPostProcess)"
    );
    // Keys of another post-process are unknown here.
    assert_eq!(
        error(&det_with("  thresh: 0.3\n", "  use_space_char: true\n"), &DET_OVERRIDES),
        "det.yml:58: PostProcess.use_space_char: unknown key (expected one of name, thresh, box_thresh, \
         max_candidates, unclip_ratio, use_dilation, score_mode, box_type)"
    );
}

#[test]
fn metric_keys_and_values() {
    assert_eq!(
        error(
            &det_with("  main_indicator: hmean\n", "  main_indicatr: hmean\n"),
            &DET_OVERRIDES
        ),
        "det.yml:65: Metric.main_indicatr: unknown key (expected one of name, main_indicator)"
    );
    assert_eq!(
        error(
            &det_with("  main_indicator: hmean\n", "  main_indicator: acc\n"),
            &DET_OVERRIDES
        ),
        "det.yml:65: Metric.main_indicator: expected one of precision, recall, hmean, got \"acc\""
    );
    assert_eq!(
        error(
            &det_with("  main_indicator: hmean\n", "  ignore_space: false\n"),
            &DET_OVERRIDES
        ),
        "det.yml:65: Metric.ignore_space: unknown key (expected one of name, main_indicator)"
    );
    assert_eq!(
        error(&det_with("  name: DetMetric\n", "  name: RecMetric\n"), &DET_OVERRIDES),
        "det.yml:65: Metric.main_indicator: expected one of acc, norm_edit_dis, got \"hmean\""
    );
    assert_eq!(
        error(
            &det_with("  name: DetMetric\n  main_indicator: hmean\n", "  name: ClsMetric\n"),
            &DET_OVERRIDES
        ),
        "det.yml:64: Metric.name: ClsMetric cannot score the output of DBPostProcess (expected DetMetric)"
    );
}

#[test]
fn eval_dataset_keys_and_values() {
    let eval_name = "    name: SimpleDataSet\n    data_dir: ./train_data/icdar2015/text_localization/\n    label_file_list:\n      - ./train_data/icdar2015/text_localization/test";
    let with = |to: &str| {
        let text = fixture_text("ch_det_mv3_db_v2.0.yml");
        let text = replace_once(&text, eval_name, &format!("{to}{eval_name}"));
        error(&text, &DET_OVERRIDES)
    };
    assert_eq!(
        with("    shuffle: false\n"),
        "det.yml:111: Eval.dataset.shuffle: unknown key (expected one of name, data_dir, label_file_list, \
         ratio_list, delimiter, transforms, label_origins)"
    );
    assert_eq!(
        with("    ratio_list: [0.5, 1.5]\n"),
        "det.yml:111: Eval.dataset.ratio_list[1]: expected a number in [0, 1], got 1.5"
    );
    assert_eq!(
        with("    ratio_list: [0.5]\n"),
        "det.yml:111: Eval.dataset.ratio_list: expected one ratio per label file (2), got 1"
    );
    assert_eq!(
        with("    delimiter: 9\n"),
        "det.yml:111: Eval.dataset.delimiter: expected a string, got 9"
    );
    let text = det_with(
        "    name: SimpleDataSet\n    data_dir: ./train_data/icdar2015/text_localization/\n    label_file_list:\n      - ./train_data/icdar2015/text_localization/test",
        "    name: LMDBDataSet\n    data_dir: ./train_data/icdar2015/text_localization/\n    label_file_list:\n      - ./train_data/icdar2015/text_localization/test",
    );
    assert_eq!(
        error(&text, &DET_OVERRIDES),
        "det.yml:111: Eval.dataset.name: unsupported dataset \"LMDBDataSet\" (sensgrid reads SimpleDataSet)"
    );
    let without_eval = |text: &str| {
        let at = text.find("\nEval:\n").unwrap();
        text[..at + 1].to_owned()
    };
    assert_eq!(
        error(
            &without_eval(&fixture_text("ch_det_mv3_db_v2.0.yml")),
            &DET_OVERRIDES[..1]
        ),
        "det.yml: Eval: missing section"
    );
}

#[test]
fn transforms_are_checked_by_name_and_argument() {
    let det_resize = "      - DetResizeForTest:\n#           image_shape: [736, 1280]\n";
    let with = |to: &str| error(&det_with(det_resize, to), &DET_OVERRIDES);
    assert_eq!(
        with("      - IaaAugment:\n"),
        "det.yml:120: Eval.dataset.transforms[2].IaaAugment: unknown transform (sensgrid evaluates with \
         DecodeImage, DetLabelEncode, CTCLabelEncode, MultiLabelEncode, ClsLabelEncode, DetResizeForTest, \
         NormalizeImage, ToCHWImage, RecResizeImg, ClsResizeImg, KeepKeys)"
    );
    assert_eq!(
        with("      - DetResizeForTest:\n          limit_side: 960\n"),
        "det.yml:121: Eval.dataset.transforms[2].DetResizeForTest.limit_side: unknown key (expected one of \
         image_shape, keep_ratio, limit_side_len, limit_type, resize_long, max_side_limit)"
    );
    assert_eq!(
        with("      - DetResizeForTest:\n          limit_type: max\n"),
        "det.yml:121: Eval.dataset.transforms[2].DetResizeForTest.limit_type: has no effect without \
         limit_side_len (PaddleOCR then limits the short side to 736)"
    );
    assert_eq!(
        with("      - DetResizeForTest: {image_shape: [736, 1280], limit_side_len: 960}\n"),
        "det.yml:120: Eval.dataset.transforms[2].DetResizeForTest.limit_side_len: has no effect with \
         image_shape, which PaddleOCR uses"
    );
    assert_eq!(
        with("      - DetResizeForTest: {image_shape: [736]}\n"),
        "det.yml:120: Eval.dataset.transforms[2].DetResizeForTest.image_shape: expected a list of 2 items, got 1"
    );
    assert_eq!(
        with("      - DetResizeForTest: {limit_side_len: 960, limit_type: long}\n"),
        "det.yml:120: Eval.dataset.transforms[2].DetResizeForTest.limit_type: expected one of min, max, \
         resize_long, got \"long\""
    );
    // The Eval section's ClsResizeImg (the Train section has one too).
    let cls = fixture_text("cls_mv3.yml");
    let eval = cls.find("\nEval:\n").unwrap();
    let huge = cls[..eval].to_owned()
        + &replace_once(
            &cls[eval..],
            "image_shape: [3, 48, 192]",
            "image_shape: [3, 100000, 100000]",
        );
    let message = error(&huge, &DET_OVERRIDES[..1]);
    assert!(
        message.ends_with(
            "Eval.dataset.transforms[2].ClsResizeImg.image_shape: [3, 100000, 100000] is over the limit of 16384 \
             pixels a side and 64 Mpx of an image"
        ),
        "{message}"
    );
    assert_eq!(
        with("      - ToCHWImage: {order: chw}\n"),
        "det.yml:120: Eval.dataset.transforms[2].ToCHWImage.order: unknown key (takes no arguments)"
    );
    assert_eq!(
        with("      - DetResizeForTest\n"),
        "det.yml:120: Eval.dataset.transforms[2]: expected a map of one transform name to its arguments, \
         got \"DetResizeForTest\""
    );
    assert_eq!(
        with("      - DetResizeForTest: 960\n"),
        "det.yml:120: Eval.dataset.transforms[2].DetResizeForTest: expected a map, got 960"
    );
    let normalize = |scale: &str| {
        error(
            &det_with(
                "          scale: 1./255.\n          mean: [0.485, 0.456, 0.406]\n          std: [0.229, 0.224, 0.225]\n          order: 'hwc'\n      - ToCHWImage:\n      - KeepKeys:\n          keep_keys: ['image', 'shape'",
                &format!(
                    "          scale: {scale}\n          mean: [0.485, 0.456, 0.406]\n          std: [0.229, 0.224, 0.225]\n          order: 'hwc'\n      - ToCHWImage:\n      - KeepKeys:\n          keep_keys: ['image', 'shape'"
                ),
            ),
            &DET_OVERRIDES,
        )
    };
    assert_eq!(
        normalize("1/x"),
        "det.yml:123: Eval.dataset.transforms[3].NormalizeImage.scale: expected a number or a division such as \
         1./255., got \"1/x\""
    );
    assert_eq!(
        normalize("1./0."),
        "det.yml:123: Eval.dataset.transforms[3].NormalizeImage.scale: expected a scale > 0, got \"1./0.\""
    );
}

#[test]
fn missing_sections_name_the_file() {
    let text = det_with(
        "PostProcess:\n  name: DBPostProcess\n  thresh: 0.3\n  box_thresh: 0.6\n  max_candidates: 1000\n  unclip_ratio: 1.5\n",
        "",
    );
    assert_eq!(error(&text, &DET_OVERRIDES), "det.yml: PostProcess: missing section");
    assert_eq!(
        error("- a\n- b\n", &[]),
        "det.yml: expected a map of sections (Global, Eval, …), got a list"
    );
    assert_eq!(
        error("Global: {pretrained_model: m.onnx}\nMetric: [1, 2\n", &[]),
        "det.yml:3: not valid YAML: while parsing a flow sequence, expected ',' or ']'"
    );
}
