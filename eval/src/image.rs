//! Decoding PNG and JPEG files into 8-bit pixels the way PaddleOCR's `DecodeImage` gets them from
//! `cv2.imdecode` (OpenCV 4.10: libpng 1.6 and libjpeg-turbo 3.0).
//!
//! What OpenCV does, and so what this does:
//! - **Colour** (`IMREAD_COLOR`): three channels in BGR order. Gray files are repeated to three channels,
//!   alpha is dropped (not composited), palettes are expanded, 16-bit samples keep their high byte
//!   (libpng's `png_set_strip_16`), 1/2/4-bit gray is scaled to 0..255.
//! - **Gray** (`IMREAD_GRAYSCALE`): one channel. A colour PNG goes through libpng's `rgb_to_gray` with
//!   OpenCV's weights (0.299, 0.587, 0.114 as 15-bit fixed point, truncated); a colour JPEG gives its luma
//!   plane (libjpeg's `JCS_GRAYSCALE` output of YCbCr data).
//! - **EXIF orientation**: `imdecode` applies it (unless `IMREAD_IGNORE_ORIENTATION`), from the first APP1
//!   segment of a JPEG and the `eXIf` chunk of a PNG, as flips and transposes.
//!
//! PNG decoding is bit-exact with OpenCV's. JPEG decoding is not: `jpeg-decoder` (scalar code paths, so the
//! pixels do not depend on the CPU) differs from libjpeg-turbo's IDCT and chroma upsampling by a level or
//! two here and there. On the fixtures (`eval/tests/fixtures/decode`, `scripts/oracle/decode_cases.py`)
//! the mean absolute difference is below 0.02 for 4:4:4 and gray data and below 0.2 for subsampled chroma,
//! where libjpeg-turbo's "fancy" upsampling rounds differently; the largest is 3.
//!
//! Not reproduced: other formats OpenCV reads (BMP, TIFF, WebP, …) are refused; CMYK JPEGs are refused;
//! in gray mode a colour PNG with a `gAMA` or `sRGB` chunk is converted without libpng's gamma handling,
//! and a JPEG coded as RGB (Adobe transform 0) gives its first plane.
//!
//! Nothing here knows about datasets or transforms: [`crate::transforms`] calls [`decode`].

use std::io::Cursor;
use std::path::{Path, PathBuf};

/// An 8-bit image, row-major with interleaved channels (HWC): BGR for colour, one channel for gray.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// `height * width * channels` samples.
    pub data: Vec<u8>,
}

impl Image {
    /// An image of zeros.
    pub fn zeros(height: usize, width: usize, channels: usize) -> Self {
        Image {
            height,
            width,
            channels,
            data: vec![0; height * width * channels],
        }
    }

    /// Wraps interleaved samples.
    ///
    /// # Panics
    /// When `data` does not hold `height * width * channels` samples.
    pub fn from_raw(height: usize, width: usize, channels: usize, data: Vec<u8>) -> Self {
        assert_eq!(
            data.len(),
            height * width * channels,
            "an image of {height}x{width}x{channels} holds {} samples, got {}",
            height * width * channels,
            data.len()
        );
        Image {
            height,
            width,
            channels,
            data,
        }
    }
}

/// Which image `cv2.imdecode` is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// `IMREAD_COLOR`: three channels, BGR.
    Color,
    /// `IMREAD_GRAYSCALE`: one channel.
    Gray,
}

/// Why bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file")]
    Empty,
    /// Neither signature matched.
    #[error("not a PNG or JPEG file (sensgrid decodes those two of the formats OpenCV reads)")]
    Format,
    #[error("corrupt PNG: {0}")]
    Png(String),
    #[error("corrupt JPEG: {0}")]
    Jpeg(String),
    /// A valid file sensgrid does not decode.
    #[error("unsupported {0}")]
    Unsupported(String),
}

/// An image file that cannot be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    // As in `ConfigError`, the cause is part of the message and not a `source`.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: std::io::Error },
    #[error("{path}: {reason}")]
    Decode { path: PathBuf, reason: DecodeError },
}

