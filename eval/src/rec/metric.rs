//! PaddleOCR's `RecMetric`: accuracy and normalised edit distance of recognised text.
//!
//! Per sample, in PaddleOCR's order:
//! 1. with `ignore_space` (default true) every `' '` (U+0020 only) is removed from prediction and target;
//! 2. with `is_filter` (default false) both keep only ASCII letters and digits, lower-cased;
//! 3. the sample is correct when the two strings are equal, and adds rapidfuzz's
//!    `Levenshtein.normalized_distance(pred, target)`: the edit distance over Unicode scalar values
//!    (Python's characters) divided by the longer length, 0 for two empty strings.
//!
//! PaddleOCR adds each batch's distances into a local sum (from 0.0) and that sum into the total, so
//! float64 rounding depends on the batch boundaries: [`RecMetric::accumulate_batch`] takes one batch
//! (the eval loader's batches, the last one short), [`RecMetric::add`] one batch's counts from elsewhere.
//! [`RecMetric::finalize`] is `get_metric`: `acc = correct / (all + 1e-5)` and
//! `norm_edit_dis = 1 - distances / (all + 1e-5)`, the epsilon included.

/// PaddleOCR's `self.eps` in `RecMetric` and `ClsMetric`.
pub const EPS: f64 = 1e-5;

/// One batch's (or a whole set's) counts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RecCounts {
    pub correct: usize,
    pub all: usize,
    /// The sum of the samples' normalised edit distances (not yet `1 -`).
    pub norm_edit_dis: f64,
}

/// The metric, as `get_metric` (or `__call__`, for one batch) returns it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecScores {
    pub acc: f64,
    /// `1 -` the mean normalised edit distance.
    pub norm_edit_dis: f64,
}

/// Accumulates batches and reports PaddleOCR's recognition metric.
#[derive(Debug, Clone, PartialEq)]
pub struct RecMetric {
    /// Compare only ASCII letters and digits, lower-cased (PaddleOCR's default: false).
    pub is_filter: bool,
    /// Remove spaces before comparing (PaddleOCR's default: true; PP-OCRv3/v4 configs set false).
    pub ignore_space: bool,
    totals: RecCounts,
}

impl Default for RecMetric {
    fn default() -> Self {
        Self::new()
    }
}

impl RecMetric {
    /// PaddleOCR's defaults: `is_filter: false`, `ignore_space: true`.
    pub fn new() -> Self {
        Self::with_options(false, true)
    }

    pub fn with_options(is_filter: bool, ignore_space: bool) -> Self {
        RecMetric {
            is_filter,
            ignore_space,
            totals: RecCounts::default(),
        }
    }

    /// Whether one sample is correct, and its normalised edit distance.
    pub fn evaluate(&self, pred: &str, target: &str) -> (bool, f64) {
        let pred = self.normalize(pred);
        let target = self.normalize(target);
        (pred == target, normalized_distance(&pred, &target))
    }

    fn normalize(&self, text: &str) -> Vec<char> {
        text.chars()
            .filter(|&c| !(self.ignore_space && c == ' '))
            .filter(|c| !self.is_filter || c.is_ascii_alphanumeric())
            .map(|c| if self.is_filter { c.to_ascii_lowercase() } else { c })
            .collect()
    }

    /// The counts of one batch of `(prediction, target)` pairs, summed as PaddleOCR sums them.
    pub fn count_batch<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> RecCounts {
        let mut counts = RecCounts::default();
        for (pred, target) in pairs {
            let (correct, dis) = self.evaluate(pred, target);
            counts.correct += correct as usize;
            counts.all += 1;
            counts.norm_edit_dis += dis;
        }
        counts
    }

    /// Adds one batch and returns that batch's metric (PaddleOCR's `__call__`).
    pub fn accumulate_batch<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> RecScores {
        let counts = self.count_batch(pairs);
        self.add(counts);
        scores(counts)
    }

