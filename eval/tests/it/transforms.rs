//! The eval transforms against PaddleOCR's code run with OpenCV and numpy
//! (`scripts/oracle/transform_cases.py`), and the checks of a transform list.

use sensgrid_eval::config::Config;
use sensgrid_eval::config::schema::transform::{
    ChannelOrder, ClsResizeImg, DetResize, DetResizeForTest, KeepKeys, LimitType, NormalizeImage, RecResizeImg,
    Transform,
};
use sensgrid_eval::image::{ReadMode, decode};
use sensgrid_eval::transforms::ops::{
    Data, DetResizePlan, Tensor, cls_resize_img, det_resize_for_test, det_resize_plan, normalize_image, rec_resize_img,
    to_chw,
};
use sensgrid_eval::transforms::{LabelKind, Pipeline, Target};

use crate::image::{bytes, dims, json, pattern};

/// `DetResizeForTest`'s arguments from the oracle's kwargs, with PaddleOCR's defaults.
fn det_args(args: &serde_json::Value) -> DetResizeForTest {
    let n = |key: &str| args.get(key).map(|v| v.as_u64().unwrap() as usize);
    let resize = if let Some(shape) = args.get("image_shape") {
        let shape = dims(shape);
        DetResize::ImageShape {
            height: shape[0],
            width: shape[1],
            keep_ratio: args.get("keep_ratio").is_some_and(|k| k.as_bool().unwrap()),
        }
    } else if let Some(limit_side_len) = n("limit_side_len") {
        let limit_type = match args.get("limit_type").and_then(|t| t.as_str()).unwrap_or("min") {
            "min" => LimitType::Min,
            "max" => LimitType::Max,
            "resize_long" => LimitType::ResizeLong,
            other => panic!("limit_type {other}"),
        };
        DetResize::LimitSide {
            limit_side_len,
            limit_type,
        }
    } else if let Some(resize_long) = n("resize_long") {
        DetResize::ResizeLong { resize_long }
    } else {
        DetResize::LimitSide {
            limit_side_len: 736,
            limit_type: LimitType::Min,
        }
    };
    DetResizeForTest {
        resize,
        max_side_limit: n("max_side_limit").unwrap_or(4000),
    }
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn det_resize_sizes_and_ratios_match_paddleocr_in_every_mode() {
    let fixture = json("transforms", "det_resize_shapes.json");
    let configs: Vec<(String, DetResizeForTest)> = fixture["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), det_args(&c["args"])))
        .collect();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() > 1000);
    for case in cases {
        let (name, args) = &configs[case["config"].as_u64().unwrap() as usize];
        let (h, w) = (
            case["h"].as_u64().unwrap() as usize,
            case["w"].as_u64().unwrap() as usize,
        );
        let got = det_resize_plan(h, w, args);
        if case["resized"].is_null() {
            assert!(
                got.as_ref()
                    .is_err_and(|e| e.to_string().contains("would be resized to")),
                "{name} {h}x{w}: expected an error, got {got:?}"
            );
            continue;
        }
        let DetResizePlan {
            resized, shape_list, ..
        } = got.unwrap_or_else(|e| panic!("{name} {h}x{w}: {e}"));
        assert_eq!(resized.to_vec(), dims(&case["resized"]), "{name} {h}x{w}");
        // Bit for bit: the ratios are float64 quotients, as PaddleOCR's.
        assert_eq!(shape_list.to_vec(), floats(&case["shape_list"]), "{name} {h}x{w}");
    }
}

/// FNV-1a 64 of float32 little-endian bytes, as the oracle hashes large outputs.
fn fnv1a64(values: &[f32]) -> String {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in values.iter().flat_map(|v| v.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    format!("{h:016x}")
}

fn imagenet_hwc() -> NormalizeImage {
    NormalizeImage {
        scale: (1.0f64 / 255.0) as f32,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        order: ChannelOrder::Hwc,
    }
}

#[test]
fn transform_chains_match_paddleocr_bit_for_bit() {
    let cases = json("transforms", "pixel_cases.json");
    let blob = bytes("transforms", "pixels.bin");
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let args = &case["args"];
        let src = dims(&case["src"]);
        let seed = case["seed"].as_u64().unwrap() as u32;
        let kind = args.get("kind").and_then(|k| k.as_str()).unwrap_or("noise");
        let image = pattern(kind, seed, src[0], src[1], 3);
        let label = format!("{name} {args} {src:?}");
        let out = match name {
            "det" => {
                let (resized, shape_list) = det_resize_for_test(&image, &det_args(args)).unwrap();
                assert_eq!(shape_list.to_vec(), floats(&case["shape_list"]), "{label}");
                to_chw(normalize_image(Tensor::from_image(resized), &imagenet_hwc()))
            }
            "rec" => {
                let image_shape: [usize; 3] = dims(&args["image_shape"]).try_into().unwrap();
                let mode = args["mode"].as_str().unwrap();
                let rec = RecResizeImg {
                    image_shape,
                    infer_mode: false,
                    eval_mode: mode == "eval_mode",
                    character_dict_path: None,
                    padding: mode == "padding",
                };
                rec_resize_img(&image, &rec)
            }
            "cls" => cls_resize_img(
                &image,
                &ClsResizeImg {
                    image_shape: dims(&args["image_shape"]).try_into().unwrap(),
                },
            ),
            other => panic!("unknown case {other}"),
        };
        assert_eq!(out.shape().to_vec(), dims(&case["shape"]), "{label}");
        let Data::F32(values) = &out.data else {
            panic!("{label}: not float32")
        };
        if let Some(offset) = case["offset"].as_u64() {
            let offset = offset as usize;
            let want: Vec<f32> = blob[offset..offset + values.len() * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            if let Some(i) = values.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits()) {
                panic!("{label}: value {i} is {} , PaddleOCR's {}", values[i], want[i]);
            }
        }
        assert_eq!(fnv1a64(values), case["fnv1a64"].as_str().unwrap(), "{label}");
    }
}

/// The eval transforms of a fixture config.
fn fixture_transforms(name: &str, model: &str) -> Vec<Transform> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/configs")
        .join(name);
    let config = Config::load(path, &[format!("Global.pretrained_model={model}")]).unwrap();
    config.eval_dataset().transforms.clone()
}