/// Reads and decodes an image file, as `DecodeImage` does with the file's bytes.
///
/// # Errors
/// [`ImageError`] naming the file when it cannot be read or decoded.
pub fn read(path: &Path, mode: ReadMode, apply_orientation: bool) -> Result<Image, ImageError> {
    let bytes = std::fs::read(path).map_err(|reason| ImageError::Io {
        path: path.to_owned(),
        reason,
    })?;
    decode(&bytes, mode, apply_orientation).map_err(|reason| ImageError::Decode {
        path: path.to_owned(),
        reason,
    })
}

/// Decodes PNG or JPEG bytes as `cv2.imdecode(bytes, flags)` does, the format told by its signature.
///
/// # Errors
/// [`DecodeError`] when the bytes are empty, of another format, corrupt or of an unsupported kind.
pub fn decode(bytes: &[u8], mode: ReadMode, apply_orientation: bool) -> Result<Image, DecodeError> {
    let (image, orientation) = if bytes.is_empty() {
        return Err(DecodeError::Empty);
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes, mode)?
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(bytes, mode)?
    } else {
        return Err(DecodeError::Format);
    };
    Ok(match orientation {
        Some(o) if apply_orientation => orient(image, o),
        _ => image,
    })
}

/// The decoded PNG, and the orientation of its `eXIf` chunk.
fn decode_png(bytes: &[u8], mode: ReadMode) -> Result<(Image, Option<u16>), DecodeError> {
    let png_error = |e: png::DecodingError| DecodeError::Png(e.to_string());
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    // EXPAND: palettes to RGB, 1/2/4-bit gray to 8 bits, tRNS to an alpha channel (dropped below, as
    // OpenCV's png_set_strip_alpha does). 16-bit samples are kept: gray conversion needs them whole.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(png_error)?;
    let orientation = reader.info().exif_metadata.as_deref().and_then(exif_orientation);
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| DecodeError::Unsupported("PNG: image too large".into()))?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(png_error)?;
    let (height, width) = (frame.height as usize, frame.width as usize);
    let channels = frame.color_type.samples();
    let wide = frame.bit_depth == png::BitDepth::Sixteen;
    let bytes_per_sample = if wide { 2 } else { 1 };
    let row_len = width * channels * bytes_per_sample;
    // One sample at full precision (0..255 or 0..65535).
    let sample = |y: usize, x: usize, c: usize| -> u32 {
        let at = y * frame.line_size + (x * channels + c) * bytes_per_sample;
        if wide {
            u32::from(buf[at]) << 8 | u32::from(buf[at + 1])
        } else {
            u32::from(buf[at])
        }
    };
    debug_assert!(row_len <= frame.line_size);
    let high_byte = |v: u32| if wide { (v >> 8) as u8 } else { v as u8 };
    let color = channels >= 3;
    let out_channels = match mode {
        ReadMode::Color => 3,
        ReadMode::Gray => 1,
    };
    let mut image = Image::zeros(height, width, out_channels);
    for y in 0..height {
        for x in 0..width {
            let at = (y * width + x) * out_channels;
            match (mode, color) {
                (ReadMode::Color, true) => {
                    for c in 0..3 {
                        image.data[at + 2 - c] = high_byte(sample(y, x, c));
                    }
                }
                (ReadMode::Color, false) => {
                    let v = high_byte(sample(y, x, 0));
                    image.data[at..at + 3].fill(v);
                }
                (ReadMode::Gray, true) => {
                    let (r, g, b) = (sample(y, x, 0), sample(y, x, 1), sample(y, x, 2));
                    image.data[at] = high_byte(rgb_to_gray(r, g, b, wide));
                }
                (ReadMode::Gray, false) => image.data[at] = high_byte(sample(y, x, 0)),
            }
        }
    }
    Ok((image, orientation))
}

/// libpng's `png_do_rgb_to_gray` without gamma tables, with the weights OpenCV passes
/// (`png_set_rgb_to_gray(png, 1, 0.299, 0.587)`): libpng turns them into 15-bit fixed point by truncation
/// (9797 and 19234, blue taking the rest, 3737). 8-bit data is truncated ("the historical approach"),
/// 16-bit data rounded; equal channels are passed through.
fn rgb_to_gray(r: u32, g: u32, b: u32, wide: bool) -> u32 {
    const RED: u32 = 29_900 * 32_768 / 100_000;
    const GREEN: u32 = 58_700 * 32_768 / 100_000;
    const BLUE: u32 = 32_768 - RED - GREEN;
    if r == g && g == b {
        return r;
    }
    let sum = RED * r + GREEN * g + BLUE * b;
    if wide { (sum + 16_384) >> 15 } else { sum >> 15 }
}