    /// Adds one batch's counts computed elsewhere (on another worker, say). Adding batches in the loader's
    /// order reproduces PaddleOCR's sum exactly.
    pub fn add(&mut self, counts: RecCounts) {
        self.totals.correct += counts.correct;
        self.totals.all += counts.all;
        self.totals.norm_edit_dis += counts.norm_edit_dis;
    }

    /// Everything added so far.
    pub fn totals(&self) -> RecCounts {
        self.totals
    }

    /// PaddleOCR's `get_metric` over everything added so far.
    pub fn finalize(&self) -> RecScores {
        scores(self.totals)
    }
}

/// `acc` and `norm_edit_dis` from counts, with PaddleOCR's epsilon.
pub fn scores(counts: RecCounts) -> RecScores {
    let all = counts.all as f64 + EPS;
    RecScores {
        acc: 1.0 * counts.correct as f64 / all,
        norm_edit_dis: 1.0 - counts.norm_edit_dis / all,
    }
}

/// The Levenshtein distance (insertions, deletions and substitutions each cost 1).
pub fn levenshtein(a: &[char], b: &[char]) -> usize {
    if a.len() < b.len() {
        return levenshtein(b, a);
    }
    // One row of the table over the shorter string.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + (ca != cb) as usize;
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// rapidfuzz's `Levenshtein.normalized_distance` with unit weights: distance / max(len), 0 when both
/// are empty.
pub fn normalized_distance(a: &[char], b: &[char]) -> f64 {
    let maximum = a.len().max(b.len());
    if maximum == 0 {
        return 0.0;
    }
    levenshtein(a, b) as f64 / maximum as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn edit_distance_counts_characters_not_bytes() {
        assert_eq!(levenshtein(&chars("kitten"), &chars("sitting")), 3);
        assert_eq!(levenshtein(&chars(""), &chars("abc")), 3);
        assert_eq!(levenshtein(&chars("中文识别"), &chars("中文识刖")), 1);
        assert_eq!(levenshtein(&chars("中文"), &chars("文中")), 2);
        assert_eq!(normalized_distance(&chars("中文识别"), &chars("中识别")), 0.25);
        assert_eq!(normalized_distance(&[], &[]), 0.0);
        assert_eq!(normalized_distance(&chars("a"), &[]), 1.0);
    }

    #[test]
    fn spaces_and_filter() {
        let m = RecMetric::new();
        assert_eq!(m.evaluate("a b", "ab"), (true, 0.0));
        // Only U+0020 is a space here.
        assert_eq!(m.evaluate("a\u{3000}b", "ab"), (false, 1.0 / 3.0));
        let keep = RecMetric::with_options(false, false);
        assert_eq!(keep.evaluate("a b", "ab"), (false, 1.0 / 3.0));
        let filter = RecMetric::with_options(true, false);
        assert_eq!(filter.evaluate("Hello, 世界 1", "hello1"), (true, 0.0));
        assert_eq!(filter.evaluate("世界", "!"), (true, 0.0));
    }

    #[test]
    fn epsilon_and_batches() {
        let mut m = RecMetric::new();
        assert_eq!(
            m.finalize(),
            RecScores {
                acc: 0.0,
                norm_edit_dis: 1.0
            }
        );
        let batch = m.accumulate_batch([("abc", "abc"), ("abd", "abc")]);
        assert_eq!(batch.acc, 1.0 / (2.0 + EPS));
        assert_eq!(batch.norm_edit_dis, 1.0 - (1.0 / 3.0) / (2.0 + EPS));
        m.accumulate_batch([("", "x")]);
        assert_eq!(
            m.totals(),
            RecCounts {
                correct: 1,
                all: 3,
                norm_edit_dis: 1.0 / 3.0 + 1.0
            }
        );
        assert_eq!(m.finalize().acc, 1.0 / (3.0 + EPS));
    }
}
