//! `Global`: the keys of PaddleOCR's shared section that sensgrid reads. The rest (`use_gpu`, `epoch_num`,
//! save paths, …) is PaddleOCR's business and is kept but ignored; whatever `Global` sets also reaches
//! `PostProcess` and the transforms, as PaddleOCR merges it in ([`crate::config::read::Section::with_global`]).

use std::path::PathBuf;

use crate::config::error::{ConfigError, Result};
use crate::config::read::Section;
use crate::config::tree::{Entry, Origin};

/// The keys of `Global` that sensgrid reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Global {
    /// `pretrained_model`: the ONNX model, made absolute against the current directory.
    pub model_path: PathBuf,
    /// `character_dict_path`: the rec dictionary, one character per line.
    pub character_dict_path: Option<PathBuf>,
    /// `use_space_char` (false when unset).
    pub use_space_char: bool,
}

/// Reads `Global`, which must name the model; `file` locates a missing section.
pub(crate) fn read(entry: Option<&Entry>, file: &Origin) -> Result<Global> {
    let section = Section::open("Global", entry.map_or(file, |e| &e.key_origin), entry.map(|e| &e.value))?;
    let model_path = section
        .get("pretrained_model", |f| {
            let path = f.path_buf()?;
            if !path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("onnx")) {
                return Err(f.error(format!(
                    "expected the path of an .onnx model, got {} (set it with -o Global.pretrained_model=PATH)",
                    f.node.describe()
                )));
            }
            // PaddleOCR opens it relative to the current directory; fixing that now keeps the path right
            // whoever uses it later.
            std::path::absolute(&path).map_err(|reason| ConfigError::Io { path, reason })
        })?
        .ok_or_else(|| {
            section.missing(
                "pretrained_model",
                "the .onnx model to analyse; set it with -o Global.pretrained_model=PATH",
            )
        })?;
    Ok(Global {
        model_path,
        character_dict_path: section.get("character_dict_path", |f| f.path_buf())?,
        use_space_char: section.get("use_space_char", |f| f.bool())?.unwrap_or(false),
    })
}