#[test]
fn paddleocrs_own_configs_pass_the_checks() {
    let det = Pipeline::new(&fixture_transforms("ch_det_mv3_db_v2.0.yml", "det.onnx")).unwrap();
    assert_eq!(det.label_kind(), LabelKind::Det);
    let rec = Pipeline::new(&fixture_transforms("ch_PP-OCRv3_rec.yml", "rec.onnx")).unwrap();
    assert_eq!(rec.label_kind(), LabelKind::Rec);
    assert_eq!(
        rec.encode_label("  a b ").unwrap(),
        Some(Target::Rec { text: "  a b ".into() })
    );
    let cls = Pipeline::new(&fixture_transforms("cls_mv3.yml", "cls.onnx")).unwrap();
    assert_eq!(cls.label_kind(), LabelKind::Cls);
    assert_eq!(cls.encode_label("180").unwrap(), Some(Target::Cls { label: 1 }));
}

#[test]
fn a_det_pipeline_runs_from_bytes_to_chw_float32() {
    let pipeline = Pipeline::new(&fixture_transforms("ch_det_mv3_db_v2.0.yml", "det.onnx")).unwrap();
    let png = bytes("decode", "cv_rgb8.png");
    let out = pipeline.process(&png).unwrap();
    // 13x22 is tiny: padded to 32x32, then the config's limit (min 736) applies.
    assert_eq!(out.shape, [3, 736, 736]);
    assert_eq!(out.shape_list, Some([13.0, 22.0, 736.0 / 32.0, 736.0 / 32.0]));
    assert_eq!(out.image.len(), 3 * 736 * 736);
}

#[test]
fn decode_image_modes_follow_paddleocr() {
    use sensgrid_eval::config::schema::transform::{DecodeImage, ImgMode};
    use sensgrid_eval::transforms::ops::decode_image;
    let png = bytes("decode", "cv_rgb8.png");
    let bgr = decode(&png, ReadMode::Color, true).unwrap();
    let gray = decode(&png, ReadMode::Gray, true).unwrap();
    let args = |img_mode, channel_first| DecodeImage {
        img_mode,
        channel_first,
        ignore_orientation: false,
    };
    let t = decode_image(&png, &args(ImgMode::Bgr, false)).unwrap();
    assert_eq!(t.data, Data::U8(bgr.data.clone()));
    let t = decode_image(&png, &args(ImgMode::Rgb, false)).unwrap();
    let rgb: Vec<u8> = bgr.data.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    assert_eq!(t.data, Data::U8(rgb));
    let t = decode_image(&png, &args(ImgMode::Gray, false)).unwrap();
    assert_eq!(t.data, Data::U8(gray.data.iter().flat_map(|&v| [v; 3]).collect()));
    let t = decode_image(&png, &args(ImgMode::Bgr, true)).unwrap();
    assert_eq!(t.shape(), [3, 13, 22]);
    assert_eq!(t, to_chw(Tensor::from_image(bgr)));
}

