//! The character dictionary of a CTC recognition model, built as PaddleOCR's `BaseRecLabelDecode` and
//! `BaseRecLabelEncode` build it, or as rapidocr builds it from an ONNX model's metadata.
//!
//! PaddleOCR's rules:
//! - with `character_dict_path`, every line of the file (read as bytes, split on `\n`, decoded as UTF-8) is
//!   one entry, after `strip("\n").strip("\r\n")`: leading and trailing `\r` and `\n` go, nothing else (a
//!   line of spaces stays an entry of spaces, an empty line an empty entry). `use_space_char` appends `" "`;
//! - without a path the dictionary is `0123456789abcdefghijklmnopqrstuvwxyz`, `use_space_char` is ignored
//!   and the label encoder lower-cases its text first;
//! - CTC puts `"blank"` in front, at index 0: a model's class axis has `len(dict) + 1` entries;
//! - looking a character up (`self.dict`, built by enumerating the entries) finds its *last* index when an
//!   entry appears twice, and only single-character entries can ever match one character of a label;
//! - a dictionary path containing `arabic` makes the decoder reverse its text (see [`super::ctc`]).
//!
//! rapidocr (1.4.4) reads `character` from the ONNX metadata of PP-OCRv4 rec with Python's
//! `str.splitlines()`, always appends `" "` and puts `"blank"` in front, so for that model it is the same
//! dictionary as `ppocr_keys_v1.txt` with `use_space_char: true` ([`CharacterDict::from_onnx_metadata`]).
//!
//! What does not belong here: reading the ONNX file itself (the model crate does that).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::RecError;

/// PaddleOCR's dictionary when no `character_dict_path` is given.
pub const DEFAULT_CHARACTERS: &str = "0123456789abcdefghijklmnopqrstuvwxyz";

/// CTC's blank, always at index 0.
pub const BLANK: &str = "blank";

/// The entries of a CTC dictionary, blank first, with PaddleOCR's lookup of label characters.
#[derive(Debug, Clone, PartialEq)]
pub struct CharacterDict {
    /// `entries[0]` is [`BLANK`]; `entries[i]` is what class `i` decodes to.
    entries: Vec<String>,
    /// Each single-character entry and its last index (Python's dict comprehension keeps the last).
    lookup: HashMap<char, usize>,
    /// Labels are lower-cased before lookup (PaddleOCR's default dictionary only).
    lower: bool,
    /// Decoded text is reordered for right-to-left scripts (a dictionary path containing `arabic`).
    reverse: bool,
}

impl CharacterDict {
    /// PaddleOCR's dictionary without `character_dict_path`: digits and lower-case ASCII letters, labels
    /// lower-cased. `use_space_char` has no effect there, so it is not a parameter.
    pub fn default_alphanumeric() -> Self {
        let mut dict = Self::build(DEFAULT_CHARACTERS.chars().map(String::from).collect());
        dict.lower = true;
        dict
    }

    /// The dictionary of a `character_dict_path` file.
    ///
    /// # Errors
    /// [`RecError::DictRead`] when the file cannot be read, [`RecError::DictUtf8`] (naming the line) when a
    /// line is not UTF-8.
    pub fn from_file(path: impl AsRef<Path>, use_space_char: bool) -> Result<Self, RecError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| RecError::DictRead {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut chars = read_lines(&bytes, path)?;
        if use_space_char {
            chars.push(" ".to_string());
        }
        let mut dict = Self::build(chars);
        dict.reverse = path.to_string_lossy().contains("arabic");
        Ok(dict)
    }

    /// The dictionary a PaddleOCR config names: its `character_dict_path` (relative paths are the caller's
    /// to resolve), or the default one when there is none.
    ///
    /// # Errors
    /// As [`CharacterDict::from_file`].
    pub fn from_config(character_dict_path: Option<&Path>, use_space_char: bool) -> Result<Self, RecError> {
        match character_dict_path {
            Some(path) => Self::from_file(path, use_space_char),
            None => Ok(Self::default_alphanumeric()),
        }
    }

