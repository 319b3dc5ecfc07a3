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
//! Sizes are limited ([`MAX_IMAGE_SIDE`], [`MAX_IMAGE_PIXELS`]): [`decode`] reads the dimensions a file
//! claims with [`header`] and refuses one over the limit before any pixel buffer exists, so a few bytes that
//! claim a huge image cannot exhaust a worker's memory.
//!
//! Nothing here knows about datasets or transforms: [`crate::transforms`] calls [`decode`].

use std::io::Cursor;
use std::path::{Path, PathBuf};

/// The longest side, in pixels, of an image sensgrid decodes. PP-OCR's eval sets hold scans and photos of
/// 1280x720 to 4000x3000 (ICDAR 2015, phone cameras at 12 Mpx); 16384 leaves four times the longest of those,
/// while a side past it is a mistake or an attack (the detector would shrink it to `limit_side_len` anyway).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most pixels (64 Mpx) of an image sensgrid decodes: five times a 12 Mpx photo. Decoded as BGR that is
/// 192 MiB, and the decoders' own buffers stay within [`MAX_DECODER_BYTES`], so a worker decoding a batch
/// of such images still fits in a few GiB; a 100000x100000 header would otherwise ask for 30 GB.
pub const MAX_IMAGE_PIXELS: u64 = 64 << 20;

/// The most bytes the PNG and JPEG decoders may allocate for one image: 8 bytes a pixel (16-bit RGBA, the
/// widest PNG layout) at [`MAX_IMAGE_PIXELS`], so no image within the limits is refused by the decoders and
/// none over them reaches a decoder's allocation.
const MAX_DECODER_BYTES: usize = (MAX_IMAGE_PIXELS * 8) as usize;

/// A PNG or JPEG signature, and the dimensions its header claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

/// The two formats sensgrid decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
        })
    }
}

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
    /// A header claiming more than [`MAX_IMAGE_SIDE`] or [`MAX_IMAGE_PIXELS`].
    #[error(
        "{format} header claims {width}x{height} pixels, over the limit of {MAX_IMAGE_SIDE} pixels a side and \
         {} Mpx ({MAX_IMAGE_PIXELS} pixels) in all",
        MAX_IMAGE_PIXELS >> 20
    )]
    TooLarge { format: Format, width: u32, height: u32 },
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

/// The format and dimensions of PNG or JPEG bytes, from the PNG's `IHDR` chunk or the JPEG's first frame
/// header (SOF), without decoding pixels. Reads only within `bytes`, whatever they hold.
///
/// # Errors
/// [`DecodeError`] when the bytes are empty, of another format, or end or go wrong before the dimensions.
pub fn header(bytes: &[u8]) -> Result<ImageHeader, DecodeError> {
    if bytes.is_empty() {
        Err(DecodeError::Empty)
    } else if bytes.starts_with(PNG_SIGNATURE) {
        png_header(bytes)
    } else if bytes.starts_with(JPEG_SIGNATURE) {
        jpeg_header(bytes)
    } else {
        Err(DecodeError::Format)
    }
}

/// Decodes PNG or JPEG bytes as `cv2.imdecode(bytes, flags)` does, the format told by its signature.
///
/// # Errors
/// [`DecodeError`] when the bytes are empty, of another format, corrupt, of an unsupported kind, or claim
/// dimensions over [`MAX_IMAGE_SIDE`] or [`MAX_IMAGE_PIXELS`] (checked before anything is allocated).
pub fn decode(bytes: &[u8], mode: ReadMode, apply_orientation: bool) -> Result<Image, DecodeError> {
    let header = header(bytes)?;
    check_size(&header)?;
    let (image, orientation) = match header.format {
        Format::Png => decode_png(bytes, mode)?,
        Format::Jpeg => decode_jpeg(bytes, mode)?,
    };
    Ok(match orientation {
        Some(o) if apply_orientation => orient(image, o),
        _ => image,
    })
}

/// Whether a `width` x `height` image is within [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_PIXELS`]: what is decoded,
/// and what a transform resizes to.
pub fn within_limits(width: u64, height: u64) -> bool {
    let side = u64::from(MAX_IMAGE_SIDE);
    width <= side && height <= side && width * height <= MAX_IMAGE_PIXELS
}

