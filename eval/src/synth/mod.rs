//! Synthetic datasets in PaddleOCR's SimpleDataSet layout, rendered offline and deterministically, for tests
//! and demos: `worker synth det|rec|cls --out DIR --count N --seed S`.
//!
//! `DIR/label.txt` has one line per image, `DIR/images/` the images:
//! - det: pages with two to eight lines, `images/img_0001.png\t[{"transcription": "…", "points": [[x, y], …]}]`,
//!   each box the tightest integer rectangle at the line's angle around its ink ([`det`]);
//! - rec: line crops, `images/word_0001.png\ttext` ([`crop::rec`]);
//! - cls: line crops, half turned 180°, `images/cls_0001.png\t0` or `\t180` ([`crop::cls`]).
//!
//! Text is Latin, digits, punctuation and common Chinese ([`text`]), 10 to 48 px high, in the fonts of one
//! directory ([`fonts`]), on flat, gradient, noisy or textured backgrounds ([`background`]), rotated up to
//! ±15° on pages and ±3° in crops, sometimes blurred, sometimes in low contrast, sometimes with sensor noise.
//!
//! Same seed, same fonts: the same bytes, on any machine. Everything is drawn from a per-sample SplitMix64
//! stream ([`rng`]) with plain IEEE arithmetic ([`math`] replaces the C library's `sin`, `cos` and `exp`), in one
//! thread, in a fixed order. Sample `i` does not depend on `--count`.
//!
//! What does not belong here: reading datasets back (the dataset module's) and running models (the worker's).

pub mod background;
pub mod canvas;
pub mod crop;
pub mod det;
pub mod encode;
pub mod error;
pub mod fonts;
pub mod line;
pub mod math;
pub mod raster;
pub mod rng;
pub mod text;
pub mod transform;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use encode::ImageFormat;
pub use error::SynthError;
pub use fonts::FontSet;

/// Which dataset to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text detection: pages with boxed lines.
    Det,
    /// Text recognition: line crops with their text.
    Rec,
    /// Text direction: line crops labelled 0 or 180.
    Cls,
}

impl Kind {
    /// The tag that gives each kind its own random streams: the rec and cls sets of one seed differ.
    pub(crate) fn stream(self) -> u64 {
        match self {
            Self::Det => 1,
            Self::Rec => 2,
            Self::Cls => 3,
        }
    }

    /// The image file names' prefix, as in PaddleOCR's examples.
    fn prefix(self) -> &'static str {
        match self {
            Self::Det => "img",
            Self::Rec => "word",
            Self::Cls => "cls",
        }
    }
}

impl FromStr for Kind {
    type Err = SynthError;

    fn from_str(s: &str) -> Result<Self, SynthError> {
        match s {
            "det" => Ok(Self::Det),
            "rec" => Ok(Self::Rec),
            "cls" => Ok(Self::Cls),
            other => Err(SynthError::Kind(other.to_string())),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Det => "det",
            Self::Rec => "rec",
            Self::Cls => "cls",
        })
    }
}

/// Where and what to write.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// The dataset directory; created when missing. Existing files of the same names are replaced; others stay.
    pub out: PathBuf,
    /// How many images.
    pub count: usize,
    pub seed: u64,
    pub format: ImageFormat,
    /// The directory of `.ttf`, `.otf` and `.ttc` files to draw with (see [`fonts`]).
    pub fonts: PathBuf,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub kind: Kind,
    /// `DIR/label.txt`.
    pub label_file: PathBuf,
    pub images: usize,
    /// det: the boxes, don't-care ones included.
    pub boxes: usize,
    /// det: the boxes labelled `###`.
    pub dont_care: usize,
    /// cls: the crops turned 180°.
    pub rotated: usize,
}

/// The fonts directory setup fills: `fonts/` at the repository root.
pub fn repo_fonts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fonts")
}

/// Writes a dataset.
///
/// # Errors
/// Fonts that are missing or unusable, a directory or file that cannot be written, an image the encoder refuses.
pub fn generate(kind: Kind, options: &SynthOptions) -> Result<Summary, SynthError> {
    let fonts = FontSet::load(&options.fonts)?;
    let images = options.out.join("images");
    std::fs::create_dir_all(&images).map_err(SynthError::io(&images))?;
    let mut summary = Summary {
        kind,
        label_file: options.out.join("label.txt"),
        images: options.count,
        boxes: 0,
        dont_care: 0,
        rotated: 0,
    };
    let mut labels = String::new();
    for i in 0..options.count {
        let name = format!("images/{}_{:04}.{}", kind.prefix(), i + 1, options.format.extension());
        let (image, label) = match kind {
            Kind::Det => {
                let page = det::page(&fonts, options.seed, i as u64);
                summary.boxes += page.lines.len();
                summary.dont_care += page.lines.iter().filter(|l| !l.legible).count();
                let label = page.label();
                (page.image, label)
            }
            Kind::Rec => {
                let crop = crop::rec(&fonts, options.seed, i as u64);
                (crop.image, crop.text)
            }
            Kind::Cls => {
                let crop = crop::cls(&fonts, options.seed, i as u64);
                summary.rotated += usize::from(crop.rotated);
                (crop.image, if crop.rotated { "180" } else { "0" }.to_string())
            }
        };
        let path = options.out.join(&name);
        let bytes = encode::encode(&image, options.format).map_err(|reason| SynthError::Encode {
            path: path.clone(),
            reason,
        })?;
        std::fs::write(&path, bytes).map_err(SynthError::io(&path))?;
        labels.push_str(&format!("{name}\t{label}\n"));
    }
    // The label file last, and whole: a dataset with a label file is complete.
    let part = options.out.join("label.txt.part");
    std::fs::write(&part, labels).map_err(SynthError::io(&part))?;
    std::fs::rename(&part, &summary.label_file).map_err(SynthError::io(&summary.label_file))?;
    Ok(summary)
}