/// The decoded JPEG, and the orientation of its first APP1 segment.
fn decode_jpeg(bytes: &[u8], mode: ReadMode) -> Result<(Image, Option<u16>), DecodeError> {
    let jpeg_error = |e: jpeg_decoder::Error| DecodeError::Jpeg(e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| DecodeError::Jpeg("no frame header".into()))?;
    let (height, width) = (usize::from(info.height), usize::from(info.width));
    let format = info.pixel_format;
    if mode == ReadMode::Gray && format == jpeg_decoder::PixelFormat::RGB24 {
        // Ask for the planes as they are coded: the first is luma, what libjpeg hands out for
        // JCS_GRAYSCALE.
        decoder.set_color_transform(jpeg_decoder::ColorTransform::RGB);
    }
    let pixels = decoder.decode().map_err(jpeg_error)?;
    let orientation = first_app1(bytes).and_then(exif_orientation);
    let image = match (format, mode) {
        (jpeg_decoder::PixelFormat::L8, ReadMode::Gray) => Image::from_raw(height, width, 1, pixels),
        (jpeg_decoder::PixelFormat::L8, ReadMode::Color) => {
            Image::from_raw(height, width, 3, pixels.iter().flat_map(|&v| [v, v, v]).collect())
        }
        (jpeg_decoder::PixelFormat::RGB24, ReadMode::Gray) => {
            Image::from_raw(height, width, 1, pixels.chunks_exact(3).map(|p| p[0]).collect())
        }
        (jpeg_decoder::PixelFormat::RGB24, ReadMode::Color) => Image::from_raw(
            height,
            width,
            3,
            pixels.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect(),
        ),
        (jpeg_decoder::PixelFormat::CMYK32, _) => return Err(DecodeError::Unsupported("CMYK JPEG".into())),
        (jpeg_decoder::PixelFormat::L16, _) => {
            return Err(DecodeError::Unsupported("16-bit (lossless) JPEG".into()));
        }
    };
    Ok((image, orientation))
}

/// The payload of a JPEG's first APP1 segment past its 6-byte `Exif\0\0` header, where OpenCV looks for
/// EXIF (it takes the first APP1 whatever it holds, so an XMP segment first means no orientation).
fn first_app1(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 2;
    loop {
        if bytes.get(at)? != &0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        match marker {
            // Fill bytes before a marker.
            0xFF => at += 1,
            // Start of scan or end of image: no APP1 before the data.
            0xDA | 0xD9 => return None,
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let len = usize::from(u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]));
                let payload = bytes.get(at + 4..at + 2 + len)?;
                if marker == 0xE1 {
                    return payload.get(6..);
                }
                at += 2 + len;
            }
        }
    }
}

/// The orientation tag (0x0112) of IFD0 in TIFF-structured EXIF data, read as OpenCV's `ExifReader` reads
/// it: byte order from `II`/`MM`, the 0x002A mark, the first directory; entries are read until one falls
/// outside the data, and the first orientation entry wins.
fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let little = match tiff.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = [
            *tiff.get(at)?,
            *tiff.get(at + 1)?,
            *tiff.get(at + 2)?,
            *tiff.get(at + 3)?,
        ];
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if u16_at(2)? != 0x002A {
        return None;
    }
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let entries = usize::from(u16_at(ifd)?);
    (0..entries)
        .map(|i| ifd + 2 + 12 * i)
        .map_while(|at| Some((u16_at(at)?, u16_at(at + 8)?)))
        .find(|&(tag, _)| tag == 0x0112)
        .map(|(_, value)| value)
}