/// Refuses a header over [`MAX_IMAGE_SIDE`] or [`MAX_IMAGE_PIXELS`] with [`DecodeError::TooLarge`].
fn check_size(header: &ImageHeader) -> Result<(), DecodeError> {
    let ImageHeader { format, width, height } = *header;
    if !within_limits(u64::from(width), u64::from(height)) {
        return Err(DecodeError::TooLarge { format, width, height });
    }
    Ok(())
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_SIGNATURE: &[u8] = &[0xFF, 0xD8, 0xFF];

/// The `IHDR` chunk, which the PNG specification places first: length 13, type, then width and height.
fn png_header(bytes: &[u8]) -> Result<ImageHeader, DecodeError> {
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let truncated = || DecodeError::Png("the file ends inside the IHDR chunk".into());
    if bytes.get(12..16).ok_or_else(truncated)? != b"IHDR" {
        return Err(DecodeError::Png("the first chunk is not IHDR".into()));
    }
    let length = u32_at(8).ok_or_else(truncated)?;
    if length != 13 {
        return Err(DecodeError::Png(format!("IHDR chunk of {length} bytes (expected 13)")));
    }
    Ok(ImageHeader {
        format: Format::Png,
        width: u32_at(16).ok_or_else(truncated)?,
        height: u32_at(20).ok_or_else(truncated)?,
    })
}

/// The first frame header (SOF0 to SOF15, less DHT, JPG and DAC, which share the range): precision, then
/// height and width.
fn jpeg_header(bytes: &[u8]) -> Result<ImageHeader, DecodeError> {
    for segment in jpeg_segments(bytes) {
        let (marker, payload) = segment.map_err(DecodeError::Jpeg)?;
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let field = |at: usize| {
                payload
                    .get(at..at + 2)
                    .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
            };
            let short = || {
                DecodeError::Jpeg(format!(
                    "frame header (marker 0x{marker:02X}) of {} bytes",
                    payload.len()
                ))
            };
            return Ok(ImageHeader {
                format: Format::Jpeg,
                height: field(1).ok_or_else(short)?,
                width: field(3).ok_or_else(short)?,
            });
        }
    }
    Err(DecodeError::Jpeg("no frame header before the image data".into()))
}

/// The marker segments of a JPEG before its first scan, as (marker, payload), each payload bounds-checked
/// against its length field. Markers are found as `jpeg-decoder` and libjpeg find them: bytes other than
/// 0xFF between segments are skipped, so are fill bytes and 0xFF 0x00. Ends at the start of scan, the end of
/// image or the end of the bytes; a segment that runs past the end of the bytes is an error, and the last item.
fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), String>> {
    let mut at = 2;
    std::iter::from_fn(move || {
        loop {
            at += bytes.get(at..)?.iter().position(|&b| b == 0xFF)?;
            at += bytes.get(at..)?.iter().position(|&b| b != 0xFF)?;
            let marker = bytes[at];
            let start = at - 1;
            at += 1;
            match marker {
                // Not a marker: a 0xFF byte stuffed in data.
                0x00 => {}
                // Start of scan or end of image: the headers are over.
                0xDA | 0xD9 => return None,
                // Markers without a length.
                0x01 | 0xD0..=0xD8 => {}
                _ => {
                    let length = bytes
                        .get(at..at + 2)
                        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                    let payload = length.and_then(|length| bytes.get(at + 2..at + length.max(2)));
                    let (Some(length), Some(payload)) = (length, payload) else {
                        at = bytes.len();
                        return Some(Err(format!(
                            "segment 0x{marker:02X} at byte {start} runs past the end of the file"
                        )));
                    };
                    at += length.max(2);
                    return Some(Ok((marker, payload)));
                }
            }
        }
    })
}

