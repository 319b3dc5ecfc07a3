//! One text line as coverage: glyph outlines laid out along a baseline and rasterised by `ab_glyph`, plus the
//! Gaussian blur some lines get. Rotation and placement are [`super::transform`]'s.
//!
//! Coordinates: pixel `(x, y)` of a buffer is the point `(x, y)` (pixel centres on integers, as in PaddleOCR's
//! labels). The line's *nominal box* is its advance width by the font's ascent-to-descent height: text of
//! `size` px has a nominal box `size` px high.

use ab_glyph::{Font, OutlinedGlyph, PxScale, ScaleFont, point};

use super::math;

/// How a line is drawn, but its colour and angle.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// The nominal box's height in px (ascent minus descent).
    pub size: f32,
    /// Horizontal scale relative to `size` (1 for the font's own proportions).
    pub stretch: f32,
    /// Extra advance after every character, in px (negative tightens).
    pub tracking: f32,
}

impl Style {
    fn scale(&self) -> PxScale {
        PxScale {
            x: self.size * self.stretch,
            y: self.size,
        }
    }
}

/// A line's coverage before rotation: `alpha` in `[0, 1]`, row-major.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub width: usize,
    pub height: usize,
    pub alpha: Vec<f32>,
    /// The nominal box in buffer coordinates: `[x0, y0, x1, y1]`.
    pub nominal: [f64; 4],
}

/// The width of the nominal box: the pen's advance over the whole text.
pub fn advance<F: Font>(font: &F, text: &str, style: Style) -> f32 {
    layout(font, text, style).1
}

/// Glyph outlines placed with the nominal box's top-left at the origin, and the total advance.
fn layout<F: Font>(font: &F, text: &str, style: Style) -> (Vec<OutlinedGlyph>, f32) {
    let scaled = font.as_scaled(style.scale());
    let baseline = scaled.ascent();
    let mut pen = 0.0f32;
    let mut previous = None;
    let mut outlined = Vec::new();
    for (i, c) in text.chars().enumerate() {
        let id = scaled.glyph_id(c);
        if let Some(previous) = previous {
            pen += scaled.kern(previous, id);
        }
        if i > 0 {
            pen += style.tracking;
        }
        let glyph = id.with_scale_and_position(style.scale(), point(pen, baseline));
        pen += scaled.h_advance(id);
        if let Some(g) = scaled.outline_glyph(glyph) {
            outlined.push(g);
        }
        previous = Some(id);
    }
    (outlined, pen)
}

/// Rasterises `text`, with `pad` empty pixels around both the ink and the nominal box.
pub fn render<F: Font>(font: &F, text: &str, style: Style, pad: usize) -> Coverage {
    let (glyphs, advance) = layout(font, text, style);
    let height = f64::from(style.size);
    // The buffer spans the nominal box and every glyph's pixel bounds (accents and italic overhangs leave the
    // nominal box), on whole pixels so glyphs keep their sub-pixel positions.
    let (mut x0, mut y0, mut x1, mut y1) = (0.0f64, 0.0f64, f64::from(advance), height);
    for g in &glyphs {
        let b = g.px_bounds();
        x0 = x0.min(f64::from(b.min.x));
        y0 = y0.min(f64::from(b.min.y));
        x1 = x1.max(f64::from(b.max.x));
        y1 = y1.max(f64::from(b.max.y));
    }
    let (ox, oy) = (x0.floor() - pad as f64, y0.floor() - pad as f64);
    let width = (x1.ceil() - ox) as usize + pad;
    let rows = (y1.ceil() - oy) as usize + pad;
    let mut alpha = vec![0.0f32; width * rows];
    for g in &glyphs {
        let b = g.px_bounds();
        let (gx, gy) = ((f64::from(b.min.x) - ox) as usize, (f64::from(b.min.y) - oy) as usize);
        g.draw(|x, y, c| {
            let (x, y) = (gx + x as usize, gy + y as usize);
            if x < width && y < rows {
                let a = &mut alpha[y * width + x];
                *a = (*a + c).min(1.0);
            }
        });
    }
    Coverage {
        width,
        height: rows,
        alpha,
        nominal: [-ox, -oy, f64::from(advance) - ox, height - oy],
    }
}

/// How many pixels a blur of `sigma` reaches: the kernel's radius, at three sigmas.
pub fn blur_radius(sigma: f64) -> usize {
    if sigma <= 0.0 { 0 } else { (3.0 * sigma).ceil() as usize }
}

/// Gaussian blur, separable, with zeros outside the buffer. The caller pads by [`blur_radius`] so nothing is lost.
pub fn blur(cov: &mut Coverage, sigma: f64) {
    let radius = blur_radius(sigma);
    if radius == 0 {
        return;
    }
    let mut kernel: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let d = i as f64 - radius as f64;
            math::exp_neg(d * d / (2.0 * sigma * sigma))
        })
        .collect();
    let sum: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= sum);
    let (w, h) = (cov.width, cov.height);
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0f64;
            for (k, weight) in kernel.iter().enumerate() {
                let sx = x as isize + k as isize - radius as isize;
                if (0..w as isize).contains(&sx) {
                    acc += weight * f64::from(cov.alpha[y * w + sx as usize]);
                }
            }
            tmp[y * w + x] = acc as f32;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0f64;
            for (k, weight) in kernel.iter().enumerate() {
                let sy = y as isize + k as isize - radius as isize;
                if (0..h as isize).contains(&sy) {
                    acc += weight * f64::from(tmp[sy as usize * w + x]);
                }
            }
            cov.alpha[y * w + x] = acc as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(n: usize, pad: usize) -> Coverage {
        let w = n + 2 * pad;
        let mut alpha = vec![0.0; w * w];
        for y in pad..pad + n {
            for x in pad..pad + n {
                alpha[y * w + x] = 1.0;
            }
        }
        let nominal = [pad as f64, pad as f64, (pad + n) as f64, (pad + n) as f64];
        Coverage {
            width: w,
            height: w,
            alpha,
            nominal,
        }
    }

    #[test]
    fn blur_keeps_the_mass_and_spreads_within_its_radius() {
        let mut cov = square(4, 6);
        blur(&mut cov, 1.5);
        let mass: f32 = cov.alpha.iter().sum();
        assert!((mass - 16.0).abs() < 1e-3, "{mass}");
        // Radius 5: the outermost row and column stay empty.
        assert!(cov.alpha[..cov.width].iter().all(|&a| a == 0.0));
        assert!(cov.alpha[cov.width..2 * cov.width].iter().any(|&a| a > 0.0));
    }
}