/// The message of checking a transform list, which must fail.
fn refused(transforms: &[Transform]) -> String {
    let e = Pipeline::new(transforms).unwrap_err().to_string();
    assert!(!e.contains('\n'), "{e}");
    e
}

#[test]
fn transform_lists_paddleocr_would_fail_on_are_refused() {
    let det = fixture_transforms("ch_det_mv3_db_v2.0.yml", "det.onnx");
    // [DecodeImage, DetLabelEncode, DetResizeForTest, NormalizeImage, ToCHWImage, KeepKeys]
    assert_eq!(det.len(), 6);
    let without = |i: usize| [&det[..i], &det[i + 1..]].concat();
    let swapped = |i: usize, j: usize| {
        let mut t = det.clone();
        t.swap(i, j);
        t
    };
    assert_eq!(
        refused(&without(0)),
        "Eval.dataset.transforms[1].DetResizeForTest: resizes the image before DecodeImage"
    );
    assert_eq!(
        refused(&without(1)),
        "Eval.dataset.transforms[4].KeepKeys: key 'polys' is not in the sample at this point (it has img_path, \
         label, image, ext_data, shape)"
    );
    assert_eq!(
        refused(&swapped(2, 3)),
        "Eval.dataset.transforms[3].DetResizeForTest: resizes the uint8 HWC image, but the image is already \
         normalised or transposed here (put it before NormalizeImage and ToCHWImage)"
    );
    assert_eq!(
        refused(&swapped(3, 4)),
        "Eval.dataset.transforms[4].NormalizeImage: order is 'hwc' but the image is CHW here (PaddleOCR would \
         broadcast mean and std along the wrong axis)"
    );
    assert_eq!(
        refused(&without(3)),
        "Eval.dataset.transforms: the image does not end as float32 CHW, what the models take (NormalizeImage and \
         ToCHWImage, or RecResizeImg/ClsResizeImg, are missing)"
    );
    assert_eq!(
        refused(&without(5)),
        "Eval.dataset.transforms: no KeepKeys at the end (PaddleOCR's eval reads the batch by position)"
    );
    assert_eq!(
        refused(&swapped(4, 5)),
        "Eval.dataset.transforms[5].ToCHWImage: comes after KeepKeys, which turns the sample into a list (it must be last)"
    );
    let mut reordered = det.clone();
    reordered[5] = Transform::KeepKeys(KeepKeys {
        keep_keys: vec!["image".into(), "polys".into(), "shape".into(), "ignore_tags".into()],
    });
    assert_eq!(
        refused(&reordered),
        "Eval.dataset.transforms[5].KeepKeys: keep_keys must start with [\"image\", \"shape\", \"polys\", \
         \"ignore_tags\"]: PaddleOCR's eval takes the model input, post-processing input and metric input from \
         those batch positions (got [\"image\", \"polys\", \"shape\", \"ignore_tags\"])"
    );
    let mut two_labels = det.clone();
    two_labels.insert(2, Transform::DetLabelEncode);
    assert_eq!(
        refused(&two_labels),
        "Eval.dataset.transforms[2].DetLabelEncode: a second label transform (after DetLabelEncode)"
    );

    let mut rec = fixture_transforms("ch_PP-OCRv3_rec.yml", "rec.onnx");
    let Transform::RecResizeImg(r) = &mut rec[2] else {
        panic!("{:?}", rec[2])
    };
    r.image_shape = [1, 32, 100];
    assert_eq!(
        refused(&rec),
        "Eval.dataset.transforms[2].RecResizeImg: image_shape [1, 32, 100] has one channel, but DecodeImage always \
         gives three (PaddleOCR's resize_norm_img fails on every sample then)"
    );
}

#[test]
fn normalize_image_with_chw_order_works_after_to_chw() {
    let img = pattern("noise", 3, 4, 5, 3);
    let hwc = to_chw(normalize_image(Tensor::from_image(img.clone()), &imagenet_hwc()));
    let chw = normalize_image(
        to_chw(Tensor::from_image(img)),
        &NormalizeImage {
            order: ChannelOrder::Chw,
            ..imagenet_hwc()
        },
    );
    assert_eq!(hwc, chw);
}