    /// A dictionary from its entries in order, as if each were a line of a dictionary file.
    pub fn from_characters<I, S>(characters: I, use_space_char: bool) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut chars: Vec<String> = characters.into_iter().map(Into::into).collect();
        if use_space_char {
            chars.push(" ".to_string());
        }
        Self::build(chars)
    }

    /// The dictionary rapidocr builds from an ONNX model's `character` metadata: the value split as
    /// Python's `str.splitlines()` splits it, then `" "` appended (always).
    pub fn from_onnx_metadata(character: &str) -> Self {
        Self::from_characters(split_lines(character), true)
    }

    fn build(chars: Vec<String>) -> Self {
        let mut entries = Vec::with_capacity(chars.len() + 1);
        entries.push(BLANK.to_string());
        entries.extend(chars);
        let mut lookup = HashMap::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let mut it = entry.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                lookup.insert(c, i);
            }
        }
        CharacterDict {
            entries,
            lookup,
            lower: false,
            reverse: false,
        }
    }

    /// The number of classes a CTC model over this dictionary outputs (blank included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: blank is always there. Present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, blank first.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// The entry class `index` decodes to.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.entries.get(index).map(String::as_str)
    }

    /// The index a label character encodes to: the last entry equal to it.
    pub fn index_of(&self, c: char) -> Option<usize> {
        self.lookup.get(&c).copied()
    }

    /// Whether labels are lower-cased before lookup (only PaddleOCR's default dictionary does).
    pub fn lowercases_labels(&self) -> bool {
        self.lower
    }

    /// Whether decoded text is reordered for right-to-left scripts (PaddleOCR's `reverse`).
    pub fn reverses_text(&self) -> bool {
        self.reverse
    }
}

/// The entries of a dictionary file: split on `\n` as `readlines()` does, then leading and trailing `\r`
/// and `\n` stripped (`strip("\n").strip("\r\n")` strips characters, not the two-character sequence).
fn read_lines(bytes: &[u8], path: &Path) -> Result<Vec<String>, RecError> {
    let mut lines = Vec::new();
    let mut rest = bytes;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        let text = std::str::from_utf8(line).map_err(|e| RecError::DictUtf8 {
            path: PathBuf::from(path),
            line: number,
            reason: e.to_string(),
        })?;
        lines.push(text.trim_matches(['\r', '\n']).to_string());
    }
    Ok(lines)
}

/// Python's `str.splitlines()`: splits at `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`, `\x1d`, `\x1e`, `\x85`,
/// U+2028 and U+2029; a boundary at the very end does not start another (empty) line.
pub fn split_lines(text: &str) -> Vec<String> {
    let is_boundary = |c: char| {
        matches!(
            c,
            '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    };
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if is_boundary(c) {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            lines.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_strip_only_cr_and_lf_at_both_ends() {
        let path = Path::new("d.txt");
        let lines = read_lines(b"a\r\n \n\n\r\rb\r\n\tc \r\nlast", path).unwrap();
        assert_eq!(lines, ["a", " ", "", "b", "\tc ", "last"]);
        assert_eq!(read_lines(b"", path).unwrap(), Vec::<String>::new());
        assert_eq!(read_lines(b"x\n", path).unwrap(), ["x"]);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named() {
        let err = read_lines(b"a\n\xff\n", Path::new("keys.txt")).unwrap_err();
        assert!(matches!(err, RecError::DictUtf8 { line: 2, .. }), "{err}");
        assert!(err.to_string().starts_with("keys.txt:2: not UTF-8"), "{err}");
    }

    #[test]
    fn splitlines_matches_python() {
        // Values from CPython 3.11: "a\nb\r\nc\rd\x0be\x85f\u2028g\n\n".splitlines()
        assert_eq!(
            split_lines("a\nb\r\nc\rd\u{0b}e\u{85}f\u{2028}g\n\n"),
            ["a", "b", "c", "d", "e", "f", "g", ""]
        );
        assert_eq!(split_lines(""), Vec::<String>::new());
        assert_eq!(split_lines("\n"), [""]);
        assert_eq!(split_lines("x\r"), ["x"]);
        // U+3000 (the ideographic space in ppocr_keys_v1) is not a boundary.
        assert_eq!(split_lines("a\n\u{3000}\nb"), ["a", "\u{3000}", "b"]);
    }

    #[test]
    fn blank_first_space_last_and_last_duplicate_wins() {
        let d = CharacterDict::from_characters(["a", " ", "b", "a", "ab", ""], true);
        assert_eq!(d.entries(), ["blank", "a", " ", "b", "a", "ab", "", " "]);
        assert_eq!(d.len(), 8);
        assert_eq!(d.index_of('a'), Some(4));
        assert_eq!(d.index_of(' '), Some(7));
        assert_eq!(d.index_of('b'), Some(3));
        assert_eq!(d.index_of('c'), None);
        assert!(!d.lowercases_labels());
    }

    #[test]
    fn default_dictionary_ignores_space_and_lowercases() {
        let d = CharacterDict::default_alphanumeric();
        assert_eq!(d.len(), 37);
        assert_eq!(d.get(1), Some("0"));
        assert_eq!(d.get(36), Some("z"));
        assert_eq!(d.index_of('A'), None);
        assert!(d.lowercases_labels());
        assert_eq!(CharacterDict::from_config(None, true).unwrap(), d);
    }

    #[test]
    fn onnx_metadata_gets_space_like_rapidocr() {
        let d = CharacterDict::from_onnx_metadata("'\n疗\n\u{3000}\nz");
        assert_eq!(d.entries(), ["blank", "'", "疗", "\u{3000}", "z", " "]);
    }
}
