//! Recognition targets as PaddleOCR's eval transforms encode them: `CTCLabelEncode`, and the extra rule
//! of `MultiLabelEncode` (PP-OCRv3/v4 configs, CTC plus a SAR or NRTR head).
//!
//! `CTCLabelEncode.encode(text)`, in order:
//! 1. an empty text, or one longer than `max_text_length` characters (Unicode scalar values, as Python
//!    counts them, before anything is dropped), gives `None`;
//! 2. with PaddleOCR's default dictionary the text is lower-cased;
//! 3. characters not in the dictionary are dropped (silently); the rest map to their index (the last
//!    entry, when the dictionary repeats one);
//! 4. nothing left gives `None`.
//!
//! `MultiLabelEncode` also runs the SAR (or NRTR) encoder on the same text, and that one gives `None` when
//! `len(encoded) >= max_text_length - 1`; either `None` makes the whole transform `None`.
//!
//! A `None` does not drop the sample: PaddleOCR's `SimpleDataSet.__getitem__` evaluates the next line
//! instead (see [`crate::substitute`]), so the set keeps its size and a neighbour counts twice.
//!
//! The metric's target is the label decoded back ([`super::CtcLabelDecode::decode_label`]): the text
//! with its out-of-dictionary characters gone, which [`CtcLabelEncode::target`] gives directly.

use super::CharacterDict;

/// Which PaddleOCR label transform the eval set uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelTransform {
    /// `CTCLabelEncode` alone (PP-OCRv2 and older configs).
    Ctc,
    /// `MultiLabelEncode`: CTC plus the SAR/NRTR length limit (PP-OCRv3 and v4 configs).
    Multi,
}

/// PaddleOCR's `CTCLabelEncode` (or `MultiLabelEncode`) for eval targets.
#[derive(Debug, Clone, PartialEq)]
pub struct CtcLabelEncode {
    dict: CharacterDict,
    /// `Global.max_text_length` (25 in PaddleOCR's rec configs).
    pub max_text_length: usize,
    pub transform: LabelTransform,
}

impl CtcLabelEncode {
    pub fn new(dict: CharacterDict, max_text_length: usize, transform: LabelTransform) -> Self {
        CtcLabelEncode {
            dict,
            max_text_length,
            transform,
        }
    }

    pub fn dict(&self) -> &CharacterDict {
        &self.dict
    }

    /// The label's indices (without the padding PaddleOCR adds up to `max_text_length`), or `None` when
    /// PaddleOCR's transform returns `None` for it.
    pub fn encode(&self, text: &str) -> Option<Vec<usize>> {
        let len = text.chars().count();
        if len == 0 || len > self.max_text_length {
            return None;
        }
        let lowered;
        let text = if self.dict.lowercases_labels() {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        let indices: Vec<usize> = text.chars().filter_map(|c| self.dict.index_of(c)).collect();
        if indices.is_empty() {
            return None;
        }
        // SARLabelEncode / NRTRLabelEncode: no room for the start and end tokens.
        if self.transform == LabelTransform::Multi && indices.len() + 1 >= self.max_text_length {
            return None;
        }
        Some(indices)
    }

    /// The text the metric compares predictions with: the encoded label decoded back, or `None` when the
    /// sample's transform returns `None`.
    pub fn target(&self, text: &str) -> Option<String> {
        let indices = self.encode(text)?;
        let entries = self.dict.entries();
        Some(indices.iter().map(|&i| entries[i].as_str()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder(max: usize, transform: LabelTransform) -> CtcLabelEncode {
        CtcLabelEncode::new(
            CharacterDict::from_characters(["a", "b", "中", "A"], true),
            max,
            transform,
        )
    }

    #[test]
    fn out_of_dictionary_characters_are_dropped() {
        let e = encoder(25, LabelTransform::Ctc);
        assert_eq!(e.encode("a中x b"), Some(vec![1, 3, 5, 2]));
        assert_eq!(e.target("a中x b").as_deref(), Some("a中 b"));
        assert_eq!(e.target("Ab").as_deref(), Some("Ab"));
    }

    #[test]
    fn empty_too_long_or_emptied_labels_are_none() {
        let e = encoder(4, LabelTransform::Ctc);
        assert_eq!(e.encode(""), None);
        assert_eq!(e.encode("xyz"), None);
        assert_eq!(e.encode("abab"), Some(vec![1, 2, 1, 2]));
        // Five characters are too many even though only four are in the dictionary.
        assert_eq!(e.encode("ababx"), None);
        // Length is counted in characters, not bytes.
        assert_eq!(e.encode("中中中中"), Some(vec![3; 4]));
    }

    #[test]
    fn multi_label_leaves_room_for_sar_tokens() {
        let e = encoder(5, LabelTransform::Multi);
        assert_eq!(e.encode("abab"), None);
        assert_eq!(e.encode("aba"), Some(vec![1, 2, 1]));
        // The limit counts what is left after dropping: four characters, three in the dictionary.
        assert_eq!(e.encode("abxa"), Some(vec![1, 2, 1]));
    }

    #[test]
    fn default_dictionary_lowercases_first() {
        let e = CtcLabelEncode::new(CharacterDict::default_alphanumeric(), 25, LabelTransform::Ctc);
        assert_eq!(e.target("Hello, World 42!").as_deref(), Some("helloworld42"));
        // The Kelvin sign lower-cases to 'k'.
        assert_eq!(e.target("\u{212A}").as_deref(), Some("k"));
    }
}
