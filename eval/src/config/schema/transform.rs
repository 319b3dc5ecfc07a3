//! The eval transforms of `Eval.dataset.transforms`: PaddleOCR's operator classes (`ppocr/data/imaug`) that
//! sensgrid supports, with their arguments typed and the defaults of the classes' code.
//!
//! Each list item is a map of one operator name to its arguments (null when it takes none, as in
//! `- ToCHWImage:`). PaddleOCR's `create_operators` updates every operator's arguments with the whole of
//! `Global`, so an argument that `Global` sets wins: that is how `CTCLabelEncode` gets `max_text_length` and
//! `ClsLabelEncode` gets `label_list`. An argument the class would ignore is an error here, not a silent no-op.

use std::path::PathBuf;

use crate::config::error::{ConfigError, Result};
use crate::config::read::{Field, Section};
use crate::config::tree::{Map, Value};
use crate::image;

/// One eval transform, by PaddleOCR's class name.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    DecodeImage(DecodeImage),
    /// Parses a det label (JSON boxes and transcriptions; `###` marks a box to ignore). No arguments.
    DetLabelEncode,
    CTCLabelEncode(RecLabelEncode),
    /// The CTC and attention labels of PP-OCRv3/v4 rec configs; sensgrid scores the CTC branch, the one the
    /// exported model keeps.
    MultiLabelEncode(MultiLabelEncode),
    ClsLabelEncode(ClsLabelEncode),
    DetResizeForTest(DetResizeForTest),
    NormalizeImage(NormalizeImage),
    /// HWC to CHW. No arguments.
    ToCHWImage,
    RecResizeImg(RecResizeImg),
    ClsResizeImg(ClsResizeImg),
    KeepKeys(KeepKeys),
}

/// Decodes the image file.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeImage {
    pub img_mode: ImgMode,
    /// Transpose to CHW right after decoding (false).
    pub channel_first: bool,
    /// Ignore the EXIF orientation (false).
    pub ignore_orientation: bool,
}

/// The channel order of the decoded image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImgMode {
    /// `BGR`: OpenCV's order, what PP-OCR models are trained on.
    Bgr,
    /// `RGB`: the code's default (channels reversed from OpenCV's).
    Rgb,
    /// `GRAY`: decoded as grayscale, then repeated to three channels.
    Gray,
}

/// The arguments of `CTCLabelEncode`, shared with the rec label encoders.
#[derive(Clone, Debug, PartialEq)]
pub struct RecLabelEncode {
    /// Labels longer than this are skipped (no default: rec configs set it in `Global`).
    pub max_text_length: usize,
    /// One character per line; `None` means `0-9a-z` and lower-cased labels.
    pub character_dict_path: Option<PathBuf>,
    /// Append a space to the dictionary (false).
    pub use_space_char: bool,
}

/// `MultiLabelEncode`'s arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiLabelEncode {
    pub label: RecLabelEncode,
    /// The second head's encoder (`NRTRLabelEncode` in PP-OCRv4); `None` is SAR's.
    pub gtc_encode: Option<String>,
}

/// Maps a cls label to its class index; samples with any other label are skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct ClsLabelEncode {
    pub label_list: Vec<String>,
}

/// Resizes a det image to multiples of 32 (or of 128 for `resize_long`).
#[derive(Clone, Debug, PartialEq)]
pub struct DetResizeForTest {
    pub resize: DetResize,
    /// A limit-side resize whose result would exceed this is scaled down to it (4000).
    pub max_side_limit: usize,
}

/// The three ways `DetResizeForTest` resizes, chosen as PaddleOCR chooses: `image_shape` first, then
/// `limit_side_len`, then `resize_long`, else a limit of 736 on the short side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DetResize {
    /// `image_shape: [h, w]`: to that size, or to height `h` and a width that keeps the ratio.
    ImageShape {
        height: usize,
        width: usize,
        keep_ratio: bool,
    },
    /// `limit_side_len` and `limit_type`.
    LimitSide {
        limit_side_len: usize,
        limit_type: LimitType,
    },
    /// `resize_long`: the long side to this, both sides rounded up to multiples of 128.
    ResizeLong { resize_long: usize },
}

/// Which side `limit_side_len` limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitType {
    /// Scale up so the short side is at least the limit.
    Min,
    /// Scale down so the long side is at most the limit.
    Max,
    /// Scale so the long side equals the limit.
    ResizeLong,
}

