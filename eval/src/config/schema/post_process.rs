//! `PostProcess`: how model outputs become boxes, texts or labels, by PaddleOCR's class name
//! (`ppocr/postprocess`), with the defaults of the classes' code (not of any one config).
//!
//! PaddleOCR's `build_post_process` updates the section with the whole of `Global` before building the class,
//! so an argument that `Global` sets wins: that is how `CTCLabelDecode` gets `character_dict_path` and
//! `use_space_char`, and `ClsPostProcess` `label_list`.

use std::path::PathBuf;

use crate::config::error::{ConfigError, Result};
use crate::config::read::Section;
use crate::config::tree::{Entry, Map, Origin};

/// The `PostProcess` section.
#[derive(Clone, Debug, PartialEq)]
pub enum PostProcess {
    DBPostProcess(DBPostProcess),
    CTCLabelDecode(CTCLabelDecode),
    ClsPostProcess(ClsPostProcess),
}

/// Differentiable-binarization boxes from a det probability map (`db_postprocess.py`).
#[derive(Clone, Debug, PartialEq)]
pub struct DBPostProcess {
    /// Pixels above this probability are text (0.3).
    pub thresh: f64,
    /// Boxes whose mean probability is below this are dropped (0.7 in the code; configs often set 0.6).
    pub box_thresh: f64,
    /// At most this many contours are turned into boxes (1000).
    pub max_candidates: usize,
    /// How far a box is grown back out of the shrunk text region (2.0 in the code; configs often set 1.5).
    pub unclip_ratio: f64,
    /// Dilate the bitmap with a 2x2 kernel first (false).
    pub use_dilation: bool,
    pub score_mode: ScoreMode,
    pub box_type: BoxType,
}

/// How a box's score is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMode {
    /// `fast`: the mean over the box's bounding rectangle, masked by the box (the default).
    Fast,
    /// `slow`: the mean over the contour's polygon.
    Slow,
}

/// The shape of the boxes returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxType {
    /// `quad`: the minimum-area rectangle of each region (the default).
    Quad,
    /// `poly`: the region's polygon.
    Poly,
}

/// CTC greedy decoding of a rec model's output (`rec_postprocess.py`).
#[derive(Clone, Debug, PartialEq)]
pub struct CTCLabelDecode {
    /// One character per line; `None` means PaddleOCR's built-in `0-9a-z` (and lower-cased labels).
    pub character_dict_path: Option<PathBuf>,
    /// Append a space to the dictionary (false).
    pub use_space_char: bool,
}

/// Orientation labels from a cls model's output (`cls_postprocess.py`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClsPostProcess {
    /// The label of each class index (`['0', '180']`).
    pub label_list: Vec<String>,
}

impl PostProcess {
    /// PaddleOCR's class name.
    pub fn name(&self) -> &'static str {
        match self {
            PostProcess::DBPostProcess(_) => "DBPostProcess",
            PostProcess::CTCLabelDecode(_) => "CTCLabelDecode",
            PostProcess::ClsPostProcess(_) => "ClsPostProcess",
        }
    }
}

#[derive(Clone, Copy)]
enum Name {
    Db,
    Ctc,
    Cls,
}

/// Reads `PostProcess` (required), with `Global`'s keys winning over the section's own.
pub(crate) fn read(entry: Option<&Entry>, file: &Origin, global: Option<&Map>) -> Result<PostProcess> {
    let Some(entry) = entry else {
        return Err(ConfigError::key(file, "PostProcess", "missing section"));
    };
    let section = Section::open("PostProcess", &entry.key_origin, Some(&entry.value))?;
    let names = [
        ("DBPostProcess", Name::Db),
        ("CTCLabelDecode", Name::Ctc),
        ("ClsPostProcess", Name::Cls),
    ];
    let name = section
        .get("name", |f| f.choice(&names))?
        .ok_or_else(|| section.missing("name", "one of DBPostProcess, CTCLabelDecode, ClsPostProcess"))?;
    // `name` is popped before Global is merged in, so it never comes from Global.
    let section = section.with_global(global);
    Ok(match name {
        Name::Db => {
            section.check_keys(&[
                "name",
                "thresh",
                "box_thresh",
                "max_candidates",
                "unclip_ratio",
                "use_dilation",
                "score_mode",
                "box_type",
            ])?;
            let unit = |key: &str, default: f64| -> Result<f64> {
                Ok(section.get(key, |f| f.number_in(0.0, 1.0, true))?.unwrap_or(default))
            };
            PostProcess::DBPostProcess(DBPostProcess {
                thresh: unit("thresh", 0.3)?,
                box_thresh: unit("box_thresh", 0.7)?,
                max_candidates: section.get("max_candidates", |f| f.positive_count())?.unwrap_or(1000),
                unclip_ratio: section.get("unclip_ratio", |f| f.positive_number())?.unwrap_or(2.0),
                use_dilation: section.get("use_dilation", |f| f.bool())?.unwrap_or(false),
                score_mode: section
                    .get("score_mode", |f| {
                        f.choice(&[("fast", ScoreMode::Fast), ("slow", ScoreMode::Slow)])
                    })?
                    .unwrap_or(ScoreMode::Fast),
                box_type: section
                    .get("box_type", |f| {
                        f.choice(&[("quad", BoxType::Quad), ("poly", BoxType::Poly)])
                    })?
                    .unwrap_or(BoxType::Quad),
            })
        }
        Name::Ctc => {
            section.check_keys(&["name", "character_dict_path", "use_space_char"])?;
            PostProcess::CTCLabelDecode(CTCLabelDecode {
                character_dict_path: section.get("character_dict_path", |f| f.path_buf())?,
                use_space_char: section.get("use_space_char", |f| f.bool())?.unwrap_or(false),
            })
        }
        Name::Cls => {
            section.check_keys(&["name", "label_list"])?;
            PostProcess::ClsPostProcess(ClsPostProcess {
                label_list: section
                    .get("label_list", super::label_list)?
                    .unwrap_or_else(|| vec!["0".into(), "180".into()]),
            })
        }
    })
}
