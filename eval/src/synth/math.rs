//! The transcendental functions the renderer needs, from `+`, `*` and `/` alone.
//!
//! Why: `f64::sin`, `cos` and `exp` come from the platform's C library, whose last bits differ between glibc,
//! musl and macOS, and a one-bit difference can flip a rounded pixel. Plain IEEE arithmetic is the same
//! everywhere (Rust never fuses a multiply and an add on its own), so these make the bytes portable.

/// `(sin x, cos x)` for `|x| <= π/4`, by Taylor series to x¹⁹ (error below 1e-15 there).
///
/// # Panics
/// In debug builds, when `x` is outside that range: the renderer only rotates by small angles.
pub fn sin_cos(x: f64) -> (f64, f64) {
    debug_assert!(
        x.abs() <= std::f64::consts::FRAC_PI_4 + 1e-12,
        "sin_cos({x}): outside ±π/4"
    );
    let x2 = x * x;
    // Horner form of x - x³/3! + x⁵/5! - …, and 1 - x²/2! + x⁴/4! - ….
    let mut sin = 0.0;
    let mut cos = 0.0;
    for k in (0..10).rev() {
        let n = 2 * k as u32;
        sin = 1.0 - x2 * sin / f64::from((n + 2) * (n + 3));
        cos = 1.0 - x2 * cos / f64::from((n + 1) * (n + 2));
    }
    (x * sin, cos)
}

/// `e^-t` for `t >= 0`: a Taylor series on `t / 64`, squared six times (relative error below 1e-13 for
/// `t <= 20`, and 0 past 700).
pub fn exp_neg(t: f64) -> f64 {
    debug_assert!(t >= 0.0);
    if t > 700.0 {
        return 0.0;
    }
    let x = -t / 64.0;
    let mut sum = 1.0;
    let mut term = 1.0;
    for n in 1..=12 {
        term *= x / f64::from(n);
        sum += term;
    }
    for _ in 0..6 {
        sum *= sum;
    }
    sum
}

/// Degrees to radians.
pub fn radians(degrees: f64) -> f64 {
    degrees * (std::f64::consts::PI / 180.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_cos_matches_std() {
        for i in -100..=100 {
            let x = f64::from(i) * std::f64::consts::FRAC_PI_4 / 100.0;
            let (s, c) = sin_cos(x);
            assert!(
                (s - x.sin()).abs() < 1e-15 && (c - x.cos()).abs() < 1e-15,
                "{x}: {s} {c}"
            );
        }
    }

    #[test]
    fn exp_neg_matches_std() {
        for i in 0..=200 {
            let t = f64::from(i) / 10.0;
            let (ours, std) = (exp_neg(t), (-t).exp());
            assert!(((ours - std) / std).abs() < 1e-12, "{t}: {ours} vs {std}");
        }
        assert_eq!(exp_neg(800.0), 0.0);
    }
}