/// `(image * scale - mean) / std`, in float32 as PaddleOCR computes it.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizeImage {
    /// 1/255 by default; configs write it as the string `1./255.`, which PaddleOCR evaluates.
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The layout the image is in when normalised: `hwc` in every eval config, `chw` by default.
    pub order: ChannelOrder,
}

/// An image layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOrder {
    Chw,
    Hwc,
}

/// Resizes and normalises a rec crop to `image_shape`, padding on the right.
#[derive(Clone, Debug, PartialEq)]
pub struct RecResizeImg {
    /// `[channels, height, width]`.
    pub image_shape: [usize; 3],
    pub infer_mode: bool,
    /// Resize as PaddleOCR's inference does (width from the crop's ratio) instead of padding (false).
    pub eval_mode: bool,
    /// Only whether it is set matters here: with `infer_mode` it selects the inference resize.
    pub character_dict_path: Option<PathBuf>,
    /// Keep the aspect ratio and pad (true), or stretch to the full width.
    pub padding: bool,
}

/// Resizes and normalises a cls crop to `image_shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClsResizeImg {
    /// `[channels, height, width]`.
    pub image_shape: [usize; 3],
}

/// The sample's fields handed on, in this order (the batch's layout).
#[derive(Clone, Debug, PartialEq)]
pub struct KeepKeys {
    pub keep_keys: Vec<String>,
}

impl Transform {
    /// PaddleOCR's class name.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::DecodeImage(_) => "DecodeImage",
            Transform::DetLabelEncode => "DetLabelEncode",
            Transform::CTCLabelEncode(_) => "CTCLabelEncode",
            Transform::MultiLabelEncode(_) => "MultiLabelEncode",
            Transform::ClsLabelEncode(_) => "ClsLabelEncode",
            Transform::DetResizeForTest(_) => "DetResizeForTest",
            Transform::NormalizeImage(_) => "NormalizeImage",
            Transform::ToCHWImage => "ToCHWImage",
            Transform::RecResizeImg(_) => "RecResizeImg",
            Transform::ClsResizeImg(_) => "ClsResizeImg",
            Transform::KeepKeys(_) => "KeepKeys",
        }
    }
}

