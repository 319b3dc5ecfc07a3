//! What text is drawn on: a flat colour, a linear gradient, a noisy fill, or a procedural texture (value noise,
//! like paper or stone, or ruled paper). Every kind keeps its luminance within about ±0.15 of its mean, so a
//! text colour chosen against the local mean stays legible everywhere on it.

use super::canvas::{Canvas, Colour, colour_with_luminance};
use super::rng::Rng;

/// Paints a background of `width` × `height`.
pub fn paint(rng: &mut Rng, width: usize, height: usize) -> Canvas {
    // Mostly light paper, some dark signs, a few mid tones.
    let l = match rng.weighted(&[70, 20, 10]) {
        0 => rng.uniform(0.68, 0.98),
        1 => rng.uniform(0.05, 0.3),
        _ => rng.uniform(0.35, 0.6),
    };
    let saturation = if rng.chance(0.5) {
        rng.uniform(0.0, 0.15)
    } else {
        rng.uniform(0.15, 0.6)
    };
    let base = colour_with_luminance(rng, l, saturation);
    let mut canvas = Canvas::filled(width, height, base);
    match rng.weighted(&[30, 25, 20, 15, 10]) {
        0 => {}
        1 => gradient(rng, &mut canvas, l, saturation),
        2 => {
            let sigma = rng.uniform(0.015, 0.05);
            canvas.add_noise(rng, sigma);
        }
        3 => value_noise(rng, &mut canvas, l, saturation),
        _ => ruled(rng, &mut canvas, base, l),
    }
    canvas
}

/// The other end of a gradient or texture: a colour within 0.25 of `l`.
fn partner(rng: &mut Rng, l: f64, saturation: f64) -> Colour {
    let other = (l + rng.uniform(-0.25, 0.25)).clamp(0.0, 1.0);
    colour_with_luminance(rng, other, saturation)
}

fn mix(a: Colour, b: Colour, t: f32) -> Colour {
    [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t)
}

/// A linear gradient between two colours, in a random direction.
fn gradient(rng: &mut Rng, canvas: &mut Canvas, l: f64, saturation: f64) {
    let (from, to) = (colour_with_luminance(rng, l, saturation), partner(rng, l, saturation));
    // A random direction without trigonometry: a random vector, normalised (sqrt is exact in IEEE).
    let (mut dx, mut dy) = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
    let norm = (dx * dx + dy * dy).sqrt().max(1e-6);
    (dx, dy) = (dx / norm, dy / norm);
    let (w, h) = (canvas.width as f64, canvas.height as f64);
    let corners = [0.0, w * dx, h * dy, w * dx + h * dy];
    let lo = corners.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = corners.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(1.0);
    canvas.paint(|x, y| mix(from, to, ((x as f64 * dx + y as f64 * dy - lo) / span) as f32));
}

/// Two to three octaves of value noise (random values on a lattice, smoothly interpolated) between two colours.
fn value_noise(rng: &mut Rng, canvas: &mut Canvas, l: f64, saturation: f64) {
    let (from, to) = (colour_with_luminance(rng, l, saturation), partner(rng, l, saturation));
    let salt = rng.next_u64();
    let cell = rng.uniform(12.0, 64.0);
    let octaves = rng.int(2, 3) as u32;
    let stretch = rng.uniform(1.0, 4.0);
    canvas.paint(|x, y| {
        let (mut sum, mut weight, mut amp, mut size) = (0.0, 0.0, 1.0, cell);
        for octave in 0..octaves {
            sum += amp * lattice_noise(salt ^ u64::from(octave), x as f64 / (size * stretch), y as f64 / size);
            weight += amp;
            amp *= 0.5;
            size *= 0.5;
        }
        mix(from, to, (sum / weight) as f32)
    });
}

/// Smoothly interpolated hash values on the integer lattice, in `[0, 1)`.
fn lattice_noise(salt: u64, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let value = |ix: f64, iy: f64| {
        let key = salt
            ^ (ix as i64 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (iy as i64 as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (Rng::new(key).next_u64() >> 11) as f64 / (1u64 << 53) as f64
    };
    let top = value(x0, y0) * (1.0 - sx) + value(x0 + 1.0, y0) * sx;
    let bottom = value(x0, y0 + 1.0) * (1.0 - sx) + value(x0 + 1.0, y0 + 1.0) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// Ruled paper: thin horizontal lines every 18 to 40 px, sometimes a grid.
fn ruled(rng: &mut Rng, canvas: &mut Canvas, base: Colour, l: f64) {
    let step = rng.int(18, 40) as usize;
    let offset = rng.below(step);
    let line_l = if l > 0.5 {
        l - rng.uniform(0.08, 0.18)
    } else {
        l + rng.uniform(0.08, 0.18)
    };
    let line = colour_with_luminance(rng, line_l, 0.4);
    let grid = rng.chance(0.3);
    canvas.paint(|x, y| {
        if (y + offset).is_multiple_of(step) || (grid && (x + offset).is_multiple_of(step)) {
            line
        } else {
            base
        }
    });
}
