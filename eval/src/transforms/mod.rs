//! PaddleOCR's eval transforms (`Eval.dataset.transforms`) applied to one sample: the image bytes become the
//! model's float32 CHW input, the label field becomes the metric's [`Target`].
//!
//! A [`Pipeline`] is built once from the config's list and checks it the way PaddleOCR would fail on it,
//! but up front: `DecodeImage` first among the image transforms; one label transform; each image transform
//! on an image of the layout and type it works on (`NormalizeImage`'s `order` is the layout at that point,
//! `ToCHWImage` on HWC, the resizes on the uint8 HWC image); float32 CHW at the end; `KeepKeys` last, with
//! only keys produced before it, in the positions PaddleOCR's eval loop reads (`batch[0]` the image,
//! `batch[1]` the det `shape` or the rec/cls label, `batch[2]` and `batch[3]` the det polygons and ignore
//! tags). Running it then only fails on a bad file or label.
//!
//! The label transforms are in [`label`], the image transforms in [`ops`]; reading files and lines is the
//! dataset's ([`crate::dataset`]).

pub mod error;
pub mod label;
pub mod ops;

use crate::config::schema::transform::{ClsResizeImg, DecodeImage, RecResizeImg, Transform};

pub use error::TransformError;
pub use label::{Target, cls_label_encode, det_label_encode};
pub use ops::{Data, Layout, Tensor};

/// One evaluated sample: the model input and what the metric compares against.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// float32, `[C, H, W]` row-major.
    pub image: Vec<f32>,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// `DetResizeForTest`'s `[src_h, src_w, ratio_h, ratio_w]`, which DB post-processing scales boxes with.
    pub shape_list: Option<[f64; 4]>,
    pub target: Target,
}

/// The task a transform list's label transform belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelKind {
    /// `DetLabelEncode`.
    Det,
    /// `CTCLabelEncode` or `MultiLabelEncode`.
    Rec,
    /// `ClsLabelEncode`.
    Cls,
}

/// The image part of a sample after the transforms.
#[derive(Clone, Debug, PartialEq)]
pub struct Processed {
    /// float32, `[C, H, W]`.
    pub image: Vec<f32>,
    pub shape: [usize; 3],
    pub shape_list: Option<[f64; 4]>,
}

/// A checked transform list, ready to run on samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    decode: DecodeImage,
    /// The image transforms after `DecodeImage`, in order.
    ops: Vec<Transform>,
    /// The label transform, with its arguments (the rec code needs the dictionary's).
    label: Transform,
    keep_keys: Vec<String>,
}

/// What the check of a transform list tracks: the image's type and layout, and the sample's keys.
struct State {
    decoded: bool,
    float: bool,
    layout: Layout,
    keys: Vec<&'static str>,
}

