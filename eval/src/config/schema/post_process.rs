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
use crate::det::{BoxType, DbPostProcess, ScoreMode};

/// The `PostProcess` section.
#[derive(Clone, Debug, PartialEq)]
pub enum PostProcess {
    /// Differentiable-binarization boxes from a det probability map (`db_postprocess.py`), with the det
    /// code's defaults for what the section leaves out.
    DBPostProcess(DbPostProcess),
    CTCLabelDecode(CTCLabelDecode),
    ClsPostProcess(ClsPostProcess),
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

/// Reads `PostProcess` (required), with `Global`'s keys winning over the section's own; with it, where its
/// `name` is set.
pub(crate) fn read(entry: Option<&Entry>, file: &Origin, global: Option<&Map>) -> Result<(PostProcess, Origin)> {
    let Some(entry) = entry else {
        return Err(ConfigError::key(file, "PostProcess", "missing section"));
    };
    let section = Section::open("PostProcess", &entry.key_origin, Some(&entry.value))?;
    let names = [
        ("DBPostProcess", Name::Db),
        ("CTCLabelDecode", Name::Ctc),
        ("ClsPostProcess", Name::Cls),
    ];
    let (name, name_at) = section
        .get("name", |f| Ok((f.choice(&names)?, f.node.origin.clone())))?
        .ok_or_else(|| section.missing("name", &format!("one of {}", names.map(|(name, _)| name).join(", "))))?;
    // `name` is popped before Global is merged in, so it never comes from Global.
    let section = section.with_global(global);
    let post_process = match name {
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
            let defaults = DbPostProcess::default();
            let unit = |key: &str, default: f64| -> Result<f64> {
                Ok(section.get(key, |f| f.number_in(0.0, 1.0, true))?.unwrap_or(default))
            };
            PostProcess::DBPostProcess(DbPostProcess {
                thresh: unit("thresh", defaults.thresh)?,
                box_thresh: unit("box_thresh", defaults.box_thresh)?,
                max_candidates: section
                    .get("max_candidates", |f| f.positive_count())?
                    .unwrap_or(defaults.max_candidates),
                unclip_ratio: section
                    .get("unclip_ratio", |f| f.positive_number())?
                    .unwrap_or(defaults.unclip_ratio),
                use_dilation: section
                    .get("use_dilation", |f| f.bool())?
                    .unwrap_or(defaults.use_dilation),
                score_mode: section
                    .get("score_mode", |f| {
                        f.choice(&[("fast", ScoreMode::Fast), ("slow", ScoreMode::Slow)])
                    })?
                    .unwrap_or(defaults.score_mode),
                box_type: section
                    .get("box_type", |f| {
                        f.choice(&[("quad", BoxType::Quad), ("poly", BoxType::Poly)])
                    })?
                    .unwrap_or(defaults.box_type),
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
    };
    Ok((post_process, name_at))
}
