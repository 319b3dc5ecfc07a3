//! PaddleOCR configs as sensgrid reads them: the YAML file as PaddleOCR's own configs have it, `-o KEY=VALUE`
//! overrides as PaddleOCR's `tools/program.py` applies them, and typed views of the sections sensgrid acts on.
//!
//! A loaded [`Config`] keeps the whole tree with the origin of every key and value ([`tree`]), so every
//! error, however late, says `file:line: key path: message` or names the override that set the value. The
//! strict sections ([`schema`]: `Sensitivity`, `Prune`, `PostProcess`, `Metric`, `Eval.dataset`) refuse
//! unknown and mistyped keys; everything else is kept and ignored. Typed reading is in `read.rs`, overrides in
//! [`overrides`], the skip patterns in [`glob`].
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
pub use schema::sensitivity::{Criterion, Precision, Sensitivity};
pub use schema::transform::Transform;
pub use tree::{Node, Origin, Value};

use read::Section;
use schema::{dataset, metric, post_process, prune, sensitivity};

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
    model_path: PathBuf,
    character_dict_path: Option<PathBuf>,
    use_space_char: bool,
    sensitivity: Sensitivity,
    prune: Option<Prune>,
    post_process: PostProcess,
    metric: Metric,
    eval_dataset: EvalDataset,
    eval_batch_size: Option<usize>,
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
        let global_entry = root.entry("Global");
        let global = Section::open(
            "Global",
            global_entry.map_or(whole, |e| &e.key_origin),
            global_entry.map(|e| &e.value),
        )?;
        let global_map = global_entry.and_then(|e| e.value.as_map());
        let model_path = global
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
                global.missing(
                    "pretrained_model",
                    "the .onnx model to analyse; set it with -o Global.pretrained_model=PATH",
                )
            })?;
        let metric = metric::read(root.entry("Metric"), whole)?;
        let post_process = post_process::read(root.entry("PostProcess"), whole, global_map)?;
        check_pairing(root, &post_process, &metric)?;
        Ok(Self {
            path: path.to_owned(),
            model_path,
            character_dict_path: global.get("character_dict_path", |f| f.path_buf())?,
            use_space_char: global.get("use_space_char", |f| f.bool())?.unwrap_or(false),
            sensitivity: sensitivity::read(root.entry("Sensitivity"), whole, &metric)?,
            prune: prune::read(root.entry("Prune"))?,
            eval_dataset: dataset::read(root, whole, global_map)?,
            eval_batch_size: dataset::batch_size(root)?,
            post_process,
            metric,
            tree,
        })
    }

    /// The config file, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole tree after overrides, with every key's and value's origin: the sections sensgrid does not
    /// check (Architecture, Train, …) are read from here.
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
        &self.model_path
    }

    /// `Global.character_dict_path`: the rec dictionary, one character per line.
    pub fn character_dict_path(&self) -> Option<&Path> {
        self.character_dict_path.as_deref()
    }

    /// `Global.use_space_char` (false when unset).
    pub fn use_space_char(&self) -> bool {
        self.use_space_char
    }

    /// `Sensitivity`, with defaults for whatever it leaves out (all of it when the section is absent).
    pub fn sensitivity(&self) -> &Sensitivity {
        &self.sensitivity
    }

    /// `Prune`, when the config has it.
    pub fn prune(&self) -> Option<&Prune> {
        self.prune.as_ref()
    }

    /// `PostProcess`, with `Global`'s values merged in as PaddleOCR does.
    pub fn post_process(&self) -> &PostProcess {
        &self.post_process
    }

    /// `Metric`.
    pub fn metric(&self) -> &Metric {
        &self.metric
    }

    /// `Eval.dataset`, its transforms with `Global`'s values merged in as PaddleOCR does.
    pub fn eval_dataset(&self) -> &EvalDataset {
        &self.eval_dataset
    }

    /// `Eval.loader.batch_size_per_card`, at least 1, when the config sets it.
    pub fn eval_batch_size(&self) -> Option<usize> {
        self.eval_batch_size
    }
}

/// Refuses a metric that cannot score the post-process's output (PaddleOCR would fail mid-eval).
fn check_pairing(root: &tree::Map, post_process: &PostProcess, metric: &Metric) -> Result<()> {
    let expected = match post_process {
        PostProcess::DBPostProcess(_) => "DetMetric",
        PostProcess::CTCLabelDecode(_) => "RecMetric",
        PostProcess::ClsPostProcess(_) => "ClsMetric",
    };
    if metric.kind.name() == expected {
        return Ok(());
    }
    let name = root
        .get("Metric")
        .and_then(|m| m.get("name"))
        .expect("a read metric has a name");
    Err(ConfigError::key(
        &name.origin,
        "Metric.name",
        format!(
            "{} cannot score the output of {} (expected {expected})",
            metric.kind.name(),
            post_process.name()
        ),
    ))
}
