//! Text-direction classification as PaddleOCR evaluates it: the target (`ClsLabelEncode`), the
//! prediction (`ClsPostProcess`) and the metric (`ClsMetric`).
//!
//! - `ClsLabelEncode`: a label not in `label_list` gives `None` (the dataset then evaluates the next line
//!   instead, see [`crate::substitute`]); otherwise its first index in the list.
//! - `ClsPostProcess`: per sample, the `argmax` over the classes (the first maximum) names the label, and
//!   the score is that class's probability as the model gave it (float32). The target is
//!   `label_list[index]`.
//! - `ClsMetric`: a sample is correct when the predicted and target label strings are equal;
//!   `acc = correct / (all + 1e-5)`. (PaddleOCR before 2.6 divided by `all` alone, and raised on an empty
//!   set.)

use crate::numeric::argmax;
use crate::rec::metric::EPS;

/// What is wrong with a classifier's output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClsError {
    /// An output whose class axis does not match `label_list`.
    #[error("cls output has {classes} classes, but label_list has {labels} labels")]
    Labels { labels: usize, classes: usize },
    /// An output whose data does not fill its stated shape.
    #[error("cls output: expected batch {batch} x classes {classes} = {expected} values, got {got}")]
    OutputSize {
        batch: usize,
        classes: usize,
        expected: usize,
        got: usize,
    },
}

/// PaddleOCR's `label_list` for the text-direction classifier.
pub fn default_label_list() -> Vec<String> {
    vec!["0".to_string(), "180".to_string()]
}

/// PaddleOCR's `ClsLabelEncode`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClsLabelEncode {
    pub label_list: Vec<String>,
}

impl ClsLabelEncode {
    pub fn new(label_list: Vec<String>) -> Self {
        ClsLabelEncode { label_list }
    }

    /// The label's class index (its first position in `label_list`), or `None` for a label not listed.
    pub fn encode(&self, label: &str) -> Option<usize> {
        self.label_list.iter().position(|l| l == label)
    }

    /// The target the metric compares with: `label_list[index]` of the encoded label.
    pub fn target(&self, label: &str) -> Option<&str> {
        self.encode(label).map(|i| self.label_list[i].as_str())
    }
}

/// PaddleOCR's `ClsPostProcess`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClsPostProcess {
    pub label_list: Vec<String>,
}

impl ClsPostProcess {
    pub fn new(label_list: Vec<String>) -> Self {
        ClsPostProcess { label_list }
    }

    /// The label and score of every sample of a row-major `[batch, classes]` output.
    ///
    /// # Errors
    /// [`ClsError::Labels`] when `classes` is not the length of `label_list` (PaddleOCR would index past
    /// the list, or never name its last labels), [`ClsError::OutputSize`] when `probs` does not hold
    /// `batch * classes` values.
    pub fn decode(&self, probs: &[f32], batch: usize, classes: usize) -> Result<Vec<(String, f32)>, ClsError> {
        if classes != self.label_list.len() || classes == 0 {
            return Err(ClsError::Labels {
                labels: self.label_list.len(),
                classes,
            });
        }
        let expected = batch * classes;
        if probs.len() != expected {
            return Err(ClsError::OutputSize {
                batch,
                classes,
                expected,
                got: probs.len(),
            });
        }
        Ok(probs
            .chunks_exact(classes)
            .map(|row| {
                let (index, score) = argmax(row);
                (self.label_list[index].clone(), score)
            })
            .collect())
    }
}

/// One batch's (or a whole set's) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClsCounts {
    pub correct: usize,
    pub all: usize,
}

/// The metric, as `get_metric` returns it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClsScores {
    pub acc: f64,
}

/// Accumulates batches and reports PaddleOCR's classification accuracy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClsMetric {
    totals: ClsCounts,
}

impl ClsMetric {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts of one batch of `(predicted label, target label)` pairs.
    pub fn count_batch<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ClsCounts {
        let mut counts = ClsCounts::default();
        for (pred, target) in pairs {
            counts.correct += (pred == target) as usize;
            counts.all += 1;
        }
        counts
    }

    /// Adds one batch and returns that batch's metric (PaddleOCR's `__call__`).
    pub fn accumulate_batch<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ClsScores {
        let counts = Self::count_batch(pairs);
        self.add(counts);
        scores(counts)
    }

    /// Adds counts computed elsewhere.
    pub fn add(&mut self, counts: ClsCounts) {
        self.totals.correct += counts.correct;
        self.totals.all += counts.all;
    }

    pub fn totals(&self) -> ClsCounts {
        self.totals
    }

    /// PaddleOCR's `get_metric` over everything added so far.
    pub fn finalize(&self) -> ClsScores {
        scores(self.totals)
    }
}

/// `acc` from counts, with PaddleOCR's epsilon.
pub fn scores(counts: ClsCounts) -> ClsScores {
    ClsScores {
        acc: counts.correct as f64 / (counts.all as f64 + EPS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_encode_to_their_first_position() {
        let e = ClsLabelEncode::new(default_label_list());
        assert_eq!(e.encode("180"), Some(1));
        assert_eq!(e.encode("0"), Some(0));
        assert_eq!(e.encode("90"), None);
        assert_eq!(e.encode(" 0"), None);
        let dup = ClsLabelEncode::new(vec!["a".into(), "b".into(), "a".into()]);
        assert_eq!(dup.encode("a"), Some(0));
        assert_eq!(dup.target("b"), Some("b"));
    }

    #[test]
    fn argmax_names_the_label_and_keeps_the_float32_score() {
        let p = ClsPostProcess::new(default_label_list());
        let out = p.decode(&[0.3, 0.7, 0.5, 0.5, 0.9, 0.1], 3, 2).unwrap();
        assert_eq!(
            out,
            [("180".to_string(), 0.7), ("0".to_string(), 0.5), ("0".to_string(), 0.9)]
        );
        assert_eq!(
            p.decode(&[0.1; 3], 1, 3).unwrap_err().to_string(),
            "cls output has 3 classes, but label_list has 2 labels"
        );
        assert_eq!(
            p.decode(&[0.1; 3], 2, 2).unwrap_err(),
            ClsError::OutputSize {
                batch: 2,
                classes: 2,
                expected: 4,
                got: 3
            }
        );
    }

    #[test]
    fn accuracy_with_epsilon() {
        let mut m = ClsMetric::new();
        assert_eq!(m.finalize().acc, 0.0);
        let b = m.accumulate_batch([("0", "0"), ("180", "0"), ("180", "180")]);
        assert_eq!(b.acc, 2.0 / (3.0 + EPS));
        m.accumulate_batch([("0", "180")]);
        assert_eq!(m.totals(), ClsCounts { correct: 2, all: 4 });
        assert_eq!(m.finalize().acc, 2.0 / (4.0 + EPS));
    }
}
