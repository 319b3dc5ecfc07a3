//! `cv2.resize(img, (w, h))` with the default `INTER_LINEAR` on 8-bit images, bit-exact with OpenCV 4.x.
//!
//! Every resize in PaddleOCR's eval transforms (`DetResizeForTest`, `RecResizeImg`, `ClsResizeImg`) is this
//! call on the decoded uint8 image; the conversion to float32 comes after. OpenCV computes it in fixed
//! point (`resize.cpp`, `hal::resize` and `resizeGeneric_`), which is what makes an exact copy possible:
//!
//! - **Coefficients.** With `scale = 1 / (dst / src)` (in double, as OpenCV divides), destination column
//!   `dx` samples at `fx = (float)((dx + 0.5) * scale - 0.5)`; `sx = floor(fx)` and `fx -= sx` in float.
//!   Columns left of the image (`sx < 0`) and at or right of the last one (`sx >= src - 1`) take that edge
//!   pixel alone. The two weights `1 - fx` and `fx` become shorts scaled by `INTER_RESIZE_COEF_SCALE`
//!   (2048, 11 bits), rounded half to even (`saturate_cast<short>`). Rows are computed the same way but
//!   are not clamped: their weights stay as computed and the row indices are clipped to the image instead.
//! - **Horizontal pass.** `S[sx] * a0 + S[sx + cn] * a1` in int (22 bits), or `S[sx] * 2048` at the right
//!   edge.
//! - **Vertical pass.** `((b0 * (R0 >> 4)) >> 16) + ((b1 * (R1 >> 4)) >> 16) + 2) >> 2`, the same in
//!   OpenCV's scalar and SIMD code.
//! - **Special cases.** Equal sizes copy. For a downscale by exactly 2 in both directions OpenCV runs
//!   `INTER_AREA`'s fast path instead (`(a + b + c + d + 2) >> 2` over each 2x2 block), which gives the
//!   same bytes as the above with both weights at 1024, so it needs no code of its own.
//!
//! Checked against OpenCV 4.10 on the fixtures of `scripts/oracle/resize_cases.py` (upscales, downscales,
//! non-integer factors, one-pixel sizes, large reductions), every byte equal. Float images are out of
//! scope: no eval transform resizes one.

use crate::image::Image;

/// OpenCV's `INTER_RESIZE_COEF_BITS`: the interpolation weights are fixed point with 11 fractional bits.
const COEF_BITS: u32 = 11;
const COEF_SCALE: i32 = 1 << COEF_BITS;

/// `cv2.resize(image, (width, height))` with `INTER_LINEAR`, any number of channels.
///
/// # Panics
/// When the image or the requested size is empty (OpenCV asserts the same).
pub fn resize_linear(image: &Image, height: usize, width: usize) -> Image {
    assert!(
        image.height > 0 && image.width > 0 && image.channels > 0,
        "resize of an empty image ({}x{}x{})",
        image.height,
        image.width,
        image.channels
    );
    assert!(height > 0 && width > 0, "resize to an empty size ({height}x{width})");
    if (height, width) == (image.height, image.width) {
        return image.clone();
    }
    let scale_x = 1.0 / (width as f64 / image.width as f64);
    let scale_y = 1.0 / (height as f64 / image.height as f64);
    let (xofs, alpha) = axis_coefficients(scale_x, image.width, width, true);
    let (yofs, beta) = axis_coefficients(scale_y, image.height, height, false);

    let cn = image.channels;
    let row_len = image.width * cn;
    let mut out = Image::zeros(height, width, cn);
    // The horizontal pass of the two source rows a destination row reads; consecutive destination rows
    // usually share them, so they are kept by source row index.
    let mut rows: [(Option<usize>, Vec<i32>); 2] = [(None, vec![0; width * cn]), (None, vec![0; width * cn])];
    for dy in 0..height {
        let sy0 = yofs[dy];
        let wanted = [clip(sy0, image.height), clip(sy0 + 1, image.height)];
        for (k, &sy) in wanted.iter().enumerate() {
            if rows[k].0 == Some(sy) {
                continue;
            }
            if let Some(other) = rows.iter().position(|r| r.0 == Some(sy)) {
                let copy = rows[other].1.clone();
                rows[k] = (Some(sy), copy);
                continue;
            }
            let src = &image.data[sy * row_len..(sy + 1) * row_len];
            let buf = &mut rows[k].1;
            for (dx, (&sx, &[a0, a1])) in xofs.iter().zip(&alpha).enumerate() {
                let sx = sx as usize;
                for c in 0..cn {
                    let s0 = i32::from(src[sx * cn + c]);
                    // At the right edge OpenCV multiplies by the scale alone and never reads past the row.
                    buf[dx * cn + c] = if sx + 1 >= image.width {
                        s0 * COEF_SCALE
                    } else {
                        s0 * a0 + i32::from(src[(sx + 1) * cn + c]) * a1
                    };
                }
            }
            rows[k].0 = Some(sy);
        }
        let [b0, b1] = beta[dy];
        let dst = &mut out.data[dy * width * cn..(dy + 1) * width * cn];
        for (x, d) in dst.iter_mut().enumerate() {
            let v = ((b0 * (rows[0].1[x] >> 4)) >> 16) + ((b1 * (rows[1].1[x] >> 4)) >> 16) + 2;
            *d = (v >> 2) as u8;
        }
    }
    out
}

