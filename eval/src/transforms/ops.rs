//! The image transforms, each reproducing its PaddleOCR class (`ppocr/data/imaug/operators.py` and
//! `rec_img_aug.py`) including the float64 size arithmetic and the float32 pixel arithmetic numpy does.
//!
//! Every resize here is [`resize_linear`] on the uint8 image, as PaddleOCR resizes before converting.

use crate::config::schema::transform::{
    ChannelOrder, ClsResizeImg, DecodeImage, DetResize, DetResizeForTest, ImgMode, LimitType, NormalizeImage,
    RecResizeImg,
};
use crate::image::{self, Image, ReadMode};
use crate::resize::resize_linear;

use super::error::TransformError;

/// An image between transforms: uint8 until a transform makes it float32, HWC until it is transposed.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub data: Data,
    pub layout: Layout,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

/// A tensor's samples.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// The order of a tensor's axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Height, width, channels: decoded images.
    Hwc,
    /// Channels, height, width: what the models take.
    Chw,
}

impl Tensor {
    /// A decoded image, HWC.
    pub fn from_image(image: Image) -> Self {
        Tensor {
            layout: Layout::Hwc,
            height: image.height,
            width: image.width,
            channels: image.channels,
            data: Data::U8(image.data),
        }
    }

    /// The uint8 HWC image, if this is one.
    pub fn as_image(&self) -> Option<Image> {
        match (&self.data, self.layout) {
            (Data::U8(data), Layout::Hwc) => {
                Some(Image::from_raw(self.height, self.width, self.channels, data.clone()))
            }
            _ => None,
        }
    }

    /// The shape in the tensor's own axis order.
    pub fn shape(&self) -> [usize; 3] {
        match self.layout {
            Layout::Hwc => [self.height, self.width, self.channels],
            Layout::Chw => [self.channels, self.height, self.width],
        }
    }
}

/// `DecodeImage`: decode, then GRAY to three channels (`COLOR_GRAY2BGR`), RGB reversed, CHW if asked.
///
/// # Errors
/// [`TransformError::Decode`] when the bytes do not decode.
pub fn decode_image(bytes: &[u8], args: &DecodeImage) -> Result<Tensor, TransformError> {
    let mode = match args.img_mode {
        ImgMode::Gray => ReadMode::Gray,
        ImgMode::Bgr | ImgMode::Rgb => ReadMode::Color,
    };
    let mut img = image::decode(bytes, mode, !args.ignore_orientation).map_err(TransformError::Decode)?;
    match args.img_mode {
        ImgMode::Gray => {
            img = Image::from_raw(
                img.height,
                img.width,
                3,
                img.data.iter().flat_map(|&v| [v; 3]).collect(),
            )
        }
        ImgMode::Rgb => img.data.chunks_exact_mut(3).for_each(|px| px.reverse()),
        ImgMode::Bgr => {}
    }
    let tensor = Tensor::from_image(img);
    Ok(if args.channel_first { to_chw(tensor) } else { tensor })
}

/// The sizes `DetResizeForTest` computes for an image, before any pixel moves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetResizePlan {
    /// The size after PaddleOCR's padding of tiny images (`h + w < 64` pads to at least 32x32 with zeros,
    /// at the bottom and right); the resize and the ratios use this size.
    pub padded: [usize; 2],
    /// The size the image is resized to.
    pub resized: [usize; 2],
    /// `shape_list`: `[src_h, src_w, ratio_h, ratio_w]`, the source size before padding.
    pub shape_list: [f64; 4],
}

