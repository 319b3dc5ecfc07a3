//! One text line from text to ink, shared by pages and crops: the font and style draws, fitting the text to a
//! width, blur, rotation, and the text colour against what is behind it.

use super::canvas::{Colour, colour_with_luminance};
use super::fonts::FontSet;
use super::raster::{self, Style};
use super::rng::Rng;
use super::text;
use super::transform::{self, Ink};

/// What a line may look like: the caller's ranges.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    /// The nominal box's height in px.
    pub size: f64,
    /// The widest the nominal box may be, in px: the text loses characters from its end until it fits.
    pub max_width: f64,
    /// The most characters.
    pub max_chars: usize,
    /// The blur's sigma in px (0 for none).
    pub blur: f64,
    /// The rotation in degrees, clockwise on screen.
    pub degrees: f64,
    /// When set, the rotation is reduced so that the line's two ends differ in height by at most this many px
    /// (crops of long lines stay about as high as short ones).
    pub max_tilt: Option<f64>,
}

/// A line drawn as ink, before it has a place or a colour.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    pub ink: Ink,
    /// The face it was drawn in (see [`super::fonts::Face::name`]).
    pub face: String,
}

/// Draws a random line of text as `look` asks, in a random face that has all its characters. `None` when the
/// text has no ink (it cannot happen with the word lists, but an empty line is no sample).
pub fn draw(rng: &mut Rng, fonts: &FontSet, look: Look) -> Option<Line> {
    let mut text = text::line(rng, look.max_chars);
    let (font, face) = fonts.choose(rng, &text);
    let style = Style {
        size: look.size as f32,
        stretch: if rng.chance(0.7) {
            1.0
        } else {
            rng.uniform(0.85, 1.15) as f32
        },
        tracking: if rng.chance(0.8) {
            0.0
        } else {
            (rng.uniform(-0.03, 0.12) * look.size) as f32
        },
    };
    while text.chars().count() > 1 && f64::from(raster::advance(&font, &text, style)) > look.max_width {
        text.pop();
        let trimmed = text.trim_end().len();
        text.truncate(trimmed);
    }
    let mut coverage = raster::render(&font, &text, style, raster::blur_radius(look.blur) + 2);
    raster::blur(&mut coverage, look.blur);
    let mut degrees = look.degrees;
    if let Some(tilt) = look.max_tilt {
        // tan θ <= tilt / advance; for these small angles θ itself is close enough.
        let advance = f64::from(raster::advance(&font, &text, style)).max(1.0);
        let limit = (tilt / advance).to_degrees();
        degrees = degrees.clamp(-limit, limit);
    }
    let ink = transform::rotate(&coverage, degrees);
    ink.bounds()?;
    Some(Line {
        text,
        ink,
        face: face.name.clone(),
    })
}

/// A text colour for a background of mean luminance `background`: at least 0.45 away from it, or 0.2 to 0.32
/// when `low_contrast` (still legible, but the models' hard cases), on whichever side has room.
pub fn text_colour(rng: &mut Rng, background: f64, low_contrast: bool) -> Colour {
    let contrast = if low_contrast {
        rng.uniform(0.2, 0.32)
    } else {
        rng.uniform(0.45, 0.85)
    };
    let darker = background - contrast;
    let lighter = background + contrast;
    let l = if background >= 0.5 {
        if darker >= 0.0 { darker } else { rng.uniform(0.0, 0.05) }
    } else if lighter <= 1.0 {
        lighter
    } else {
        rng.uniform(0.95, 1.0)
    };
    let saturation = if rng.chance(0.6) {
        rng.uniform(0.0, 0.1)
    } else {
        rng.uniform(0.1, 0.7)
    };
    colour_with_luminance(rng, l, saturation)
}
