//! PaddleOCR's own det, rec and cls configs load as they are, overriding only the model and the eval set, and
//! the typed views hold PaddleOCR's values and the code's defaults.

use std::path::{Path, PathBuf};

use sensgrid_eval::config::schema::post_process::{CTCLabelDecode, ClsPostProcess};
use sensgrid_eval::config::schema::transform::{
    ChannelOrder, ClsLabelEncode, ClsResizeImg, DecodeImage, DetResize, DetResizeForTest, ImgMode, KeepKeys, LimitType,
    MultiLabelEncode, NormalizeImage, RecLabelEncode, RecResizeImg,
};
use sensgrid_eval::config::{Config, MetricKind, PostProcess, Precision, Sensitivity, Transform, Value};
use sensgrid_eval::det::{BoxType, DbPostProcess, ScoreMode};
use sensgrid_model::prune::Criterion;

use super::{DET_OVERRIDES, fixture, fixture_text, one_line, replace_once, write_config};

fn keys(keys: &[&str]) -> Transform {
    Transform::KeepKeys(KeepKeys {
        keep_keys: keys.iter().map(|k| k.to_string()).collect(),
    })
}

fn bgr() -> Transform {
    Transform::DecodeImage(DecodeImage {
        img_mode: ImgMode::Bgr,
        channel_first: false,
        ignore_orientation: false,
    })
}

#[test]
fn ch_det_mv3_db_loads_with_model_and_eval_set_overridden() {
    let config = Config::load(fixture("ch_det_mv3_db_v2.0.yml"), &DET_OVERRIDES).unwrap();
    assert_eq!(config.model_path(), std::path::absolute("models/det.onnx").unwrap());
    assert!(config.model_path().is_absolute());
    assert_eq!(
        config.post_process(),
        &PostProcess::DBPostProcess(DbPostProcess {
            thresh: 0.3,
            box_thresh: 0.6,
            max_candidates: 1000,
            unclip_ratio: 1.5,
            use_dilation: false,
            score_mode: ScoreMode::Fast,
            box_type: BoxType::Quad,
        })
    );
    assert_eq!(config.metric().kind, MetricKind::DetMetric);
    assert_eq!(config.metric().main_indicator, "hmean");

    let dataset = config.eval_dataset();
    assert_eq!(dataset.data_dir, Path::new("/data/icdar2015"));
    assert_eq!(
        dataset.label_file_list,
        [
            PathBuf::from("/data/icdar2015/a.txt"),
            PathBuf::from("/data/icdar2015/b.txt")
        ]
    );
    assert_eq!(dataset.ratio_list, [1.0, 1.0]);
    assert_eq!(dataset.delimiter, "\t");
    assert_eq!(
        dataset.transforms,
        [
            bgr(),
            Transform::DetLabelEncode,
            // No arguments: PaddleOCR's own default, a short side of at least 736.
            Transform::DetResizeForTest(DetResizeForTest {
                resize: DetResize::LimitSide {
                    limit_side_len: 736,
                    limit_type: LimitType::Min,
                },
                max_side_limit: 4000,
            }),
            Transform::NormalizeImage(NormalizeImage {
                scale: 1.0 / 255.0,
                mean: [0.485, 0.456, 0.406],
                std: [0.229, 0.224, 0.225],
                order: ChannelOrder::Hwc,
            }),
            Transform::ToCHWImage,
            keys(&["image", "shape", "polys", "ignore_tags"]),
        ]
    );

    // No Sensitivity or Prune section: every default.
    let sensitivity = config.sensitivity();
    assert_eq!(sensitivity.ratios, Sensitivity::DEFAULT_RATIOS);
    assert_eq!(sensitivity.criterion, Criterion::L1Norm);
    assert!(sensitivity.skip.is_empty());
    assert_eq!(sensitivity.metric, "hmean");
    assert_eq!(sensitivity.eval_samples, 0);
    assert_eq!(sensitivity.seed, 0);
    assert_eq!(sensitivity.early_stop_loss, None);
    assert_eq!(sensitivity.precision, Precision::Fp32);
    assert_eq!(config.prune(), None);
    assert_eq!(config.character_dict_path(), None);
    assert!(!config.use_space_char());

    // The sections sensgrid ignores are kept whole.
    let tree = config.tree();
    assert_eq!(
        tree.lookup("Architecture.Backbone.name").unwrap().value,
        Value::Str("MobileNetV3".into())
    );
    assert_eq!(
        tree.lookup("Optimizer.lr.learning_rate").unwrap().value,
        Value::Float(0.001)
    );
    let Value::Seq(train) = &tree.lookup("Train.dataset.transforms").unwrap().value else {
        panic!()
    };
    assert_eq!(train.len(), 9);
    assert_eq!(tree.lookup("Global.checkpoints").unwrap().value, Value::Null);
    assert_eq!(
        tree.lookup("Global.load_static_weights").unwrap().value,
        Value::Bool(true)
    );
    let data_dir = tree.lookup("Eval.dataset.data_dir").unwrap();
    assert_eq!(data_dir.origin.to_string(), "-o Eval.dataset.data_dir=/data/icdar2015");
    let name = tree.lookup("Eval.dataset.name").unwrap();
    assert_eq!(
        name.origin.to_string(),
        format!("{}:111", fixture("ch_det_mv3_db_v2.0.yml").display())
    );
}