/// `DetResizeForTest`'s size arithmetic for a `height` x `width` image: `resize_image_type0` (limit side,
/// rounded to multiples of 32 with Python's half-to-even `round`, at least 32, and scaled down to
/// `max_side_limit`), `type1` (`image_shape`, the width rounded up to a multiple of 32 with `keep_ratio`)
/// and `type2` (`resize_long`, both sides rounded up to multiples of 128).
///
/// # Errors
/// [`TransformError::Image`] when a side would be resized to 0 (`resize_long` on a very long image),
/// where `cv2.resize` raises.
pub fn det_resize_plan(height: usize, width: usize, args: &DetResizeForTest) -> Result<DetResizePlan, TransformError> {
    let (src_h, src_w) = (height, width);
    let (h, w) = if src_h + src_w < 64 {
        (src_h.max(32), src_w.max(32))
    } else {
        (src_h, src_w)
    };
    let (hf, wf) = (h as f64, w as f64);
    let (resize_h, resize_w) = match args.resize {
        DetResize::LimitSide {
            limit_side_len,
            limit_type,
        } => {
            let limit = limit_side_len as f64;
            let ratio = match limit_type {
                LimitType::Max if h.max(w) > limit_side_len => limit / if h > w { hf } else { wf },
                LimitType::Min if h.min(w) < limit_side_len => limit / if h < w { hf } else { wf },
                LimitType::ResizeLong => limit / h.max(w) as f64,
                LimitType::Max | LimitType::Min => 1.0,
            };
            let (mut rh, mut rw) = ((hf * ratio) as usize, (wf * ratio) as usize);
            if rh.max(rw) > args.max_side_limit {
                let ratio = args.max_side_limit as f64 / rh.max(rw) as f64;
                (rh, rw) = ((rh as f64 * ratio) as usize, (rw as f64 * ratio) as usize);
            }
            let to32 = |x: usize| (((x as f64 / 32.0).round_ties_even() * 32.0) as usize).max(32);
            (to32(rh), to32(rw))
        }
        DetResize::ImageShape {
            height,
            width,
            keep_ratio,
        } => {
            let width = if keep_ratio {
                let w = (w * height) as f64 / hf;
                (w / 32.0).ceil() as usize * 32
            } else {
                width
            };
            (height, width)
        }
        DetResize::ResizeLong { resize_long } => {
            let ratio = resize_long as f64 / if h > w { hf } else { wf };
            let up128 = |x: usize| x.div_ceil(128).saturating_mul(128);
            (up128((hf * ratio) as usize), up128((wf * ratio) as usize))
        }
    };
    if resize_h == 0 || resize_w == 0 {
        return Err(TransformError::image(
            "DetResizeForTest",
            format!("a {src_h}x{src_w} image would be resized to {resize_h}x{resize_w}"),
        ));
    }
    Ok(DetResizePlan {
        padded: [h, w],
        resized: [resize_h, resize_w],
        shape_list: [src_h as f64, src_w as f64, resize_h as f64 / hf, resize_w as f64 / wf],
    })
}

/// `DetResizeForTest` on a uint8 HWC image: the resized image and its `shape_list`.
///
/// # Errors
/// As [`det_resize_plan`].
pub fn det_resize_for_test(image: &Image, args: &DetResizeForTest) -> Result<(Image, [f64; 4]), TransformError> {
    let plan = det_resize_plan(image.height, image.width, args)?;
    let [rh, rw] = plan.resized;
    // The decoder's limits hold for what the resize makes too: a config's `image_shape` or `resize_long`
    // must not make a worker allocate more than any image it may decode.
    if !image::within_limits(rw as u64, rh as u64) {
        return Err(TransformError::image(
            "DetResizeForTest",
            format!(
                "a {}x{} image would be resized to {rh}x{rw}, over the limit of {} pixels a \
                 side and {} Mpx",
                image.height,
                image.width,
                image::MAX_IMAGE_SIDE,
                image::MAX_IMAGE_PIXELS >> 20
            ),
        ));
    }
    let [ph, pw] = plan.padded;
    let padded;
    let source = if [ph, pw] == [image.height, image.width] {
        image
    } else {
        let c = image.channels;
        let mut p = Image::zeros(ph, pw, c);
        for y in 0..image.height {
            let row = &image.data[y * image.width * c..(y + 1) * image.width * c];
            p.data[y * pw * c..y * pw * c + row.len()].copy_from_slice(row);
        }
        padded = p;
        &padded
    };
    Ok((resize_linear(source, rh, rw), plan.shape_list))
}

/// `NormalizeImage`: `(img.astype(float32) * scale - mean) / std` per channel, in float32, on the tensor as
/// it is (the caller has checked that `order` is its layout).
pub fn normalize_image(tensor: Tensor, args: &NormalizeImage) -> Tensor {
    let (h, w, c) = (tensor.height, tensor.width, tensor.channels);
    let channel = |i: usize| match tensor.layout {
        Layout::Hwc => i % c,
        Layout::Chw => i / (h * w),
    };
    let norm = |i: usize, x: f32| (x * args.scale - args.mean[channel(i)]) / args.std[channel(i)];
    let data = match &tensor.data {
        Data::U8(d) => d.iter().enumerate().map(|(i, &x)| norm(i, f32::from(x))).collect(),
        Data::F32(d) => d.iter().enumerate().map(|(i, &x)| norm(i, x)).collect(),
    };
    Tensor {
        data: Data::F32(data),
        ..tensor
    }
}