impl Pipeline {
    /// Checks a transform list (see the module docs for the rules).
    ///
    /// # Errors
    /// [`TransformError::Config`] naming the transform (`Eval.dataset.transforms[2].ToCHWImage`) and what is
    /// wrong, or the list (`Eval.dataset.transforms`) when something is missing.
    pub fn new(transforms: &[Transform]) -> Result<Pipeline, TransformError> {
        const LIST: &str = "Eval.dataset.transforms";
        let mut state = State {
            decoded: false,
            float: false,
            layout: Layout::Hwc,
            // SimpleDataSet's sample before any transform.
            keys: vec!["img_path", "label", "image", "ext_data"],
        };
        let mut decode = None;
        let mut ops = Vec::new();
        let mut label: Option<Transform> = None;
        let mut keep_keys = None;
        for (i, t) in transforms.iter().enumerate() {
            let key = format!("{LIST}[{i}].{}", t.name());
            let err = |message: String| Err(TransformError::config(&key, message));
            if keep_keys.is_some() {
                return err("comes after KeepKeys, which turns the sample into a list (it must be last)".into());
            }
            let needs_image = |state: &State, what: &str| -> Result<(), TransformError> {
                if !state.decoded {
                    return Err(TransformError::config(&key, format!("{what} before DecodeImage")));
                }
                Ok(())
            };
            let needs_u8_hwc = |state: &State| -> Result<(), TransformError> {
                needs_image(state, "resizes the image")?;
                if state.float || state.layout != Layout::Hwc {
                    return Err(TransformError::config(
                        &key,
                        "resizes the uint8 HWC image, but the image is already normalised or transposed here \
                         (put it before NormalizeImage and ToCHWImage)",
                    ));
                }
                Ok(())
            };
            match t {
                Transform::DecodeImage(args) => {
                    if state.decoded {
                        return err("a second DecodeImage (the image is already decoded)".into());
                    }
                    state.decoded = true;
                    if args.channel_first {
                        state.layout = Layout::Chw;
                    }
                    decode = Some(args.clone());
                }
                Transform::DetLabelEncode
                | Transform::CTCLabelEncode(_)
                | Transform::MultiLabelEncode(_)
                | Transform::ClsLabelEncode(_) => {
                    if let Some(first) = &label {
                        return err(format!("a second label transform (after {})", first.name()));
                    }
                    match t {
                        Transform::DetLabelEncode => state.keys.extend(["polys", "texts", "ignore_tags"]),
                        Transform::CTCLabelEncode(_) => state.keys.push("length"),
                        Transform::MultiLabelEncode(m) => {
                            // MultiLabelEncode returns a new dict with only these keys.
                            let gtc = if m.gtc_encode.is_some() {
                                "label_gtc"
                            } else {
                                "label_sar"
                            };
                            state.keys = vec!["img_path", "image", "label_ctc", gtc, "length"];
                        }
                        _ => {}
                    }
                    label = Some(t.clone());
                }
                Transform::DetResizeForTest(_) => {
                    needs_u8_hwc(&state)?;
                    state.keys.push("shape");
                    ops.push(t.clone());
                }
                Transform::RecResizeImg(RecResizeImg { image_shape, .. })
                | Transform::ClsResizeImg(ClsResizeImg { image_shape }) => {
                    needs_u8_hwc(&state)?;
                    if image_shape[0] != 3 {
                        return err(format!(
                            "image_shape {image_shape:?} has one channel, but DecodeImage always gives three \
                             (PaddleOCR's resize_norm_img fails on every sample then)"
                        ));
                    }
                    state.float = true;
                    state.layout = Layout::Chw;
                    if let Transform::RecResizeImg(_) = t {
                        state.keys.push("valid_ratio");
                    }
                    ops.push(t.clone());
                }
                Transform::NormalizeImage(args) => {
                    needs_image(&state, "normalises the image")?;
                    if !ops::order_matches(args.order, state.layout) {
                        let (order, layout) = match state.layout {
                            Layout::Hwc => ("chw", "HWC"),
                            Layout::Chw => ("hwc", "CHW"),
                        };
                        return err(format!(
                            "order is '{order}' but the image is {layout} here (PaddleOCR would broadcast mean \
                             and std along the wrong axis)"
                        ));
                    }
                    state.float = true;
                    ops.push(t.clone());
                }
                Transform::ToCHWImage => {
                    needs_image(&state, "transposes the image")?;
                    if state.layout == Layout::Chw {
                        return err("the image is already CHW here".into());
                    }
                    state.layout = Layout::Chw;
                    ops.push(t.clone());
                }
                Transform::KeepKeys(k) => {
                    if let Some(missing) = k.keep_keys.iter().find(|key| !state.keys.contains(&key.as_str())) {
                        return err(format!(
                            "key '{missing}' is not in the sample at this point (it has {})",
                            state.keys.join(", ")
                        ));
                    }
                    keep_keys = Some(k.keep_keys.clone());
                }
            }
        }
        let missing = |what: &str| Err(TransformError::config(LIST, what.to_string()));
        let Some(decode) = decode else {
            return missing("no DecodeImage");
        };
        let Some(label) = label else {
            return missing("no label transform (DetLabelEncode, CTCLabelEncode, MultiLabelEncode or ClsLabelEncode)");
        };
        if !state.float || state.layout != Layout::Chw {
            return missing(
                "the image does not end as float32 CHW, what the models take (NormalizeImage and ToCHWImage, or \
                 RecResizeImg/ClsResizeImg, are missing)",
            );
        }
        let Some(keep_keys) = keep_keys else {
            return missing("no KeepKeys at the end (PaddleOCR's eval reads the batch by position)");
        };
        let wanted: &[&str] = match &label {
            Transform::DetLabelEncode => &["image", "shape", "polys", "ignore_tags"],
            Transform::MultiLabelEncode(_) => &["image", "label_ctc"],
            _ => &["image", "label"],
        };
        if keep_keys.len() < wanted.len() || keep_keys.iter().zip(wanted).any(|(a, b)| a != b) {
            return Err(TransformError::config(
                format!("{LIST}[{}].KeepKeys", transforms.len() - 1),
                format!(
                    "keep_keys must start with {wanted:?}: PaddleOCR's eval takes the model input, post-processing \
                     input and metric input from those batch positions (got {keep_keys:?})"
                ),
            ));
        }
        Ok(Pipeline {
            decode,
            ops,
            label,
            keep_keys,
        })
    }

