//! Line crops for recognition and direction classification: one line of text, 32 to 48 px high with a margin
//! of a few pixels (up to 4 px more when tilted), as a detector's box would cut it from a page. Crops stay within PaddleOCR's rec input
//! (320 px wide at height 32 squeezes anything wider than 10:1), so the text is cut to at most 12:1.

use super::canvas::Image;
use super::fonts::FontSet;
use super::line::{self, Look};
use super::rng::Rng;
use super::text::MAX_CHARS;

/// One crop.
#[derive(Debug, Clone)]
pub struct Crop {
    pub image: Image,
    pub text: String,
    /// Whether the crop is upside down (cls only).
    pub rotated: bool,
}

/// Rec crop `index` of `seed`: upright, labelled with its text.
pub fn rec(fonts: &FontSet, seed: u64, index: u64) -> Crop {
    let mut rng = Rng::for_sample(seed, super::Kind::Rec.stream(), index);
    upright(&mut rng, fonts)
}

/// Cls crop `index` of `seed`: half of them (a fair coin each) turned 180°.
pub fn cls(fonts: &FontSet, seed: u64, index: u64) -> Crop {
    let mut rng = Rng::for_sample(seed, super::Kind::Cls.stream(), index);
    let mut crop = upright(&mut rng, fonts);
    if rng.chance(0.5) {
        crop.image.rotate_180();
        crop.rotated = true;
    }
    crop
}

fn upright(rng: &mut Rng, fonts: &FontSet) -> Crop {
    let height = rng.int(32, 48) as f64;
    let (top, bottom) = (rng.int(1, 4), rng.int(1, 4));
    let (left, right) = (rng.int(1, 8), rng.int(1, 8));
    let size = height - (top + bottom) as f64;
    let look = Look {
        size,
        max_width: 12.0 * height,
        max_chars: MAX_CHARS,
        blur: if rng.chance(0.15) { rng.uniform(0.3, 0.9) } else { 0.0 },
        degrees: if rng.chance(0.35) { rng.uniform(-3.0, 3.0) } else { 0.0 },
        max_tilt: Some(4.0),
    };
    // Every word list line has ink; redraw on the impossible empty one rather than fail.
    let drawn = loop {
        if let Some(drawn) = line::draw(rng, fonts, look) {
            break drawn;
        }
    };
    let ink = &drawn.ink;
    // Frame the nominal box (so a line of "ace" keeps the height of one of "Big"), and any ink outside it.
    let [nx0, ny0, nx1, ny1] = ink.nominal;
    let [ix0, iy0, ix1, iy1] = ink.bounds().map_or([0, 0, 0, 0], |b| b.map(|v| v as i64));
    let x0 = (nx0.round() as i64).min(ix0) - left;
    let y0 = (ny0.round() as i64).min(iy0) - top;
    let x1 = (nx1.round() as i64).max(ix1) + right;
    let y1 = (ny1.round() as i64).max(iy1) + bottom;
    let (width, rows) = ((x1 - x0 + 1) as usize, (y1 - y0 + 1) as usize);
    let mut canvas = super::background::paint(rng, width, rows);
    let background = canvas.mean_luminance([0, 0, width as i64 - 1, rows as i64 - 1]);
    let low_contrast = rng.chance(0.08);
    let colour = line::text_colour(rng, background, low_contrast);
    canvas.draw(ink, -x0, -y0, colour);
    if rng.chance(0.2) {
        let sigma = rng.uniform(0.01, 0.03);
        canvas.add_noise(rng, sigma);
    }
    Crop {
        image: canvas.to_image(),
        text: drawn.text,
        rotated: false,
    }
}