/// Whether `NormalizeImage`'s `order` matches a layout.
pub fn order_matches(order: ChannelOrder, layout: Layout) -> bool {
    matches!(
        (order, layout),
        (ChannelOrder::Hwc, Layout::Hwc) | (ChannelOrder::Chw, Layout::Chw)
    )
}

/// `ToCHWImage` (and `DecodeImage`'s `channel_first`): HWC to CHW.
pub fn to_chw(tensor: Tensor) -> Tensor {
    fn transpose<T: Copy + Default>(d: &[T], h: usize, w: usize, c: usize) -> Vec<T> {
        let mut out = vec![T::default(); d.len()];
        for (i, &v) in d.iter().enumerate() {
            let (y, x, k) = (i / (w * c), i / c % w, i % c);
            out[(k * h + y) * w + x] = v;
        }
        out
    }
    let (h, w, c) = (tensor.height, tensor.width, tensor.channels);
    let data = match &tensor.data {
        Data::U8(d) => Data::U8(transpose(d, h, w, c)),
        Data::F32(d) => Data::F32(transpose(d, h, w, c)),
    };
    Tensor {
        data,
        layout: Layout::Chw,
        ..tensor
    }
}

/// `RecResizeImg`: `resize_norm_img_chinese` with `eval_mode`, or with `infer_mode` and a dictionary;
/// `resize_norm_img` otherwise.
pub fn rec_resize_img(image: &Image, args: &RecResizeImg) -> Tensor {
    if args.eval_mode || (args.infer_mode && args.character_dict_path.is_some()) {
        resize_norm_img_chinese(image, args.image_shape)
    } else {
        resize_norm_img(image, args.image_shape, args.padding)
    }
}

/// `ClsResizeImg`: `resize_norm_img` with padding.
pub fn cls_resize_img(image: &Image, args: &ClsResizeImg) -> Tensor {
    resize_norm_img(image, args.image_shape, true)
}

/// PaddleOCR's `resize_norm_img` for a three-channel image and `image_shape = [3, H, W]`: with `padding`,
/// the height to H and the width to `ceil(H * w / h)` capped at W, then zeros on the right; without, both
/// to the shape. Pixels become `(x / 255 - 0.5) / 0.5` in float32. The result is CHW.
pub fn resize_norm_img(image: &Image, image_shape: [usize; 3], padding: bool) -> Tensor {
    let [_, img_h, img_w] = image_shape;
    let resized_w = if padding {
        let ratio = image.width as f64 / image.height as f64;
        let w = (img_h as f64 * ratio).ceil();
        if w > img_w as f64 { img_w } else { w as usize }
    } else {
        img_w
    };
    padded_norm(image, img_h, img_w, resized_w)
}

/// PaddleOCR's `resize_norm_img_chinese`: like [`resize_norm_img`] with padding, but the padded width
/// grows to `int(H * max(W / H, w / h))`, so a long crop keeps its ratio.
pub fn resize_norm_img_chinese(image: &Image, image_shape: [usize; 3]) -> Tensor {
    let [_, img_h, img_w] = image_shape;
    let ratio = image.width as f64 * 1.0 / image.height as f64;
    let max_wh_ratio = (img_w as f64 * 1.0 / img_h as f64).max(ratio);
    let img_w = (img_h as f64 * max_wh_ratio) as usize;
    let w = (img_h as f64 * ratio).ceil();
    let resized_w = if w > img_w as f64 { img_w } else { w as usize };
    padded_norm(image, img_h, img_w, resized_w)
}

