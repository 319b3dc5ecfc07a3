//! Pixels: the floating-point canvas that backgrounds and lines are composited on, and the 8-bit RGB image
//! that gets encoded.

use super::rng::Rng;
use super::transform::Ink;

/// An RGB colour, each channel in `[0, 1]`.
pub type Colour = [f32; 3];

/// Rec. 601 luma, as OpenCV's and PIL's grey conversions weigh the channels.
pub fn luminance(c: Colour) -> f64 {
    0.299 * f64::from(c[0]) + 0.587 * f64::from(c[1]) + 0.114 * f64::from(c[2])
}

/// A working image: RGB, `f32` in `[0, 1]`, row-major.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<f32>,
}

impl Canvas {
    /// A canvas filled with one colour.
    pub fn filled(width: usize, height: usize, colour: Colour) -> Self {
        let rgb = (0..width * height).flat_map(|_| colour).collect();
        Self { width, height, rgb }
    }

    /// Sets every pixel from its coordinates.
    pub fn paint(&mut self, mut f: impl FnMut(usize, usize) -> Colour) {
        for y in 0..self.height {
            for x in 0..self.width {
                let i = 3 * (y * self.width + x);
                self.rgb[i..i + 3].copy_from_slice(&f(x, y));
            }
        }
    }

    /// The mean luminance over the inclusive rectangle `[x0, y0, x1, y1]`, clipped to the canvas.
    pub fn mean_luminance(&self, [x0, y0, x1, y1]: [i64; 4]) -> f64 {
        let clip = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
        let (x0, x1) = (clip(x0, self.width), clip(x1, self.width));
        let (y0, y1) = (clip(y0, self.height), clip(y1, self.height));
        let mut sum = 0.0;
        for y in y0..=y1 {
            for x in x0..=x1 {
                let i = 3 * (y * self.width + x);
                sum += luminance([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]);
            }
        }
        sum / ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64
    }

    /// Composites `ink` in `colour` with its top-left at `(ox, oy)`; what falls outside the canvas is dropped.
    pub fn draw(&mut self, ink: &Ink, ox: i64, oy: i64, colour: Colour) {
        for (x, y) in ink.pixels() {
            let (px, py) = (x as i64 + ox, y as i64 + oy);
            if px < 0 || py < 0 || px >= self.width as i64 || py >= self.height as i64 {
                continue;
            }
            let a = f32::from(ink.alpha[y * ink.width + x]) / 255.0;
            let i = 3 * (py as usize * self.width + px as usize);
            for (channel, c) in self.rgb[i..i + 3].iter_mut().zip(colour) {
                *channel = *channel * (1.0 - a) + c * a;
            }
        }
    }

    /// Adds Gaussian-like noise of standard deviation `sigma` to every channel (sensor noise).
    pub fn add_noise(&mut self, rng: &mut Rng, sigma: f64) {
        for v in &mut self.rgb {
            *v = (f64::from(*v) + sigma * rng.normal()).clamp(0.0, 1.0) as f32;
        }
    }

    /// The 8-bit image.
    pub fn to_image(&self) -> Image {
        let data = self
            .rgb
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        Image {
            width: self.width,
            height: self.height,
            data,
        }
    }
}

/// An 8-bit RGB image, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Image {
    /// Turns the image upside down (a 180° rotation: exact, no resampling).
    pub fn rotate_180(&mut self) {
        let pixels: Vec<[u8; 3]> = self.data.chunks_exact(3).rev().map(|p| [p[0], p[1], p[2]]).collect();
        self.data = pixels.concat();
    }

    /// The pixel at `(x, y)`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = 3 * (y * self.width + x);
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// A random colour of exactly luminance `l`: a grey of that luminance pushed towards a random hue by up to
/// `saturation`, as far as the channels stay in `[0, 1]` (the push keeps the luminance, which is linear).
pub fn colour_with_luminance(rng: &mut Rng, l: f64, saturation: f64) -> Colour {
    let l = l.clamp(0.0, 1.0);
    let hue = [rng.unit(), rng.unit(), rng.unit()];
    let hue_l = 0.299 * hue[0] + 0.587 * hue[1] + 0.114 * hue[2];
    let delta = hue.map(|h| h - hue_l);
    let mut s = saturation;
    for d in delta {
        if d > 0.0 {
            s = s.min((1.0 - l) / d);
        } else if d < 0.0 {
            s = s.min(l / -d);
        }
    }
    delta.map(|d| (l + s * d).clamp(0.0, 1.0) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_keep_their_luminance() {
        let mut rng = Rng::new(5);
        for i in 0..=20 {
            let l = f64::from(i) / 20.0;
            let c = colour_with_luminance(&mut rng, l, 0.6);
            assert!((luminance(c) - l).abs() < 1e-6, "{l}: {c:?}");
        }
    }

    #[test]
    fn rotate_180_twice_is_identity() {
        let data: Vec<u8> = (0..2 * 3 * 3).map(|i| i as u8).collect();
        let mut image = Image {
            width: 3,
            height: 2,
            data: data.clone(),
        };
        image.rotate_180();
        assert_eq!(image.pixel(0, 0), [15, 16, 17]);
        assert_eq!(image.pixel(2, 1), [0, 1, 2]);
        image.rotate_180();
        assert_eq!(image.data, data);
    }
}