#[test]
fn a_db_post_process_that_names_only_its_class_gets_the_det_codes_defaults() {
    let text = replace_once(
        &fixture_text("ch_det_mv3_db_v2.0.yml"),
        "  thresh: 0.3\n  box_thresh: 0.6\n  max_candidates: 1000\n  unclip_ratio: 1.5\n",
        "",
    );
    let config = Config::from_yaml(&text, "det.yml", &DET_OVERRIDES).unwrap();
    assert_eq!(
        config.post_process(),
        &PostProcess::DBPostProcess(DbPostProcess::default())
    );
    // The values PaddleOCR's `DBPostProcess.__init__` defaults to.
    let defaults = DbPostProcess::default();
    assert_eq!(
        (
            defaults.thresh,
            defaults.box_thresh,
            defaults.max_candidates,
            defaults.unclip_ratio
        ),
        (0.3, 0.7, 1000, 2.0)
    );
}

#[test]
fn ch_det_mv3_db_without_an_onnx_model_is_refused() {
    let path = fixture("ch_det_mv3_db_v2.0.yml");
    let e = one_line(Config::load(&path, &DET_OVERRIDES[1..]).unwrap_err());
    assert_eq!(
        e,
        format!(
            "{}:13: Global.pretrained_model: expected the path of an .onnx model, got \
             \"./pretrain_models/MobileNetV3_large_x0_5_pretrained\" (set it with -o Global.pretrained_model=PATH)",
            path.display()
        )
    );
}

#[test]
fn ch_ppocrv3_rec_takes_dictionary_and_lengths_from_global() {
    let config = Config::load(fixture("ch_PP-OCRv3_rec.yml"), &["Global.pretrained_model=rec.onnx"]).unwrap();
    let dict = Some(PathBuf::from("ppocr/utils/ppocr_keys_v1.txt"));
    assert_eq!(config.character_dict_path(), dict.as_deref());
    assert!(config.use_space_char());
    assert_eq!(
        config.post_process(),
        &PostProcess::CTCLabelDecode(CTCLabelDecode {
            character_dict_path: dict.clone(),
            use_space_char: true,
        })
    );
    assert_eq!(
        config.metric().kind,
        MetricKind::RecMetric {
            ignore_space: false,
            is_filter: false,
        }
    );
    assert_eq!(config.metric().main_indicator, "acc");
    assert_eq!(config.sensitivity().metric, "acc");
    let dataset = config.eval_dataset();
    assert_eq!(dataset.data_dir, Path::new("./train_data"));
    assert_eq!(dataset.ratio_list, [1.0]);
    assert_eq!(
        dataset.transforms,
        [
            bgr(),
            Transform::MultiLabelEncode(MultiLabelEncode {
                label: RecLabelEncode {
                    max_text_length: 25,
                    character_dict_path: dict.clone(),
                    use_space_char: true,
                },
                gtc_encode: None,
            }),
            Transform::RecResizeImg(RecResizeImg {
                image_shape: [3, 48, 320],
                infer_mode: false,
                eval_mode: false,
                character_dict_path: dict,
                padding: true,
            }),
            keys(&["image", "label_ctc", "label_sar", "length", "valid_ratio"]),
        ]
    );
    // The anchor and its alias both read 25.
    let tree = config.tree();
    let alias = &tree.lookup("Architecture.Head.head_list").unwrap().value;
    let Value::Seq(heads) = alias else { panic!() };
    assert_eq!(
        heads[1].lookup("SARHead.max_text_length").unwrap().value,
        Value::Int(25)
    );
}

#[test]
fn ch_ppocrv3_rec_without_a_model_names_the_empty_key() {
    let path = fixture("ch_PP-OCRv3_rec.yml");
    let e = one_line(Config::load(&path, &[] as &[&str]).unwrap_err());
    assert_eq!(
        e,
        format!(
            "{}:11: Global.pretrained_model: required (the .onnx model to analyse; set it with \
             -o Global.pretrained_model=PATH)",
            path.display()
        )
    );
}

