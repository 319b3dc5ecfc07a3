//! PaddleOCR configs as sensgrid reads them: the YAML file as PaddleOCR's own configs have it, `-o KEY=VALUE`
//! overrides as PaddleOCR's `tools/program.py` applies them, and typed views of the sections sensgrid acts on.
//!
//! A loaded [`Config`] keeps the whole tree with the origin of every key and value ([`tree`]), so every
//! error, however late, says `file:line: key path: message` or names the override that set the value. The
//! strict sections ([`schema`]: `Sensitivity`, `Prune`, `Recover`, `PostProcess`, `Metric`, `Eval.dataset`)
//! refuse unknown and mistyped keys; everything else is kept and ignored. Typed reading is in `read.rs`,
//! overrides in [`overrides`], the skip patterns in [`glob`].
//!
//! ```no_run
//! # use sensgrid_eval::config::Config;
//! let config = Config::load("det.yml", &["Global.pretrained_model=det.onnx", "Eval.dataset.data_dir=/data"])?;
//! println!("{}", config.model_path().display());
//! # Ok::<(), sensgrid_eval::config::ConfigError>(())
//! ```

pub mod error;
pub mod glob;
pub mod overrides;
mod read;
pub mod schema;
pub mod tree;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{ConfigError, Result};
pub use overrides::Override;
pub use schema::dataset::EvalDataset;
pub use schema::metric::{Metric, MetricKind};
pub use schema::post_process::PostProcess;
pub use schema::prune::{MeasuredTarget, Prune, PruneTarget};
pub use schema::recover::Recover;
pub use schema::sensitivity::{Precision, Sensitivity};
pub use schema::transform::Transform;
pub use tree::{Node, Origin, Value};

/// The largest config file sensgrid reads, 1 MiB, checked before reading it, and the longest `-o` override.
/// PaddleOCR's configs take 2 to 10 KB; a config a hundred times that is not one, and must not travel to every
/// worker of a run. [`Config::from_yaml`] leaves the size of text already in memory to its caller: what
/// [`Config::to_yaml`] writes (larger than the file it came from) must read back whatever its size.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// A PaddleOCR config with its overrides applied and its strict sections checked.
#[derive(Clone, Debug)]
pub struct Config {
    path: PathBuf,
    tree: Node,
    views: schema::Views,
}

impl Config {
    /// Reads the config at `path` and applies `overrides`, each one `KEY=VALUE` as typed after `-o`. Several
    /// pairs after one `-o` and repeated `-o` flags are the same: pass the pairs of all flags in command-line
    /// order (`groups.concat()`).
    ///
    /// # Errors
    /// An unreadable file, a file over [`MAX_CONFIG_BYTES`], invalid YAML, a malformed override, a top-level
    /// section that is neither PaddleOCR's nor sensgrid's, or a strict section that does not check; the
    /// message is one line that starts with the file and line or with the override.
    pub fn load<S: AsRef<str>>(path: impl AsRef<Path>, overrides: &[S]) -> Result<Self> {
        let path = path.as_ref();
        let io = |reason| ConfigError::Io {
            path: path.to_owned(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > MAX_CONFIG_BYTES as u64 {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                size,
            });
        }
        // Bounded as well: a file can grow after its size was read, and a device reads as size 0.
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        Self::from_yaml(&text, path, overrides)
    }

    /// Like [`Config::load`] for a config already in memory; `path` is only used in messages. The size of
    /// `text` is the caller's to bound (see [`MAX_CONFIG_BYTES`]); what its aliases copy is bounded here.
    ///
    /// # Errors
    /// As [`Config::load`], less reading the file and its size.
    pub fn from_yaml<S: AsRef<str>>(text: &str, path: impl AsRef<Path>, overrides: &[S]) -> Result<Self> {
        let file: Arc<Path> = Arc::from(path.as_ref());
        let at_line = |line| Origin::File {
            path: file.clone(),
            line: Some(line),
        };
        let mut tree = tree::parse(text, &at_line).map_err(|e| ConfigError::Yaml {
            origin: Origin::File {
                path: file.clone(),
                line: e.line,
            },
            message: e.message,
        })?;
        let whole = Origin::File {
            path: file.clone(),
            line: None,
        };
        let Value::Map(root) = &mut tree.value else {
            let got = tree.describe();
            return Err(ConfigError::key(
                &whole,
                "",
                format!("expected a map of sections (Global, Eval, …), got {got}"),
            ));
        };
        overrides::apply_all(root, overrides)?;
        schema::check_sections(root)?;
        Self::check(path.as_ref(), tree, &whole)
    }

