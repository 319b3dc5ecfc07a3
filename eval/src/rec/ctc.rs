//! PaddleOCR's `CTCLabelDecode`: greedy CTC decoding of a recognition model's `[batch, time, classes]`
//! probabilities into text and a confidence.
//!
//! Per sample, as PaddleOCR (numpy) computes it:
//! 1. each time step's class is `argmax` (the first maximum; the first NaN if there is one) and its
//!    probability the maximum;
//! 2. a step is kept when its class differs from the previous step's (`is_remove_duplicate`, true for CTC)
//!    and is not blank (0): repeats are merged *before* blanks are dropped, so `a a - a` gives `aa`;
//! 3. the text joins the kept classes' dictionary entries (reordered for `arabic` dictionaries);
//! 4. the confidence is `np.mean` of the kept steps' probabilities, in float32 (the model's dtype), and
//!    `0.0` when no step is kept.
//!
//! rapidocr differs in one place: it turns the kept probabilities into a Python list first, so its mean is
//! taken in float64. sensgrid follows PaddleOCR's evaluation.

use super::{CharacterDict, RecError};
use crate::numeric::{argmax, mean_f32};

/// Greedy CTC decoding over a [`CharacterDict`].
#[derive(Debug, Clone, PartialEq)]
pub struct CtcLabelDecode {
    dict: CharacterDict,
    /// Merge repeated classes before dropping blanks (PaddleOCR's `is_remove_duplicate`, default true).
    pub is_remove_duplicate: bool,
}

impl CtcLabelDecode {
    /// Decoding as PaddleOCR's `CTCLabelDecode` does by default (`is_remove_duplicate: true`).
    pub fn new(dict: CharacterDict) -> Self {
        CtcLabelDecode {
            dict,
            is_remove_duplicate: true,
        }
    }

    pub fn dict(&self) -> &CharacterDict {
        &self.dict
    }

    /// Text and confidence of every sample of a row-major `[batch, time, classes]` output.
    ///
    /// # Errors
    /// [`RecError::Classes`] when `classes` is not the dictionary's size (blank included): a model paired
    /// with the wrong dictionary, or `use_space_char` set wrongly. [`RecError::OutputSize`] when `probs`
    /// does not hold `batch * time * classes` values.
    pub fn decode(
        &self,
        probs: &[f32],
        batch: usize,
        time: usize,
        classes: usize,
    ) -> Result<Vec<(String, f32)>, RecError> {
        if classes != self.dict.len() {
            return Err(RecError::Classes {
                expected: self.dict.len(),
                got: classes,
            });
        }
        let expected = batch * time * classes;
        if probs.len() != expected {
            return Err(RecError::OutputSize {
                batch,
                time,
                classes,
                expected,
                got: probs.len(),
            });
        }
        let mut out = Vec::with_capacity(batch);
        for b in 0..batch {
            let sample = &probs[b * time * classes..(b + 1) * time * classes];
            let steps: Vec<(usize, f32)> = sample.chunks_exact(classes).map(argmax).collect();
            let mut kept = Vec::new();
            let mut confs = Vec::new();
            for (t, &(class, prob)) in steps.iter().enumerate() {
                let repeat = self.is_remove_duplicate && t > 0 && steps[t - 1].0 == class;
                if !repeat && class != 0 {
                    kept.push(class);
                    confs.push(prob);
                }
            }
            let conf = if confs.is_empty() { 0.0 } else { mean_f32(&confs) };
            out.push((self.text(&kept), conf));
        }
        Ok(out)
    }

    /// The text of an encoded label, as PaddleOCR's `decode(label)` gives it to the metric: blanks (the
    /// padding) dropped, repeats kept.
    ///
    /// # Errors
    /// [`RecError::LabelIndex`] for an index past the dictionary.
    pub fn decode_label(&self, indices: &[usize]) -> Result<String, RecError> {
        let len = self.dict.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(RecError::LabelIndex { index, len });
        }
        let kept: Vec<usize> = indices.iter().copied().filter(|&i| i != 0).collect();
        Ok(self.text(&kept))
    }

    fn text(&self, classes: &[usize]) -> String {
        let entries = self.dict.entries();
        let text: String = classes.iter().map(|&c| entries[c].as_str()).collect();
        if self.dict.reverses_text() {
            reverse_rtl(&text)
        } else {
            text
        }
    }
}

