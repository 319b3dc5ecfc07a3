//! Detection pages: a background 320 to 960 px wide with two to eight lines of text, each labelled with its
//! box, PaddleOCR's `[{"transcription": …, "points": [[x, y] × 4]}, …]`.
//!
//! A line too small to read (under 12 px) or blurred past reading is labelled `###`, PaddleOCR's don't-care
//! mark: the det metric ignores detections there. Lines never touch: their boxes stay [`GAP`] px apart.

use super::canvas::{Image, luminance};
use super::fonts::FontSet;
use super::line::{self, Look};
use super::rng::Rng;
use super::text::MAX_CHARS;
use super::transform::{self, Ink, Quad};

/// The least distance between two lines' boxes, and between a box and the page's edge.
pub const GAP: i64 = 4;

/// PaddleOCR's transcription of a don't-care region.
pub const DONT_CARE: &str = "###";

/// One line of a page.
#[derive(Debug, Clone)]
pub struct DetLine {
    /// What is drawn.
    pub text: String,
    /// Whether it can be read; the label says [`DONT_CARE`] when not.
    pub legible: bool,
    /// The box, in page pixels.
    pub points: Quad,
    /// The line's ink, drawn with its top-left at `offset`: the ground truth the box is checked against.
    pub ink: Ink,
    pub offset: [i64; 2],
}

impl DetLine {
    /// The label's transcription.
    pub fn transcription(&self) -> &str {
        if self.legible { &self.text } else { DONT_CARE }
    }
}

/// One page and its lines.
#[derive(Debug, Clone)]
pub struct DetPage {
    pub image: Image,
    pub lines: Vec<DetLine>,
}

impl DetPage {
    /// The label's JSON, as PaddleOCR writes it (`json.dumps(…, ensure_ascii=False)`).
    pub fn label(&self) -> String {
        let boxes: Vec<String> = self
            .lines
            .iter()
            .map(|line| {
                let points: Vec<String> = line.points.iter().map(|[x, y]| format!("[{x}, {y}]")).collect();
                format!(
                    "{{\"transcription\": {}, \"points\": [{}]}}",
                    serde_json::Value::from(line.transcription()),
                    points.join(", ")
                )
            })
            .collect();
        format!("[{}]", boxes.join(", "))
    }
}

/// Page `index` of the det set of `seed`.
pub fn page(fonts: &FontSet, seed: u64, index: u64) -> DetPage {
    let mut rng = Rng::for_sample(seed, super::Kind::Det.stream(), index);
    let width = rng.int(320, 960);
    let height = ((width as f64 * rng.uniform(0.6, 1.4)).round() as i64).clamp(240, 960);
    let mut canvas = super::background::paint(&mut rng, width as usize, height as usize);
    let wanted = rng.int(2, 8) as usize;
    let mut lines: Vec<DetLine> = Vec::new();
    // Large text on a small page may not fit: after every few misses the largest size shrinks.
    let mut max_size = 48f64.min(height as f64 / 3.0);
    let mut misses = 0;
    while lines.len() < wanted && misses < 60 {
        let Some(line) = place(&mut rng, fonts, width, height, max_size, &lines) else {
            misses += 1;
            if misses % 8 == 0 {
                max_size = (max_size * 0.75).max(13.0);
            }
            continue;
        };
        let low_contrast = rng.chance(0.1);
        let background = canvas.mean_luminance(transform::bounds(&line.points));
        let colour = line::text_colour(&mut rng, background, low_contrast);
        debug_assert!((luminance(colour) - background).abs() > 0.1);
        canvas.draw(&line.ink, line.offset[0], line.offset[1], colour);
        lines.push(line);
    }
    if rng.chance(0.25) {
        let sigma = rng.uniform(0.01, 0.035);
        canvas.add_noise(&mut rng, sigma);
    }
    DetPage {
        image: canvas.to_image(),
        lines,
    }
}

/// Draws one line and finds it a free place on the page, or `None` when this draw does not fit.
fn place(
    rng: &mut Rng,
    fonts: &FontSet,
    width: i64,
    height: i64,
    max_size: f64,
    placed: &[DetLine],
) -> Option<DetLine> {
    // 90% readable, 6% tiny, 4% blurred past reading.
    let kind = rng.weighted(&[90, 6, 4]);
    let size = if kind == 1 {
        rng.uniform(10.0, 12.0)
    } else {
        rng.uniform(12.0, max_size.max(12.5))
    };
    let blur = match kind {
        2 => size * rng.uniform(0.12, 0.18),
        _ if rng.chance(0.2) => rng.uniform(0.4, 1.0),
        _ => 0.0,
    };
    let degrees = if rng.chance(0.4) { 0.0 } else { rng.uniform(-15.0, 15.0) };
    let look = Look {
        size,
        max_width: (width - 2 * GAP - 4) as f64,
        max_chars: MAX_CHARS,
        blur,
        degrees,
        max_tilt: None,
    };
    let drawn = line::draw(rng, fonts, look)?;
    let quad = drawn.ink.quad()?;
    let [x0, y0, x1, y1] = transform::bounds(&quad);
    // The offsets that keep the box GAP px inside the page.
    let (lo_x, hi_x) = (GAP - x0, width - 1 - GAP - x1);
    let (lo_y, hi_y) = (GAP - y0, height - 1 - GAP - y1);
    if lo_x > hi_x || lo_y > hi_y {
        return None;
    }
    let (ox, oy) = (rng.int(lo_x, hi_x), rng.int(lo_y, hi_y));
    let points = transform::shift(&quad, ox, oy);
    if !placed
        .iter()
        .all(|other| transform::apart(&points, &other.points, GAP as f64))
    {
        return None;
    }
    Some(DetLine {
        text: drawn.text,
        legible: kind == 0,
        points,
        ink: drawn.ink,
        offset: [ox, oy],
    })
}