    /// Reads the typed views out of `tree`, whose top level is a map.
    fn check(path: &Path, tree: Node, whole: &Origin) -> Result<Self> {
        let root = tree.as_map().expect("checked by the caller");
        Ok(Self {
            path: path.to_owned(),
            views: schema::read(root, whole)?,
            tree,
        })
    }

    /// The config file, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole tree after overrides, with every key's and value's origin, as [`Config::to_yaml`] writes it.
    /// The keys sensgrid acts on are read through the typed views ([`schema`]), never from here.
    pub fn tree(&self) -> &Node {
        &self.tree
    }

    /// The whole tree after overrides as one YAML document, to hand a config to another process (a run's
    /// config travels to its workers this way). It is written in JSON's syntax, which YAML 1.2 reads as the
    /// same tree: every string quoted and every number exact (float_roundtrip), so no value changes type or
    /// digits on the way, whatever resolution rules the original file relied on.
    pub fn to_yaml(&self) -> String {
        fn json(node: &Node) -> serde_json::Value {
            use serde_json::Value as Json;
            match &node.value {
                Value::Null => Json::Null,
                Value::Bool(b) => Json::Bool(*b),
                Value::Int(i) => Json::from(*i),
                // JSON has no NaN or infinity; no PaddleOCR key takes one, so they travel as YAML's own text.
                Value::Float(f) => {
                    serde_json::Number::from_f64(*f).map_or_else(|| Json::from(f.to_string()), Json::Number)
                }
                Value::Str(s) => Json::from(s.as_str()),
                Value::Seq(items) => Json::Array(items.iter().map(json).collect()),
                Value::Map(map) => Json::Object(map.entries().map(|e| (e.key.clone(), json(&e.value))).collect()),
            }
        }
        serde_json::to_string_pretty(&json(&self.tree)).expect("a JSON value always serialises")
    }

    /// `Global.pretrained_model`: the ONNX model, made absolute against the current directory.
    pub fn model_path(&self) -> &Path {
        &self.views.global.model_path
    }

    /// `Global.character_dict_path`: the rec dictionary, one character per line.
    pub fn character_dict_path(&self) -> Option<&Path> {
        self.views.global.character_dict_path.as_deref()
    }

    /// `Global.use_space_char` (false when unset).
    pub fn use_space_char(&self) -> bool {
        self.views.global.use_space_char
    }

    /// `Sensitivity`, with defaults for whatever it leaves out (all of it when the section is absent).
    pub fn sensitivity(&self) -> &Sensitivity {
        &self.views.sensitivity
    }

    /// `Prune`, when the config has it.
    pub fn prune(&self) -> Option<&Prune> {
        self.views.prune.as_ref()
    }

    /// `Recover`, when the config has it.
    pub fn recover(&self) -> Option<&Recover> {
        self.views.recover.as_ref()
    }

    /// `PostProcess`, with `Global`'s values merged in as PaddleOCR does.
    pub fn post_process(&self) -> &PostProcess {
        &self.views.post_process
    }

    /// Where `PostProcess.name` is set (its line, or the override), for errors about the post-process found
    /// once the model is read.
    pub fn post_process_at(&self) -> &Origin {
        &self.views.post_process_at
    }

    /// `Metric`.
    pub fn metric(&self) -> &Metric {
        &self.views.metric
    }

    /// `Eval.dataset`, its transforms with `Global`'s values merged in as PaddleOCR does.
    pub fn eval_dataset(&self) -> &EvalDataset {
        &self.views.eval_dataset
    }

    /// `Eval.loader.batch_size_per_card`, at least 1, when the config sets it.
    pub fn eval_batch_size(&self) -> Option<usize> {
        self.views.eval_batch_size
    }
}