/// OpenCV's `ApplyExifOrientation`: orientations 2 to 8 as flips and transposes; anything else leaves the
/// image as it is.
fn orient(image: Image, orientation: u16) -> Image {
    // (transpose first, then flip rows, flip columns)
    let (transpose, flip_rows, flip_cols) = match orientation {
        2 => (false, false, true),
        3 => (false, true, true),
        4 => (false, true, false),
        5 => (true, false, false),
        6 => (true, false, true),
        7 => (true, true, true),
        8 => (true, true, false),
        _ => return image,
    };
    let (h, w, c) = (image.height, image.width, image.channels);
    let (out_h, out_w) = if transpose { (w, h) } else { (h, w) };
    let mut out = Image::zeros(out_h, out_w, c);
    for y in 0..out_h {
        for x in 0..out_w {
            let (ty, tx) = (
                if flip_rows { out_h - 1 - y } else { y },
                if flip_cols { out_w - 1 - x } else { x },
            );
            let (sy, sx) = if transpose { (tx, ty) } else { (ty, tx) };
            let src = (sy * w + sx) * c;
            let dst = (y * out_w + x) * c;
            out.data[dst..dst + c].copy_from_slice(&image.data[src..src + c]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff(little: bool, entries: &[(u16, u16)]) -> Vec<u8> {
        let u16b = |v: u16| if little { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut t = if little { b"II".to_vec() } else { b"MM".to_vec() };
        t.extend(u16b(0x2A));
        t.extend(if little { 8u32.to_le_bytes() } else { 8u32.to_be_bytes() });
        t.extend(u16b(entries.len() as u16));
        for &(tag, value) in entries {
            t.extend(u16b(tag));
            t.extend(u16b(3)); // SHORT
            t.extend(if little { 1u32.to_le_bytes() } else { 1u32.to_be_bytes() });
            t.extend(u16b(value));
            t.extend([0, 0]);
        }
        t
    }

    #[test]
    fn exif_orientation_reads_both_byte_orders_and_takes_the_first_entry() {
        assert_eq!(exif_orientation(&tiff(true, &[(0x0100, 9), (0x0112, 6)])), Some(6));
        assert_eq!(exif_orientation(&tiff(false, &[(0x0112, 3), (0x0112, 8)])), Some(3));
        assert_eq!(exif_orientation(&tiff(true, &[(0x0100, 9)])), None);
        // A directory that runs past the data keeps the entries before the break.
        let mut cut = tiff(true, &[(0x0112, 5), (0x0100, 1)]);
        cut.truncate(cut.len() - 6);
        assert_eq!(exif_orientation(&cut), Some(5));
        assert_eq!(exif_orientation(b"XX\x2a\x00"), None);
    }

    #[test]
    fn orientations_move_the_top_left_pixel_where_opencv_does() {
        // 2x3, one channel, values 0..6 row-major.
        let img = Image::from_raw(2, 3, 1, (0..6).collect());
        let o = |n| orient(img.clone(), n);
        assert_eq!(o(1).data, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(o(2).data, vec![2, 1, 0, 5, 4, 3]);
        assert_eq!(o(3).data, vec![5, 4, 3, 2, 1, 0]);
        assert_eq!(o(4).data, vec![3, 4, 5, 0, 1, 2]);
        // Transposed: 3x2.
        assert_eq!((o(5).height, o(5).width), (3, 2));
        assert_eq!(o(5).data, vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(o(6).data, vec![3, 0, 4, 1, 5, 2]);
        assert_eq!(o(7).data, vec![5, 2, 4, 1, 3, 0]);
        assert_eq!(o(8).data, vec![2, 5, 1, 4, 0, 3]);
        assert_eq!(o(9).data, img.data);
    }

    #[test]
    fn rgb_to_gray_uses_libpngs_truncated_weights() {
        assert_eq!(rgb_to_gray(255, 0, 0, false), (9797 * 255) >> 15);
        assert_eq!(rgb_to_gray(10, 10, 10, false), 10);
        assert_eq!(rgb_to_gray(0, 0, 65535, true), (3737 * 65535 + 16384) >> 15);
    }

    #[test]
    fn other_formats_and_empty_bytes_are_refused() {
        assert_eq!(decode(b"", ReadMode::Color, true), Err(DecodeError::Empty));
        assert_eq!(decode(b"BM....", ReadMode::Color, true), Err(DecodeError::Format));
        assert!(matches!(
            decode(b"\x89PNG\r\n\x1a\n\0\0", ReadMode::Color, true),
            Err(DecodeError::Png(_))
        ));
    }
}
