//! PNG and JPEG files. Both encoders are pure Rust and run without SIMD (the JPEG encoder's `simd` feature
//! stays off), so a given image always gives the same bytes.

use super::canvas::Image;

/// The image file format of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// Lossless; the default.
    #[default]
    Png,
    /// Baseline JPEG at quality [`JPEG_QUALITY`], 4:2:0 chroma (the common camera and PaddleOCR dataset kind),
    /// for decoder parity tests.
    Jpeg,
}

/// The JPEG quality.
pub const JPEG_QUALITY: u8 = 90;

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }
}

/// The encoded file.
///
/// # Errors
/// The encoder's message (an image too large for the format).
pub fn encode(image: &Image, format: ImageFormat) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Png => {
            let mut encoder = png::Encoder::new(&mut out, image.width as u32, image.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            // Pinned rather than the crate's default, which a later version may change.
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
            writer.write_image_data(&image.data).map_err(|e| e.to_string())?;
            writer.finish().map_err(|e| e.to_string())?;
        }
        ImageFormat::Jpeg => {
            let width =
                u16::try_from(image.width).map_err(|_| format!("{} px wide: JPEG allows 65535", image.width))?;
            let height =
                u16::try_from(image.height).map_err(|_| format!("{} px high: JPEG allows 65535", image.height))?;
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
            encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
            encoder
                .encode(&image.data, width, height, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}
