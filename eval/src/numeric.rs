//! numpy's reductions as PaddleOCR's post-processing meets them, to the bit: `argmax`/`max` along the
//! class axis and `np.mean` of a float32 array.
//!
//! Only what the rec and cls post-processing need; anything with a wider use belongs in its own module.

/// `row.argmax()` and `row.max()` as numpy gives them: the first maximum, and a NaN beats everything (the
/// first NaN is the answer, and the maximum is NaN).
///
/// # Panics
/// On an empty row (numpy raises there too); callers check their shapes first.
pub fn argmax(row: &[f32]) -> (usize, f32) {
    let mut best = (0, row[0]);
    if best.1.is_nan() {
        return best;
    }
    for (i, &v) in row.iter().enumerate().skip(1) {
        // numpy's loop replaces unless `v <= best`: a larger value or a NaN.
        if v > best.1 || v.is_nan() {
            best = (i, v);
            if v.is_nan() {
                break;
            }
        }
    }
    best
}

/// `np.mean(a)` of a float32 array, as a float32: numpy sums with its pairwise summation (eight
/// accumulators per block of at most 128, halves above that) starting from the identity 0, then divides
/// by the count. numpy divides in float64 and rounds to float32, which equals the float32 quotient (a
/// quotient of float32 values rounds the same either way).
///
/// An empty slice gives NaN, as numpy does (with a warning); PaddleOCR never asks for that.
pub fn mean_f32(values: &[f32]) -> f32 {
    (0.0 + pairwise_sum(values)) / values.len() as f32
}

/// numpy's `pairwise_sum` for float32 (`loops_utils.h.src`), contiguous input.
fn pairwise_sum(a: &[f32]) -> f32 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = 0.0f32;
        for &x in a {
            res += x;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f32; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum_and_the_first_nan() {
        assert_eq!(argmax(&[0.1, 0.5, 0.5, 0.2]), (1, 0.5));
        assert_eq!(argmax(&[0.7]), (0, 0.7));
        let (i, v) = argmax(&[0.1, f32::NAN, 0.9, f32::NAN]);
        assert_eq!(i, 1);
        assert!(v.is_nan());
        assert!(argmax(&[f32::NAN, 1.0]).1.is_nan());
        // -0.0 and 0.0 tie: the first stays.
        assert_eq!(argmax(&[-0.0, 0.0]).0, 0);
    }

    #[test]
    fn mean_follows_numpys_summation_order() {
        // 1.0 then fifteen 2^-24: added one by one in float32 each step rounds back to 1.0, but numpy's
        // eight accumulators first pair the small values (2^-23 each) and keep them.
        let mut a = vec![1.0f32];
        a.extend(std::iter::repeat_n(2f32.powi(-24), 15));
        assert_eq!(a.iter().fold(0.0f32, |s, &x| s + x), 1.0);
        let expected = ((1.0f32 + 2f32.powi(-23)) + 2f32.powi(-22)) + 2f32.powi(-21);
        assert_eq!(pairwise_sum(&a), expected);
        // numpy 2.4.6: np.mean(np.array([1.0] + [2**-24] * 15, np.float32)) == 0.06250005215406418
        assert_eq!(mean_f32(&a) as f64, 0.06250005215406418);
        assert_eq!(mean_f32(&[0.25, 0.75]), 0.5);
        assert!(mean_f32(&[]).is_nan());
    }
}
