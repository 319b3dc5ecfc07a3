//! Grouping samples into model batches.
//!
//! A batch holds consecutive samples of one shape, at most `batch_size` of them. Det images keep their
//! own sizes after `DetResizeForTest`, so a det batch only joins neighbours that resized alike (and is
//! often a single image); rec and cls crops are resized to one shape (unless `RecResizeImg` has
//! `eval_mode`, which keeps each crop's ratio), so their batches are full. The model sees each image
//! alone either way (inference-mode normalisation is per sample), so the grouping changes speed, not
//! results, and the order of samples is kept.

use crate::transforms::{Sample, Target};

/// Consecutive samples of one shape, stacked.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// float32, `[N, C, H, W]` row-major.
    pub images: Vec<f32>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// One `shape_list` per sample for det sets; empty otherwise.
    pub shape_lists: Vec<[f64; 4]>,
    pub targets: Vec<Target>,
}

impl Batch {
    fn start(sample: Sample) -> Batch {
        let [c, h, w] = sample.shape;
        Batch {
            images: sample.image,
            shape: [1, c, h, w],
            shape_lists: sample.shape_list.into_iter().collect(),
            targets: vec![sample.target],
        }
    }

    fn push(&mut self, sample: Sample) {
        self.images.extend_from_slice(&sample.image);
        self.shape[0] += 1;
        self.shape_lists.extend(sample.shape_list);
        self.targets.push(sample.target);
    }

    fn takes(&self, sample: &Sample) -> bool {
        self.shape[1..] == sample.shape
    }
}

/// Batches of consecutive same-shape samples from a sample iterator (such as
/// [`crate::dataset::Dataset::iter`]). An error is passed on in its place, after the batch gathered
/// before it.
///
/// # Panics
/// When `batch_size` is 0.
pub fn batches<I, E>(samples: I, batch_size: usize) -> Batches<I::IntoIter>
where
    I: IntoIterator<Item = Result<Sample, E>>,
{
    assert!(batch_size > 0, "a batch holds at least one sample");
    Batches {
        samples: samples.into_iter().peekable(),
        batch_size,
    }
}

/// The iterator of [`batches`].
pub struct Batches<I: Iterator> {
    samples: std::iter::Peekable<I>,
    batch_size: usize,
}

impl<I, E> Iterator for Batches<I>
where
    I: Iterator<Item = Result<Sample, E>>,
{
    type Item = Result<Batch, E>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batch = match self.samples.next()? {
            Ok(sample) => Batch::start(sample),
            Err(e) => return Some(Err(e)),
        };
        while batch.shape[0] < self.batch_size {
            match self.samples.peek() {
                Some(Ok(sample)) if batch.takes(sample) => {
                    let Some(Ok(sample)) = self.samples.next() else {
                        unreachable!("peeked a sample")
                    };
                    batch.push(sample);
                }
                _ => break,
            }
        }
        Some(Ok(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(h: usize, w: usize, v: f32) -> Result<Sample, String> {
        Ok(Sample {
            image: vec![v; 3 * h * w],
            shape: [3, h, w],
            shape_list: Some([h as f64, w as f64, 1.0, 1.0]),
            target: Target::Cls { label: v as usize },
        })
    }

    #[test]
    fn batches_join_consecutive_samples_of_one_shape() {
        let samples = vec![
            sample(32, 32, 0.0),
            sample(32, 32, 1.0),
            sample(32, 64, 2.0),
            sample(32, 32, 3.0),
            sample(32, 32, 4.0),
            sample(32, 32, 5.0),
        ];
        let got: Vec<Batch> = batches(samples, 2).map(Result::unwrap).collect();
        let shapes: Vec<[usize; 4]> = got.iter().map(|b| b.shape).collect();
        assert_eq!(
            shapes,
            vec![[2, 3, 32, 32], [1, 3, 32, 64], [2, 3, 32, 32], [1, 3, 32, 32]]
        );
        assert_eq!(got[0].images.len(), 2 * 3 * 32 * 32);
        assert_eq!(got[0].images[3 * 32 * 32], 1.0);
        assert_eq!(got[2].targets, vec![Target::Cls { label: 3 }, Target::Cls { label: 4 }]);
        assert_eq!(got[1].shape_lists, vec![[32.0, 64.0, 1.0, 1.0]]);
    }

    #[test]
    fn an_error_comes_after_the_batch_before_it() {
        let samples = vec![sample(8, 8, 0.0), Err("bad".to_string()), sample(8, 8, 1.0)];
        let got: Vec<Result<[usize; 4], String>> = batches(samples, 4).map(|b| b.map(|b| b.shape)).collect();
        assert_eq!(got, vec![Ok([1, 3, 8, 8]), Err("bad".into()), Ok([1, 3, 8, 8])]);
    }
}
