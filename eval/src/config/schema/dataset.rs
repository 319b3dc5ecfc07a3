//! `Eval.dataset`: the eval set in PaddleOCR's `SimpleDataSet` layout (`ppocr/data/simple_dataset.py`) and its
//! transforms, and the one key of `Eval.loader` sensgrid uses, `batch_size_per_card`. The rest of the loader
//! (shuffle, workers) is PaddleOCR's business and is ignored.

use std::path::PathBuf;

use crate::config::error::{ConfigError, Result};
use crate::config::read::{Field, Section};
use crate::config::tree::{Map, Origin, Value};

use super::transform::{self, Transform};

/// The `Eval.dataset` section.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalDataset {
    /// Image paths in the label files are relative to this.
    pub data_dir: PathBuf,
    /// Label files, one sample per line: `image path<delimiter>label`.
    pub label_file_list: Vec<PathBuf>,
    /// The share of each label file's lines used, one per file, each in (0, 1] (1.0 by default).
    pub ratio_list: Vec<f64>,
    /// Between the image path and the label (a tab by default).
    pub delimiter: String,
    /// sensgrid's own key, which [`crate::bundle::rebase`] sets on a worker: the bundle's file giving, for each
    /// line of its one label file, the submitter's label file, line and image path, so that errors name
    /// those. PaddleOCR's `SimpleDataSet` ignores keys it does not read.
    pub label_origins: Option<PathBuf>,
    pub transforms: Vec<Transform>,
}

/// Reads `Eval.dataset` (required) from the config's top-level map.
pub(crate) fn read(root: &Map, file: &Origin, global: Option<&Map>) -> Result<EvalDataset> {
    let eval = root
        .entry("Eval")
        .ok_or_else(|| ConfigError::key(file, "Eval", "missing section"))?;
    let dataset = match &eval.value.value {
        Value::Map(map) => map.entry("dataset"),
        Value::Null => None,
        _ => {
            let got = eval.value.describe();
            return Err(ConfigError::key(
                &eval.value.origin,
                "Eval",
                format!("expected a map, got {got}"),
            ));
        }
    }
    .ok_or_else(|| ConfigError::key(&eval.key_origin, "Eval.dataset", "missing section"))?;
    let s = Section::new(
        "Eval.dataset",
        &dataset.key_origin,
        Some(&dataset.value),
        &[
            "name",
            "data_dir",
            "label_file_list",
            "ratio_list",
            "delimiter",
            "transforms",
            "label_origins",
        ],
    )?;
    s.require("name", |f| {
        f.choice(&[("SimpleDataSet", ())]).map_err(|_| {
            f.error(format!(
                "unsupported dataset {} (sensgrid reads SimpleDataSet)",
                f.node.describe()
            ))
        })
    })?;
    let label_file_list = s.require("label_file_list", label_files)?;
    let ratio_list = match s.get("ratio_list", |f| ratios(f, label_file_list.len()))? {
        Some(ratios) => ratios,
        None => vec![1.0; label_file_list.len()],
    };
    Ok(EvalDataset {
        data_dir: s.require("data_dir", |f| f.path_buf())?,
        label_file_list,
        ratio_list,
        delimiter: s
            .get("delimiter", |f| match f.str()? {
                "" => Err(f.error("expected a delimiter, got an empty string")),
                d => Ok(d.to_owned()),
            })?
            .unwrap_or_else(|| "\t".into()),
        transforms: s.require("transforms", |f| transform::read_list(f, global))?,
        label_origins: s.get("label_origins", |f| f.path_buf())?,
    })
}

/// A non-empty list of paths; a single path is taken as a list of one, the natural
/// `-o Eval.dataset.label_file_list=test.txt` (PaddleOCR would only accept it with a numeric `ratio_list`).
fn label_files(f: Field<'_>) -> Result<Vec<PathBuf>> {
    if let Value::Str(_) = f.node.value {
        return Ok(vec![f.path_buf()?]);
    }
    let files = f.list(|item| item.path_buf())?;
    if files.is_empty() {
        return Err(f.error("expected at least one label file, got an empty list"));
    }
    Ok(files)
}

/// One ratio for every file, or a list with one per file, each in (0, 1].
fn ratios(f: Field<'_>, files: usize) -> Result<Vec<f64>> {
    let ratio = |x: Field<'_>| {
        let r = x.number_in(0.0, 1.0, true)?;
        if r > 0.0 {
            Ok(r)
        } else {
            Err(x.error("expected a ratio in (0, 1], got 0"))
        }
    };
    if let Value::Int(_) | Value::Float(_) = f.node.value {
        return Ok(vec![ratio(f)?; files]);
    }
    let ratios = f.list(ratio)?;
    if ratios.len() != files {
        return Err(f.error(format!(
            "expected one ratio per label file ({files}), got {}",
            ratios.len()
        )));
    }
    Ok(ratios)
}

/// `Eval.loader.batch_size_per_card`, when set (null is unset): an integer of at least 1. `Eval` itself was
/// checked by [`read`].
pub(crate) fn batch_size(root: &Map) -> Result<Option<usize>> {
    let Some(loader) = root
        .get("Eval")
        .and_then(|eval| eval.as_map())
        .and_then(|eval| eval.entry("loader"))
    else {
        return Ok(None);
    };
    Section::open("Eval.loader", &loader.key_origin, Some(&loader.value))?
        .get("batch_size_per_card", |f| f.positive_count())
}