#[test]
fn global_arguments_win_over_a_transforms_own() {
    // PaddleOCR updates each transform's arguments with Global, so Global.max_text_length (25) wins.
    let text = replace_once(
        &fixture_text("ch_PP-OCRv3_rec.yml"),
        "        channel_first: false\n    - MultiLabelEncode:\n",
        "        channel_first: false\n    - CTCLabelEncode:\n        max_text_length: 10\n",
    );
    let path = write_config("global_wins", "rec.yml", &text);
    let config = Config::load(&path, &["Global.pretrained_model=rec.onnx"]).unwrap();
    assert_eq!(
        config.eval_dataset().transforms[1],
        Transform::CTCLabelEncode(RecLabelEncode {
            max_text_length: 25,
            character_dict_path: Some("ppocr/utils/ppocr_keys_v1.txt".into()),
            use_space_char: true,
        })
    );
}

#[test]
fn cls_mv3_takes_its_label_list_from_global() {
    let config = Config::load(fixture("cls_mv3.yml"), &["Global.pretrained_model=cls.onnx"]).unwrap();
    let labels = vec!["0".to_string(), "180".to_string()];
    assert_eq!(
        config.post_process(),
        &PostProcess::ClsPostProcess(ClsPostProcess {
            label_list: labels.clone(),
        })
    );
    assert_eq!(config.metric().kind, MetricKind::ClsMetric);
    assert_eq!(
        config.eval_dataset().transforms,
        [
            bgr(),
            Transform::ClsLabelEncode(ClsLabelEncode { label_list: labels }),
            Transform::ClsResizeImg(ClsResizeImg {
                image_shape: [3, 48, 192],
            }),
            keys(&["image", "label"]),
        ]
    );
}

#[test]
fn sensgrid_sections_read_with_their_values() {
    let text = format!(
        "{}\nSensitivity:\n  ratios: [0.2, 0.4, 0.6]\n  criterion: fpgm\n  skip: ['conv_last*', 'head.?']\n  \
         metric: precision\n  eval_samples: 200\n  seed: 42\n  early_stop_loss: 0.5\n  precision: fp16\n\
         Prune:\n  flops_reduction: 0.3\n  export: false\n",
        fixture_text("ch_det_mv3_db_v2.0.yml")
    );
    let path = write_config("sensgrid_sections", "det.yml", &text);
    let config = Config::load(&path, &DET_OVERRIDES).unwrap();
    let s = config.sensitivity();
    assert_eq!(s.ratios, [0.2, 0.4, 0.6]);
    assert_eq!(s.criterion, Criterion::Fpgm);
    assert!(s.is_skipped("conv_last_1.w_0"));
    assert!(s.is_skipped("head.3"));
    assert!(!s.is_skipped("head.31"));
    assert!(!s.is_skipped("conv1"));
    assert_eq!(s.metric, "precision");
    assert_eq!(s.eval_samples, 200);
    assert_eq!(s.seed, 42);
    assert_eq!(s.early_stop_loss, Some(0.5));
    assert_eq!(s.precision, Precision::Fp16);
    let prune = config.prune().unwrap();
    assert_eq!(prune.target, sensgrid_eval::config::PruneTarget::FlopsReduction(0.3));
    assert!(!prune.export);
}

#[test]
fn det_resize_modes_follow_paddleocrs_choice() {
    let resize = |args: &str| {
        let text = replace_once(
            &fixture_text("ch_det_mv3_db_v2.0.yml"),
            "      - DetResizeForTest:\n#           image_shape: [736, 1280]\n",
            &format!("      - DetResizeForTest: {args}\n"),
        );
        let config = Config::from_yaml(&text, "det.yml", &DET_OVERRIDES).unwrap();
        let Transform::DetResizeForTest(resize) = &config.eval_dataset().transforms[2] else {
            panic!()
        };
        resize.clone()
    };
    assert_eq!(
        resize("{image_shape: [736, 1280], keep_ratio: true}").resize,
        DetResize::ImageShape {
            height: 736,
            width: 1280,
            keep_ratio: true,
        }
    );
    assert_eq!(
        resize("{limit_side_len: 960, limit_type: max}").resize,
        DetResize::LimitSide {
            limit_side_len: 960,
            limit_type: LimitType::Max,
        }
    );
    assert_eq!(
        resize("{resize_long: 960}").resize,
        DetResize::ResizeLong { resize_long: 960 }
    );
    assert_eq!(resize("{}").max_side_limit, 4000);
}