/// Resizes to `height` x `resized_w`, normalises to [-1, 1] in float32 and pads with zeros to `width`, CHW.
fn padded_norm(image: &Image, height: usize, width: usize, resized_w: usize) -> Tensor {
    let resized = resize_linear(image, height, resized_w);
    let c = image.channels;
    let mut data = vec![0.0f32; c * height * width];
    for y in 0..height {
        for x in 0..resized_w {
            for k in 0..c {
                let v = f32::from(resized.data[(y * resized_w + x) * c + k]);
                // numpy: `resized / 255`, then `-= 0.5`, then `/= 0.5`, each in float32.
                data[(k * height + y) * width + x] = (v / 255.0 - 0.5) / 0.5;
            }
        }
    }
    Tensor {
        data: Data::F32(data),
        layout: Layout::Chw,
        height,
        width,
        channels: c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(limit_side_len: usize, limit_type: LimitType) -> DetResizeForTest {
        DetResizeForTest {
            resize: DetResize::LimitSide {
                limit_side_len,
                limit_type,
            },
            max_side_limit: 4000,
        }
    }

    #[test]
    fn det_resize_rounds_half_to_even_and_keeps_at_least_32() {
        // 720 * (960/1280) = 540 -> 540/32 = 16.875 -> 17*32 = 544; 1280 -> 960.
        let p = det_resize_plan(720, 1280, &limit(960, LimitType::Max)).unwrap();
        assert_eq!(p.resized, [544, 960]);
        assert_eq!(p.shape_list, [720.0, 1280.0, 544.0 / 720.0, 960.0 / 1280.0]);
        // 48/32 = 1.5 rounds to 2, 80/32 = 2.5 rounds to 2.
        assert_eq!(
            det_resize_plan(48, 80, &limit(960, LimitType::Max)).unwrap().resized,
            [64, 64]
        );
        assert_eq!(
            det_resize_plan(10, 100, &limit(960, LimitType::Max)).unwrap().resized,
            [32, 96]
        );
    }

    #[test]
    fn resizes_past_the_image_limits_are_refused_before_allocating() {
        // The plan keeps PaddleOCR's arithmetic whatever the size; the resize refuses to allocate past the limits.
        let shape = |height, width| DetResizeForTest {
            resize: DetResize::ImageShape {
                height,
                width,
                keep_ratio: false,
            },
            max_side_limit: 4000,
        };
        let image = Image::zeros(72, 128, 3);
        assert_eq!(
            det_resize_plan(72, 128, &shape(100_000, 100_000)).unwrap().resized,
            [100_000, 100_000]
        );
        let error = det_resize_for_test(&image, &shape(100_000, 100_000))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("a 72x128 image would be resized to 100000x100000, over the limit of 16384 pixels a side"),
            "{error}"
        );
        let long = DetResizeForTest {
            resize: DetResize::ResizeLong {
                resize_long: usize::MAX / 2,
            },
            max_side_limit: 4000,
        };
        assert!(det_resize_for_test(&image, &long).is_err());
        assert!(det_resize_for_test(&image, &shape(64, 64)).is_ok());
    }

    #[test]
    fn tiny_images_are_padded_first() {
        let p = det_resize_plan(10, 20, &limit(736, LimitType::Min)).unwrap();
        assert_eq!(p.padded, [32, 32]);
        assert_eq!(p.resized, [736, 736]);
        assert_eq!(p.shape_list, [10.0, 20.0, 736.0 / 32.0, 736.0 / 32.0]);
        let img = Image::from_raw(1, 2, 3, vec![255; 6]);
        let (out, _) = det_resize_for_test(&img, &limit(32, LimitType::Max)).unwrap();
        assert_eq!((out.height, out.width), (32, 32));
        assert_eq!(&out.data[..6], &[255; 6]);
        assert_eq!(out.data[3 * 32 * 3], 0);
    }

    #[test]
    fn normalize_is_float32_per_channel() {
        let t = Tensor::from_image(Image::from_raw(1, 2, 3, vec![0, 128, 255, 1, 2, 3]));
        let args = NormalizeImage {
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            order: ChannelOrder::Hwc,
        };
        let Data::F32(d) = normalize_image(t, &args).data else {
            panic!()
        };
        let want = |x: f32, c: usize| (x * (1.0f32 / 255.0) - args.mean[c]) / args.std[c];
        assert_eq!(
            d,
            vec![
                want(0.0, 0),
                want(128.0, 1),
                want(255.0, 2),
                want(1.0, 0),
                want(2.0, 1),
                want(3.0, 2)
            ]
        );
    }

    #[test]
    fn to_chw_transposes() {
        let t = to_chw(Tensor::from_image(Image::from_raw(1, 2, 3, vec![1, 2, 3, 4, 5, 6])));
        assert_eq!(t.data, Data::U8(vec![1, 4, 2, 5, 3, 6]));
        assert_eq!(t.shape(), [3, 1, 2]);
    }

    #[test]
    fn rec_resize_pads_on_the_right() {
        let img = Image::from_raw(2, 2, 3, vec![255; 12]);
        // ratio 1: resized to 4x4, padded to 4x10.
        let t = resize_norm_img(&img, [3, 4, 10], true);
        let Data::F32(d) = &t.data else { panic!() };
        assert_eq!(t.shape(), [3, 4, 10]);
        assert_eq!(&d[..10], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // eval_mode keeps a long crop's ratio: 2x20 at height 4 is 40 wide.
        let long = Image::from_raw(2, 20, 3, vec![0; 120]);
        let t = resize_norm_img_chinese(&long, [3, 4, 10]);
        assert_eq!(t.shape(), [3, 4, 40]);
    }
}
