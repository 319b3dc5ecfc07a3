//! From a line's coverage to its final ink: rotation (bilinear), quantisation to 8-bit alpha, and the label's
//! box, the tightest rectangle at the line's angle around every inked pixel.
//!
//! "Ink" is every pixel whose 8-bit alpha is non-zero; alpha below [`MIN_ALPHA`] is cut to zero (invisible on
//! any background) so that a blur's faint tails do not stretch the box.

use super::math;
use super::raster::Coverage;

/// The smallest alpha kept, out of 255.
pub const MIN_ALPHA: u8 = 6;

/// A line's final alpha in its own frame, ready to be drawn at an integer offset.
#[derive(Debug, Clone)]
pub struct Ink {
    pub width: usize,
    pub height: usize,
    /// Row-major, 0 where there is no ink.
    pub alpha: Vec<u8>,
    /// The rotation, clockwise on screen, as `(sin, cos)`.
    pub sin_cos: (f64, f64),
    /// The axis-aligned bounds of the rotated nominal box, `[x0, y0, x1, y1]` (crops frame the line by these).
    pub nominal: [f64; 4],
}

/// A quadrilateral of integer points, clockwise on screen from the text's top-left (PaddleOCR's order).
pub type Quad = [[i64; 2]; 4];

/// Rotates `cov` by `degrees` (clockwise on screen, at most ±45) about its centre, into a buffer that holds it.
pub fn rotate(cov: &Coverage, degrees: f64) -> Ink {
    let (sin, cos) = math::sin_cos(math::radians(degrees));
    let (ws, hs) = (cov.width as f64, cov.height as f64);
    // Centres, with pixel centres on integers.
    let (csx, csy) = ((ws - 1.0) / 2.0, (hs - 1.0) / 2.0);
    let half_w = ((ws - 1.0) * cos.abs() + (hs - 1.0) * sin.abs()) / 2.0;
    let half_h = ((ws - 1.0) * sin.abs() + (hs - 1.0) * cos.abs()) / 2.0;
    // One pixel more on each side: bilinear sampling reaches one pixel past a corner.
    let width = (2.0 * half_w).ceil() as usize + 3;
    let height = (2.0 * half_h).ceil() as usize + 3;
    let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
    let mut alpha = vec![0u8; width * height];
    for y in 0..height {
        let dy = y as f64 - cy;
        for x in 0..width {
            let dx = x as f64 - cx;
            // The inverse rotation maps the output pixel back into the coverage.
            let sx = cos * dx + sin * dy + csx;
            let sy = -sin * dx + cos * dy + csy;
            alpha[y * width + x] = quantise(bilinear(cov, sx, sy));
        }
    }
    let forward = |x: f64, y: f64| {
        let (dx, dy) = (x - csx, y - csy);
        (cos * dx - sin * dy + cx, sin * dx + cos * dy + cy)
    };
    let [nx0, ny0, nx1, ny1] = cov.nominal;
    let corners = [
        forward(nx0, ny0),
        forward(nx1, ny0),
        forward(nx1, ny1),
        forward(nx0, ny1),
    ];
    let nominal = [
        corners.iter().map(|c| c.0).fold(f64::INFINITY, f64::min),
        corners.iter().map(|c| c.1).fold(f64::INFINITY, f64::min),
        corners.iter().map(|c| c.0).fold(f64::NEG_INFINITY, f64::max),
        corners.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max),
    ];
    Ink {
        width,
        height,
        alpha,
        sin_cos: (sin, cos),
        nominal,
    }
}

fn quantise(a: f64) -> u8 {
    let q = (a.clamp(0.0, 1.0) * 255.0).round() as u8;
    if q < MIN_ALPHA { 0 } else { q }
}