/// The decoded PNG, and the orientation of its `eXIf` chunk.
fn decode_png(bytes: &[u8], mode: ReadMode) -> Result<(Image, Option<u16>), DecodeError> {
    let png_error = |e: png::DecodingError| DecodeError::Png(e.to_string());
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: MAX_DECODER_BYTES,
        },
    );
    // EXPAND: palettes to RGB, 1/2/4-bit gray to 8 bits, tRNS to an alpha channel (dropped below, as
    // OpenCV's png_set_strip_alpha does). 16-bit samples are kept: gray conversion needs them whole.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(png_error)?;
    // libpng refuses a palette that is not whole RGB triples ("Invalid palette"); png 0.18 panics expanding one
    // (found by the image_decode fuzz target).
    if let Some(palette) = reader.info().palette.as_deref()
        && palette.len() % 3 != 0
    {
        return Err(DecodeError::Png(format!(
            "a PLTE chunk of {} bytes, not whole RGB entries",
            palette.len()
        )));
    }
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
    decoder.set_max_decoding_buffer_size(MAX_DECODER_BYTES);
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
    jpeg_segments(bytes)
        .map_while(Result::ok)
        .find(|&(marker, _)| marker == 0xE1)
        .and_then(|(_, payload)| payload.get(6..))
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

    /// CRC-32 (ISO-HDLC, as PNG chunks use it), bit by bit: for building chunks the png crate accepts.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend(kind);
        out.extend(data);
        out.extend(crc32(&[kind.as_slice(), data].concat()).to_be_bytes());
        out
    }

    /// The 68-byte PNG of the "hostile input" issue: an 8-bit RGB IHDR of 100000x100000 (30 GB decoded), one
    /// IDAT of a single zlib-compressed row filter byte, and IEND; every CRC right.
    fn png_claiming_100000_squared() -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend(100_000u32.to_be_bytes());
        ihdr.extend(100_000u32.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        let idat = [0x78, 0x9C, 0x63, 0x60, 0x60, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01];
        [
            PNG_SIGNATURE.to_vec(),
            chunk(b"IHDR", &ihdr),
            chunk(b"IDAT", &idat),
            chunk(b"IEND", &[]),
        ]
        .concat()
    }

    #[test]
    fn a_68_byte_png_claiming_100000x100000_is_refused_before_allocating() {
        let bytes = png_claiming_100000_squared();
        assert_eq!(bytes.len(), 68);
        assert_eq!(
            header(&bytes),
            Ok(ImageHeader {
                format: Format::Png,
                width: 100_000,
                height: 100_000
            })
        );
        for mode in [ReadMode::Color, ReadMode::Gray] {
            assert_eq!(
                decode(&bytes, mode, true).unwrap_err().to_string(),
                "PNG header claims 100000x100000 pixels, over the limit of 16384 pixels a side and 64 Mpx \
                 (67108864 pixels) in all"
            );
        }
    }

    /// A baseline JPEG's headers up to its frame header, claiming `width` x `height` with 3 components.
    fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8];
        // An APP0 segment first, so the frame header is found past a segment skipped by its length.
        bytes.extend([0xFF, 0xE0, 0x00, 0x10]);
        bytes.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        bytes.extend([0xFF, 0xC0, 0x00, 0x11, 0x08]);
        bytes.extend(height.to_be_bytes());
        bytes.extend(width.to_be_bytes());
        bytes.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        bytes.extend([0xFF, 0xD9]);
        bytes
    }

    #[test]
    fn a_jpeg_whose_frame_header_claims_65000x65000_is_refused_before_allocating() {
        let bytes = jpeg_claiming(65_000, 65_000);
        assert_eq!(
            header(&bytes),
            Ok(ImageHeader {
                format: Format::Jpeg,
                width: 65_000,
                height: 65_000
            })
        );
        assert_eq!(
            decode(&bytes, ReadMode::Color, true).unwrap_err().to_string(),
            "JPEG header claims 65000x65000 pixels, over the limit of 16384 pixels a side and 64 Mpx \
             (67108864 pixels) in all"
        );
    }

    #[test]
    fn the_limits_bound_each_side_and_the_area() {
        let at = |width, height| {
            check_size(&ImageHeader {
                format: Format::Png,
                width,
                height,
            })
        };
        assert_eq!(at(16_384, 4_096), Ok(()));
        assert_eq!(at(4_000, 3_000), Ok(()));
        assert!(at(16_385, 1).is_err());
        assert!(at(1, 16_385).is_err());
        // Within each side, over the area.
        assert!(at(16_384, 4_097).is_err());
    }

    #[test]
    fn headers_cut_anywhere_are_errors_not_panics() {
        for whole in [png_claiming_100000_squared(), jpeg_claiming(640, 480)] {
            for end in 0..whole.len() {
                let _ = header(&whole[..end]);
                let _ = decode(&whole[..end], ReadMode::Color, true);
            }
        }
        assert_eq!(
            header(&jpeg_claiming(640, 480)[..24]),
            Err(DecodeError::Jpeg(
                "segment 0xC0 at byte 20 runs past the end of the file".into()
            ))
        );
        assert_eq!(
            header(&[0xFF, 0xD8, 0xFF, 0xD9]),
            Err(DecodeError::Jpeg("no frame header before the image data".into()))
        );
        assert_eq!(
            header(PNG_SIGNATURE),
            Err(DecodeError::Png("the file ends inside the IHDR chunk".into()))
        );
        // Bytes between segments are skipped, as jpeg-decoder and libjpeg skip them.
        let mut padded = jpeg_claiming(640, 480);
        padded.splice(20..20, [0x00, 0x12, 0xFF, 0xFF]);
        assert_eq!(header(&padded).map(|h| (h.width, h.height)), Ok((640, 480)));
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