/// The source index and the two fixed-point weights of each destination index along one axis.
/// `clamp` clamps the index and zeroes the fraction at the edges, as OpenCV does for columns; rows keep
/// their raw index (possibly -1 or the last row), clipped when read.
fn axis_coefficients(scale: f64, src: usize, dst: usize, clamp: bool) -> (Vec<isize>, Vec<[i32; 2]>) {
    let mut ofs = Vec::with_capacity(dst);
    let mut weights = Vec::with_capacity(dst);
    for d in 0..dst {
        let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let mut s = f.floor() as isize;
        f -= s as f32;
        if clamp {
            if s < 0 {
                (f, s) = (0.0, 0);
            }
            if s >= src as isize - 1 {
                (f, s) = (0.0, src as isize - 1);
            }
        }
        ofs.push(s);
        weights.push([coef(1.0 - f), coef(f)]);
    }
    (ofs, weights)
}

/// `saturate_cast<short>(w * INTER_RESIZE_COEF_SCALE)`: rounded half to even, as `cvRound` does.
fn coef(w: f32) -> i32 {
    (w * COEF_SCALE as f32)
        .round_ties_even()
        .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i32
}

/// OpenCV's `clip(y, 0, n)` of a source row index.
fn clip(i: isize, n: usize) -> usize {
    i.clamp(0, n as isize - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_size_copies_and_constant_images_stay_constant() {
        let img = Image::from_raw(2, 3, 1, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(resize_linear(&img, 2, 3), img);
        let flat = Image::from_raw(3, 4, 3, vec![200; 36]);
        for (h, w) in [(1, 1), (7, 5), (3, 9), (2, 2)] {
            assert!(resize_linear(&flat, h, w).data.iter().all(|&v| v == 200), "{h}x{w}");
        }
    }

    #[test]
    fn upscaling_a_single_pixel_repeats_it() {
        let px = Image::from_raw(1, 1, 3, vec![9, 99, 255]);
        let big = resize_linear(&px, 4, 5);
        assert_eq!(big.data, [9, 99, 255].repeat(20));
    }

    #[test]
    fn exact_halving_averages_2x2_blocks() {
        let img = Image::from_raw(2, 4, 1, vec![0, 1, 10, 20, 2, 3, 30, 41]);
        // (0+1+2+3+2)>>2 = 2, (10+20+30+41+2)>>2 = 25
        assert_eq!(resize_linear(&img, 1, 2).data, vec![2, 25]);
    }

    #[test]
    fn weights_round_half_to_even() {
        // 1.5/2048 of the scale rounds to 2, 2.5/2048 to 2.
        assert_eq!(coef(1.5 / 2048.0), 2);
        assert_eq!(coef(2.5 / 2048.0), 2);
        assert_eq!(coef(1.0), 2048);
    }
}
