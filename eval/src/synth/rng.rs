//! The generator's only source of randomness: SplitMix64, seeded per sample.
//!
//! Why our own: the output must be byte-identical for a seed on every machine and with every future version of
//! a dependency, and SplitMix64 is a dozen lines of integer arithmetic. Each sample draws from its own stream
//! ([`Rng::for_sample`]), so sample `i` is the same whatever `--count` is.

/// A SplitMix64 stream (Steele, Lea and Flood, 2014): good enough statistics for rendering, trivially portable.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A stream from a seed.
    pub fn new(seed: u64) -> Self {
        Self { state: mix(seed) }
    }

    /// The stream of sample `index` of the dataset kind `stream` (a small tag) under `seed`.
    pub fn for_sample(seed: u64, stream: u64, index: u64) -> Self {
        Self::new(mix(mix(seed ^ stream.wrapping_mul(GOLDEN)).wrapping_add(index)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in `0..n` (0 when `n` is 0), without modulo bias (Lemire's multiply-and-reject).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let n = n as u64;
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as usize;
            }
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as usize + 1) as i64
    }

    /// Uniform in `[0, 1)`, from 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element, uniformly.
    ///
    /// # Panics
    /// When `items` is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index drawn with the given weights.
    ///
    /// # Panics
    /// When `weights` is empty.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = self.below(total as usize) as u32;
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }

    /// Roughly standard normal: the Irwin–Hall sum of four uniforms, rescaled to unit variance. Bounded by ±3.46,
    /// which suits pixel noise, and needs no `ln` or `sqrt` whose last bits could differ between C libraries.
    pub fn normal(&mut self) -> f64 {
        let sum = self.unit() + self.unit() + self.unit() + self.unit();
        // Four uniforms have variance 4/12; sqrt(3) rescales it to 1.
        (sum - 2.0) * 1.732_050_807_568_877_2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // SplitMix64 from state 0 (the published reference sequence starts 0xe220a8397b1dcdaf).
        let mut rng = Rng { state: 0 };
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..1000 {
            seen[rng.below(5)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn samples_have_their_own_streams() {
        let a = Rng::for_sample(1, 0, 0).next_u64();
        assert_eq!(a, Rng::for_sample(1, 0, 0).next_u64());
        assert_ne!(a, Rng::for_sample(1, 0, 1).next_u64());
        assert_ne!(a, Rng::for_sample(1, 1, 0).next_u64());
        assert_ne!(a, Rng::for_sample(2, 0, 0).next_u64());
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut rng = Rng::new(3);
        let n = 20_000;
        let values: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean}, variance {var}"
        );
    }
}
