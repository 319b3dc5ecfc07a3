//! The fonts lines are drawn with: every `.ttf`, `.otf` and `.ttc` file of one directory, sorted by name.
//!
//! A face is used for Latin lines when it draws every printable ASCII character, and for Chinese lines when it
//! also draws every other character of [`super::text`]; a face that draws no Latin is skipped. A line's font
//! is drawn in two steps, a file and then one of its faces, so a collection of four variants of one design
//! weighs as much as a single font file. Which files there are is part of the dataset's definition: the same
//! seed with other fonts gives other images (setup pins them, see `scripts/font-debs.txt`).
//!
//! Files are kept as bytes and parsed per line ([`FontRef`] parses lazily): a 20 MB collection is read once, not
//! copied once per face.

use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontRef};

use super::SynthError;
use super::rng::Rng;
use super::text;

/// One face of a font file.
#[derive(Debug, Clone)]
pub struct Face {
    /// The file name, with `#index` when the file holds several faces.
    pub name: String,
    /// The face's index in its file.
    pub index: u32,
    /// Whether it draws the Chinese characters of the word lists (it always draws ASCII).
    pub chinese: bool,
}

/// One font file and its usable faces.
struct FontFile {
    data: Vec<u8>,
    faces: Vec<Face>,
}

/// The usable fonts of a directory.
pub struct FontSet {
    files: Vec<FontFile>,
}

impl FontSet {
    /// Loads every font file of `dir`.
    ///
    /// # Errors
    /// An unreadable directory or file, a font that does not parse, or no face for Latin or for Chinese lines.
    pub fn load(dir: &Path) -> Result<Self, SynthError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(SynthError::io(dir))?
            .map(|entry| entry.map(|e| e.path()).map_err(SynthError::io(dir)))
            .collect::<Result<_, _>>()?;
        paths.retain(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            matches!(ext.as_deref(), Some("ttf" | "otf" | "ttc")) && p.is_file()
        });
        paths.sort();
        let mut files = Vec::new();
        for path in &paths {
            let data = std::fs::read(path).map_err(SynthError::io(path))?;
            let count = collection_size(&data);
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut faces = Vec::new();
            for index in 0..count {
                let font = FontRef::try_from_slice_and_index(&data, index).map_err(|e| SynthError::Font {
                    path: path.clone(),
                    reason: format!("face {index}: {e}"),
                })?;
                if !draws(&font, LATIN.chars()) {
                    continue;
                }
                let chinese = draws(&font, text::special_characters());
                let name = if count > 1 {
                    format!("{file}#{index}")
                } else {
                    file.clone()
                };
                faces.push(Face { name, index, chinese });
            }
            if !faces.is_empty() {
                files.push(FontFile { data, faces });
            }
        }
        let set = Self { files };
        if set.files.is_empty() {
            return Err(SynthError::NoFont {
                dir: dir.to_path_buf(),
                what: "ASCII letters, digits and punctuation",
            });
        }
        if !set.faces().any(|f| f.chinese) {
            return Err(SynthError::NoFont {
                dir: dir.to_path_buf(),
                what: "the Chinese characters of the word lists",
            });
        }
        Ok(set)
    }

    /// The usable faces, in their fixed order.
    pub fn faces(&self) -> impl Iterator<Item = &Face> {
        self.files.iter().flat_map(|f| &f.faces)
    }

    /// A random face that draws `text` (a Chinese one when it has any Chinese character): a file, then a face.
    pub fn choose(&self, rng: &mut Rng, text: &str) -> (FontRef<'_>, &Face) {
        let chinese = text.chars().any(text::is_chinese);
        let usable = |face: &&Face| face.chinese || !chinese;
        // `load` checked that some face draws Chinese, and every kept file has a face that draws Latin.
        let files: Vec<&FontFile> = self
            .files
            .iter()
            .filter(|f| f.faces.iter().any(|x| usable(&x)))
            .collect();
        let file = *rng.pick(&files);
        let faces: Vec<&Face> = file.faces.iter().filter(usable).collect();
        let face = *rng.pick(&faces);
        let font = FontRef::try_from_slice_and_index(&file.data, face.index)
            .expect("the face parsed when the set was loaded, from the same bytes");
        (font, face)
    }
}

/// Printable ASCII but the space, which every Latin line may use.
const LATIN: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Whether `font` has a glyph (not `.notdef`) for every character.
fn draws(font: &impl Font, mut chars: impl Iterator<Item = char>) -> bool {
    chars.all(|c| font.glyph_id(c).0 != 0)
}

/// The number of faces in a font file: a TrueType collection (`ttcf`) says so in its header, anything else has
/// one (a malformed file then fails to parse with its own message).
fn collection_size(data: &[u8]) -> u32 {
    if data.len() >= 12 && &data[..4] == b"ttcf" {
        u32::from_be_bytes([data[8], data[9], data[10], data[11]]).max(1)
    } else {
        1
    }
}