/// The transforms sensgrid runs, and the reader of each one's arguments.
type Reader = fn(&Section<'_>) -> Result<Transform>;
const TRANSFORMS: [(&str, Reader); 11] = [
    ("DecodeImage", decode_image),
    ("DetLabelEncode", |s| {
        s.check_keys(&[]).map(|()| Transform::DetLabelEncode)
    }),
    ("CTCLabelEncode", |s| {
        rec_label_encode(s, &[]).map(Transform::CTCLabelEncode)
    }),
    ("MultiLabelEncode", multi_label_encode),
    ("ClsLabelEncode", cls_label_encode),
    ("DetResizeForTest", det_resize_for_test),
    ("NormalizeImage", normalize_image),
    ("ToCHWImage", |s| s.check_keys(&[]).map(|()| Transform::ToCHWImage)),
    ("RecResizeImg", rec_resize_img),
    ("ClsResizeImg", cls_resize_img),
    ("KeepKeys", keep_keys),
];

/// Reads a transforms list at `field`, with `Global`'s keys winning over each transform's own.
pub(crate) fn read_list(field: Field<'_>, global: Option<&Map>) -> Result<Vec<Transform>> {
    let mut transforms = Vec::new();
    for item in field.items()? {
        let item = item.field();
        let entry = match &item.node.value {
            Value::Map(map) if map.len() == 1 => map.entries().next().expect("one entry"),
            _ => return Err(item.expected("a map of one transform name to its arguments")),
        };
        let path = format!("{}.{}", item.path, entry.key);
        let Some((_, reader)) = TRANSFORMS.iter().find(|(name, _)| *name == entry.key) else {
            let names: Vec<&str> = TRANSFORMS.iter().map(|(name, _)| *name).collect();
            return Err(ConfigError::key(
                &entry.key_origin,
                path,
                format!("unknown transform (sensgrid evaluates with {})", names.join(", ")),
            ));
        };
        let section = Section::open(path, &entry.key_origin, Some(&entry.value))?.with_global(global);
        transforms.push(reader(&section)?);
    }
    Ok(transforms)
}

fn decode_image(s: &Section<'_>) -> Result<Transform> {
    s.check_keys(&["img_mode", "channel_first", "ignore_orientation"])?;
    let modes = [("BGR", ImgMode::Bgr), ("RGB", ImgMode::Rgb), ("GRAY", ImgMode::Gray)];
    Ok(Transform::DecodeImage(DecodeImage {
        img_mode: s.get("img_mode", |f| f.choice(&modes))?.unwrap_or(ImgMode::Rgb),
        channel_first: s.get("channel_first", |f| f.bool())?.unwrap_or(false),
        ignore_orientation: s.get("ignore_orientation", |f| f.bool())?.unwrap_or(false),
    }))
}

/// The arguments of PaddleOCR's `BaseRecLabelEncode`, plus `extra` keys the caller reads.
fn rec_label_encode(s: &Section<'_>, extra: &[&str]) -> Result<RecLabelEncode> {
    let mut known = vec!["max_text_length", "character_dict_path", "use_space_char"];
    known.extend_from_slice(extra);
    s.check_keys(&known)?;
    Ok(RecLabelEncode {
        max_text_length: s
            .get("max_text_length", |f| f.positive_count())?
            .ok_or_else(|| s.missing("max_text_length", "rec configs set it as Global.max_text_length"))?,
        character_dict_path: s.get("character_dict_path", |f| f.path_buf())?,
        use_space_char: s.get("use_space_char", |f| f.bool())?.unwrap_or(false),
    })
}

fn multi_label_encode(s: &Section<'_>) -> Result<Transform> {
    let label = rec_label_encode(s, &["gtc_encode"])?;
    let gtc_encode = s.get("gtc_encode", |f| f.str().map(str::to_owned))?;
    Ok(Transform::MultiLabelEncode(MultiLabelEncode { label, gtc_encode }))
}

fn cls_label_encode(s: &Section<'_>) -> Result<Transform> {
    s.check_keys(&["label_list"])?;
    let label_list = s
        .get("label_list", super::label_list)?
        .ok_or_else(|| s.missing("label_list", "cls configs set it as Global.label_list"))?;
    Ok(Transform::ClsLabelEncode(ClsLabelEncode { label_list }))
}

fn det_resize_for_test(s: &Section<'_>) -> Result<Transform> {
    s.check_keys(&[
        "image_shape",
        "keep_ratio",
        "limit_side_len",
        "limit_type",
        "resize_long",
        "max_side_limit",
    ])?;
    // PaddleOCR picks one mode and ignores the other modes' keys; a config that sets them means something
    // PaddleOCR does not do, so it is refused.
    let ignored = |keys: &[&str], why: &str| -> Result<()> {
        for key in keys {
            s.get(key, |f| Err::<(), _>(f.error(format!("has no effect {why}"))))?;
        }
        Ok(())
    };
    let side = |f: Field<'_>| f.positive_count();
    let resize = if let Some([height, width]) = s.get("image_shape", |f| f.array(side))? {
        ignored(
            &["limit_side_len", "limit_type", "resize_long"],
            "with image_shape, which PaddleOCR uses",
        )?;
        DetResize::ImageShape {
            height,
            width,
            keep_ratio: s.get("keep_ratio", |f| f.bool())?.unwrap_or(false),
        }
    } else if let Some(limit_side_len) = s.get("limit_side_len", side)? {
        ignored(&["keep_ratio"], "without image_shape")?;
        ignored(&["resize_long"], "with limit_side_len, which PaddleOCR uses")?;
        let types = [
            ("min", LimitType::Min),
            ("max", LimitType::Max),
            ("resize_long", LimitType::ResizeLong),
        ];
        DetResize::LimitSide {
            limit_side_len,
            limit_type: s.get("limit_type", |f| f.choice(&types))?.unwrap_or(LimitType::Min),
        }
    } else {
        ignored(&["keep_ratio"], "without image_shape")?;
        ignored(
            &["limit_type"],
            "without limit_side_len (PaddleOCR then limits the short side to 736)",
        )?;
        match s.get("resize_long", side)? {
            Some(resize_long) => DetResize::ResizeLong { resize_long },
            None => DetResize::LimitSide {
                limit_side_len: 736,
                limit_type: LimitType::Min,
            },
        }
    };
    Ok(Transform::DetResizeForTest(DetResizeForTest {
        resize,
        max_side_limit: s.get("max_side_limit", side)?.unwrap_or(4000),
    }))
}

fn normalize_image(s: &Section<'_>) -> Result<Transform> {
    s.check_keys(&["scale", "mean", "std", "order"])?;
    let triple = |f: Field<'_>| f.array(|x| x.number().map(|x| x as f32));
    let std = |f: Field<'_>| {
        let std = triple(f)?;
        if std.contains(&0.0) {
            return Err(f.error("has a zero, which the image would be divided by"));
        }
        Ok(std)
    };
    let orders = [("chw", ChannelOrder::Chw), ("hwc", ChannelOrder::Hwc)];
    Ok(Transform::NormalizeImage(NormalizeImage {
        scale: s.get("scale", scale)?.unwrap_or(1.0 / 255.0),
        mean: s.get("mean", triple)?.unwrap_or([0.485, 0.456, 0.406]),
        std: s.get("std", std)?.unwrap_or([0.229, 0.224, 0.225]),
        order: s.get("order", |f| f.choice(&orders))?.unwrap_or(ChannelOrder::Chw),
    }))
}