/// Bilinear sample, zero outside the buffer.
fn bilinear(cov: &Coverage, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f64, yi: f64| -> f64 {
        if xi < 0.0 || yi < 0.0 || xi >= cov.width as f64 || yi >= cov.height as f64 {
            0.0
        } else {
            f64::from(cov.alpha[yi as usize * cov.width + xi as usize])
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

impl Ink {
    /// The inked pixels, row by row.
    pub fn pixels(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.alpha
            .iter()
            .enumerate()
            .filter(|(_, a)| **a > 0)
            .map(|(i, _)| (i % self.width, i / self.width))
    }

    /// The axis-aligned bounds of the ink, `[x0, y0, x1, y1]` inclusive, or `None` when there is none.
    pub fn bounds(&self) -> Option<[usize; 4]> {
        self.pixels().fold(None, |b, (x, y)| {
            Some(match b {
                None => [x, y, x, y],
                Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
            })
        })
    }

    /// The label's box in this frame: the rectangle at the line's angle around every inked pixel centre, with
    /// integer corners, as tight as rounding allows (the margin grows in quarter pixels until rounding leaves
    /// every inked pixel inside). `None` when there is no ink.
    pub fn quad(&self) -> Option<Quad> {
        let (sin, cos) = self.sin_cos;
        // u runs along the text, v down across it.
        let (mut u0, mut v0, mut u1, mut v1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
        for (x, y) in self.pixels() {
            let (x, y) = (x as f64, y as f64);
            let (u, v) = (x * cos + y * sin, -x * sin + y * cos);
            (u0, u1, v0, v1) = (u0.min(u), u1.max(u), v0.min(v), v1.max(v));
        }
        if u0 > u1 {
            return None;
        }
        let corner = |u: f64, v: f64| [(u * cos - v * sin).round() as i64, (u * sin + v * cos).round() as i64];
        // Rounding moves a corner by at most √½ px, so the loop ends by a margin of 0.75.
        (0..=4).map(|k| f64::from(k) * 0.25).find_map(|m| {
            let quad = [
                corner(u0 - m, v0 - m),
                corner(u1 + m, v0 - m),
                corner(u1 + m, v1 + m),
                corner(u0 - m, v1 + m),
            ];
            self.pixels()
                .all(|(x, y)| contains(&quad, x as i64, y as i64))
                .then_some(quad)
        })
    }
}

/// Whether the point is inside the convex quad or on its border (exact integer arithmetic).
pub fn contains(quad: &Quad, x: i64, y: i64) -> bool {
    (0..4).all(|i| {
        let [ax, ay] = quad[i];
        let [bx, by] = quad[(i + 1) % 4];
        // Clockwise on screen (y down): the inside is on the right of each edge, a non-negative cross product.
        (bx - ax) * (y - ay) - (by - ay) * (x - ax) >= 0
    })
}

/// Moves a quad by an offset.
pub fn shift(quad: &Quad, dx: i64, dy: i64) -> Quad {
    quad.map(|[x, y]| [x + dx, y + dy])
}

/// The quad's axis-aligned bounds, `[x0, y0, x1, y1]` inclusive.
pub fn bounds(quad: &Quad) -> [i64; 4] {
    let xs = quad.map(|p| p[0]);
    let ys = quad.map(|p| p[1]);
    [
        *xs.iter().min().unwrap_or(&0),
        *ys.iter().min().unwrap_or(&0),
        *xs.iter().max().unwrap_or(&0),
        *ys.iter().max().unwrap_or(&0),
    ]
}

/// Whether two convex quads are at least `gap` px apart: some edge normal of one of them separates their
/// projections by that much (the separating axis theorem).
pub fn apart(a: &Quad, b: &Quad, gap: f64) -> bool {
    [a, b].iter().any(|quad| {
        (0..4).any(|i| {
            let [ax, ay] = quad[i];
            let [bx, by] = quad[(i + 1) % 4];
            let (nx, ny) = ((ay - by) as f64, (bx - ax) as f64);
            let len = (nx * nx + ny * ny).sqrt();
            if len == 0.0 {
                return false;
            }
            let project = |q: &Quad| {
                q.iter()
                    .map(|p| (p[0] as f64 * nx + p[1] as f64 * ny) / len)
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
            };
            let ((alo, ahi), (blo, bhi)) = (project(a), project(b));
            blo - ahi >= gap || alo - bhi >= gap
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(w: usize, h: usize, pad: usize) -> Coverage {
        let width = w + 2 * pad;
        let height = h + 2 * pad;
        let mut alpha = vec![0.0; width * height];
        for y in pad..pad + h {
            for x in pad..pad + w {
                alpha[y * width + x] = 1.0;
            }
        }
        let nominal = [pad as f64, pad as f64, (pad + w) as f64, (pad + h) as f64];
        Coverage {
            width,
            height,
            alpha,
            nominal,
        }
    }

    #[test]
    fn no_rotation_keeps_the_pixels() {
        let cov = bar(10, 4, 2);
        let ink = rotate(&cov, 0.0);
        assert_eq!(ink.pixels().count(), 40);
        let [x0, y0, x1, y1] = ink.bounds().unwrap();
        assert_eq!((x1 - x0, y1 - y0), (9, 3));
        // The box of an upright bar is its pixel centres' rectangle.
        let quad = ink.quad().unwrap();
        let (x0, y0, x1, y1) = (x0 as i64, y0 as i64, x1 as i64, y1 as i64);
        assert_eq!(quad, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]);
    }

    #[test]
    fn rotated_quads_hold_their_ink_tightly() {
        for degrees in [-15.0, -7.3, 3.0, 12.5, 15.0] {
            let ink = rotate(&bar(60, 12, 3), degrees);
            let quad = ink.quad().unwrap();
            assert!(ink.pixels().all(|(x, y)| contains(&quad, x as i64, y as i64)));
            // Tight: the box is at most a couple of pixels longer and taller than the rotated bar.
            let side = |a: [i64; 2], b: [i64; 2]| (((a[0] - b[0]).pow(2) + (a[1] - b[1]).pow(2)) as f64).sqrt();
            let (long, short) = (side(quad[0], quad[1]), side(quad[1], quad[2]));
            assert!(
                (59.0..=64.0).contains(&long) && (11.0..=16.0).contains(&short),
                "{degrees}: {quad:?}"
            );
            // Clockwise from the top-left: the first edge runs right, down when the angle is positive.
            assert!(quad[1][0] > quad[0][0]);
            assert_eq!(quad[1][1] > quad[0][1], degrees > 0.0, "{degrees}: {quad:?}");
        }
    }

    #[test]
    fn separation() {
        let a: Quad = [[0, 0], [10, 0], [10, 10], [0, 10]];
        assert!(apart(&a, &shift(&a, 15, 0), 4.0));
        assert!(!apart(&a, &shift(&a, 12, 0), 4.0));
        assert!(!apart(&a, &shift(&a, 5, 5), 0.0));
        let tilted: Quad = [[20, 0], [30, 10], [20, 20], [10, 10]];
        assert!(!apart(&a, &tilted, 4.0));
        assert!(apart(&a, &shift(&tilted, 8, 0), 4.0));
    }
}