    /// Which task the label transform belongs to.
    pub fn label_kind(&self) -> LabelKind {
        match self.label {
            Transform::DetLabelEncode => LabelKind::Det,
            Transform::ClsLabelEncode(_) => LabelKind::Cls,
            _ => LabelKind::Rec,
        }
    }

    /// The label transform, with its arguments.
    pub fn label_transform(&self) -> &Transform {
        &self.label
    }

    /// Decodes `bytes` as the pipeline's `DecodeImage` does, and nothing more: to check an image file without
    /// running the rest of the transforms (the eval set's and the training set's checks at submit).
    ///
    /// # Errors
    /// The decode's error.
    pub fn check_decodes(&self, bytes: &[u8]) -> Result<(), TransformError> {
        ops::decode_image(bytes, &self.decode).map(drop)
    }

    /// `KeepKeys`' keys.
    pub fn keep_keys(&self) -> &[String] {
        &self.keep_keys
    }

    /// The label transform on a label field: the target, or `None` where PaddleOCR's transform returns
    /// `None` (a det label without boxes). Rec labels are passed on whole.
    ///
    /// # Errors
    /// [`TransformError::Label`] where PaddleOCR's transform raises, and for a cls label not in
    /// `label_list`.
    pub fn encode_label(&self, label: &str) -> Result<Option<Target>, TransformError> {
        match &self.label {
            Transform::DetLabelEncode => det_label_encode(label),
            Transform::ClsLabelEncode(c) => cls_label_encode(label, &c.label_list).map(Some),
            _ => Ok(Some(Target::Rec { text: label.to_owned() })),
        }
    }

    /// Decodes image bytes and runs the image transforms.
    ///
    /// # Errors
    /// [`TransformError::Decode`] for bytes that do not decode, [`TransformError::Image`] for an image a
    /// transform cannot process.
    pub fn process(&self, bytes: &[u8]) -> Result<Processed, TransformError> {
        self.process_decoded(ops::decode_image(bytes, &self.decode)?)
    }

    /// Runs the image transforms after `DecodeImage` on a decoded image (as `DecodeImage` leaves it:
    /// three channels in the configured order, CHW with `channel_first`).
    ///
    /// # Errors
    /// [`TransformError::Image`] for an image a transform cannot process.
    pub fn process_decoded(&self, mut tensor: Tensor) -> Result<Processed, TransformError> {
        let mut shape_list = None;
        for op in &self.ops {
            let uint8 = |t: &Tensor| {
                t.as_image()
                    .ok_or_else(|| TransformError::image(op.name(), "expected a uint8 HWC image"))
            };
            tensor = match op {
                Transform::DetResizeForTest(args) => {
                    let (img, shape) = ops::det_resize_for_test(&uint8(&tensor)?, args)?;
                    shape_list = Some(shape);
                    Tensor::from_image(img)
                }
                Transform::NormalizeImage(args) => {
                    if !ops::order_matches(args.order, tensor.layout) {
                        return Err(TransformError::image(
                            op.name(),
                            format!("order does not match a {:?} image", tensor.layout),
                        ));
                    }
                    ops::normalize_image(tensor, args)
                }
                Transform::ToCHWImage if tensor.layout == Layout::Chw => {
                    return Err(TransformError::image(op.name(), "the image is already CHW"));
                }
                Transform::ToCHWImage => ops::to_chw(tensor),
                Transform::RecResizeImg(args) => ops::rec_resize_img(&uint8(&tensor)?, args),
                Transform::ClsResizeImg(args) => ops::cls_resize_img(&uint8(&tensor)?, args),
                other => unreachable!("{} is not an image transform", other.name()),
            };
        }
        match tensor {
            Tensor {
                data: Data::F32(image),
                layout: Layout::Chw,
                height,
                width,
                channels,
            } => Ok(Processed {
                image,
                shape: [channels, height, width],
                shape_list,
            }),
            // Pipeline::new checks that the configured transforms end there, from what DecodeImage gives.
            _ => Err(TransformError::image(
                "KeepKeys",
                "the image does not end as float32 CHW",
            )),
        }
    }
}