/// A number, or a string PaddleOCR `eval`s: a number or one division (`1./255.`).
fn scale(f: Field<'_>) -> Result<f32> {
    let value = match &f.node.value {
        Value::Str(text) => {
            let number = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
            match text.split_once('/') {
                Some((a, b)) => number(a).zip(number(b)).map(|(a, b)| a / b),
                None => number(text),
            }
            .ok_or_else(|| f.expected("a number or a division such as 1./255."))?
        }
        _ => f.number()?,
    };
    if value > 0.0 && value.is_finite() {
        Ok(value as f32)
    } else {
        Err(f.error(format!("expected a scale > 0, got {}", f.node.describe())))
    }
}

/// `[channels, height, width]`, with 1 or 3 channels, within the image limits (every crop is resized to it).
fn image_shape(f: Field<'_>) -> Result<[usize; 3]> {
    let shape: [usize; 3] = f.array(|x| x.positive_count())?;
    if !matches!(shape[0], 1 | 3) {
        return Err(f.error(format!(
            "expected [channels, height, width] with 1 or 3 channels, got {shape:?}"
        )));
    }
    if !image::within_limits(shape[2] as u64, shape[1] as u64) {
        return Err(f.error(format!(
            "{shape:?} is over the limit of {} pixels a side and {} Mpx of an image",
            image::MAX_IMAGE_SIDE,
            image::MAX_IMAGE_PIXELS >> 20
        )));
    }
    Ok(shape)
}

fn rec_resize_img(s: &Section<'_>) -> Result<Transform> {
    s.check_keys(&[
        "image_shape",
        "infer_mode",
        "eval_mode",
        "character_dict_path",
        "padding",
    ])?;
    Ok(Transform::RecResizeImg(RecResizeImg {
        image_shape: s.require("image_shape", image_shape)?,
        infer_mode: s.get("infer_mode", |f| f.bool())?.unwrap_or(false),
        eval_mode: s.get("eval_mode", |f| f.bool())?.unwrap_or(false),
        // An explicit null is PaddleOCR's None, not the code's default dictionary.
        character_dict_path: s
            .get_nullable("character_dict_path", |f| f.path_buf())?
            .unwrap_or_else(|| Some(PathBuf::from("./ppocr/utils/ppocr_keys_v1.txt"))),
        padding: s.get("padding", |f| f.bool())?.unwrap_or(true),
    }))
}

fn cls_resize_img(s: &Section<'_>) -> Result<Transform> {
    s.check_keys(&["image_shape"])?;
    Ok(Transform::ClsResizeImg(ClsResizeImg {
        image_shape: s.require("image_shape", image_shape)?,
    }))
}

fn keep_keys(s: &Section<'_>) -> Result<Transform> {
    s.check_keys(&["keep_keys"])?;
    let keep_keys = s.require("keep_keys", |f| {
        let keys = f.list(|k| k.str().map(str::to_owned))?;
        if keys.is_empty() {
            return Err(f.error("expected at least one key, got an empty list"));
        }
        Ok(keys)
    })?;
    Ok(Transform::KeepKeys(KeepKeys { keep_keys }))
}