/// PaddleOCR's `pred_reverse`: runs of Latin letters, digits and ` :*./%+-` stay in order as one piece,
/// every other character is a piece of its own, and the pieces are reversed.
pub fn reverse_rtl(text: &str) -> String {
    let keeps_order = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | ':' | '*' | '.' | '/' | '%' | '+' | '-');
    let mut pieces: Vec<String> = Vec::new();
    let mut run = String::new();
    for c in text.chars() {
        if keeps_order(c) {
            run.push(c);
        } else {
            if !run.is_empty() {
                pieces.push(std::mem::take(&mut run));
            }
            pieces.push(c.to_string());
        }
    }
    if !run.is_empty() {
        pieces.push(run);
    }
    pieces.iter().rev().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> CtcLabelDecode {
        CtcLabelDecode::new(CharacterDict::from_characters(["a", "b", "中"], true))
    }

    /// One-hot-ish steps: class `c` gets `p`, the rest share what is left.
    fn steps(path: &[(usize, f32)], classes: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for &(c, p) in path {
            let rest = (1.0 - p) / (classes - 1) as f32;
            out.extend((0..classes).map(|k| if k == c { p } else { rest }));
        }
        out
    }

    #[test]
    fn repeats_merge_before_blanks_drop() {
        let d = decoder();
        // a a - a b b 中 - -   (0 is blank)
        let path = [
            (1, 0.9),
            (1, 0.8),
            (0, 0.7),
            (1, 0.6),
            (2, 0.5),
            (2, 0.9),
            (3, 0.4),
            (0, 0.9),
            (0, 0.9),
        ];
        let probs = steps(&path, 5);
        let out = d.decode(&probs, 1, path.len(), 5).unwrap();
        assert_eq!(out[0].0, "aab中");
        assert_eq!(out[0].1, mean_f32(&[0.9, 0.6, 0.5, 0.4]));

        let mut keep_all = decoder();
        keep_all.is_remove_duplicate = false;
        let out = keep_all.decode(&probs, 1, path.len(), 5).unwrap();
        assert_eq!(out[0].0, "aaabb中");
    }

    #[test]
    fn empty_text_has_confidence_zero() {
        let d = decoder();
        let probs = steps(&[(0, 0.9), (0, 0.8)], 5);
        assert_eq!(d.decode(&probs, 1, 2, 5).unwrap(), [(String::new(), 0.0)]);
        assert_eq!(d.decode(&[], 1, 0, 5).unwrap(), [(String::new(), 0.0)]);
        assert_eq!(d.decode(&[], 0, 25, 5).unwrap(), []);
    }

    #[test]
    fn ties_go_to_the_lower_class() {
        let d = decoder();
        // Step 0: blank and 'a' tie (blank wins); step 1: 'b' and ' ' tie ('b' wins).
        let probs = [0.4, 0.4, 0.1, 0.05, 0.05, 0.1, 0.1, 0.35, 0.1, 0.35];
        assert_eq!(d.decode(&probs, 1, 2, 5).unwrap(), [("b".to_string(), 0.35)]);
    }

    #[test]
    fn batches_are_independent() {
        let d = decoder();
        let mut probs = steps(&[(4, 0.9), (1, 0.5)], 5);
        probs.extend(steps(&[(1, 0.5), (1, 0.5)], 5));
        let out = d.decode(&probs, 2, 2, 5).unwrap();
        assert_eq!(out, [(" a".to_string(), 0.7), ("a".to_string(), 0.5)]);
    }

    #[test]
    fn shape_errors_name_both_numbers() {
        let d = decoder();
        let err = d.decode(&[0.0; 6624], 1, 1, 6624).unwrap_err();
        assert_eq!(err, RecError::Classes { expected: 5, got: 6624 });
        assert_eq!(
            err.to_string(),
            "CTC output has 6624 classes, but the dictionary has 5 (blank included)"
        );
        let err = d.decode(&[0.0; 9], 1, 2, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CTC output: expected batch 1 x time 2 x classes 5 = 10 values, got 9"
        );
    }

    #[test]
    fn labels_drop_padding_and_keep_repeats() {
        let d = decoder();
        assert_eq!(d.decode_label(&[1, 1, 0, 3, 4, 2, 0, 0]).unwrap(), "aa中 b");
        assert_eq!(
            d.decode_label(&[1, 5]).unwrap_err(),
            RecError::LabelIndex { index: 5, len: 5 }
        );
    }

    #[test]
    fn arabic_runs_reverse_as_pieces() {
        // Python: pred_reverse("ابc 12.5ج") == "جc 12.5با"
        assert_eq!(reverse_rtl("ابc 12.5ج"), "جc 12.5با");
        assert_eq!(reverse_rtl(""), "");
    }
}
