//! Typed views of the strict sections, one module each, and of the keys of `Global` and `Eval.loader` sensgrid
//! reads: every config key the code acts on is read here, by [`read`], and nowhere else. Every key the strict
//! sections do not know is an error; everything else in a config (Train, Loss, Optimizer, Architecture, most of
//! Global, Eval.loader but its batch size) is kept in the tree and left alone. A top-level section that is not
//! PaddleOCR's or sensgrid's is an error.

pub mod dataset;
pub mod global;
pub mod metric;
pub mod post_process;
pub mod prune;
pub mod recover;
pub mod sensitivity;
pub mod transform;

use crate::config::error::{ConfigError, Result};
use crate::config::read::Field;
use crate::config::tree::{Map, Origin, Value};

use dataset::EvalDataset;
use global::Global;
use metric::Metric;
use post_process::PostProcess;
use prune::Prune;
use recover::Recover;
use sensitivity::Sensitivity;

/// The typed views of a config, with defaults filled in.
#[derive(Clone, Debug)]
pub(crate) struct Views {
    pub global: Global,
    pub sensitivity: Sensitivity,
    pub prune: Option<Prune>,
    pub recover: Option<Recover>,
    pub post_process: PostProcess,
    /// Where `PostProcess.name` is set, for errors about the post-process found once the model is read.
    pub post_process_at: Origin,
    pub metric: Metric,
    pub eval_dataset: EvalDataset,
    /// `Eval.loader.batch_size_per_card`, when set.
    pub eval_batch_size: Option<usize>,
}

/// Reads the typed views out of a config's top-level map; `whole` locates a missing section.
pub(crate) fn read(root: &Map, whole: &Origin) -> Result<Views> {
    let global_entry = root.entry("Global");
    let global = global::read(global_entry, whole)?;
    let global_map = global_entry.and_then(|e| e.value.as_map());
    let (metric, metric_at) = metric::read(root.entry("Metric"), whole)?;
    let (post_process, post_process_at) = post_process::read(root.entry("PostProcess"), whole, global_map)?;
    check_pairing(&post_process, &metric, &metric_at)?;
    Ok(Views {
        global,
        sensitivity: sensitivity::read(root.entry("Sensitivity"), whole, &metric)?,
        prune: prune::read(root.entry("Prune"))?,
        recover: recover::read(root.entry("Recover"))?,
        eval_dataset: dataset::read(root, whole, global_map)?,
        eval_batch_size: dataset::batch_size(root)?,
        post_process,
        post_process_at,
        metric,
    })
}

/// Refuses a metric that cannot score the post-process's output (PaddleOCR would fail mid-eval), at the line
/// of `Metric.name` (`metric_at`).
fn check_pairing(post_process: &PostProcess, metric: &Metric, metric_at: &Origin) -> Result<()> {
    let expected = match post_process {
        PostProcess::DBPostProcess(_) => "DetMetric",
        PostProcess::CTCLabelDecode(_) => "RecMetric",
        PostProcess::ClsPostProcess(_) => "ClsMetric",
    };
    if metric.kind.name() == expected {
        return Ok(());
    }
    Err(ConfigError::key(
        metric_at,
        "Metric.name",
        format!(
            "{} cannot score the output of {} (expected {expected})",
            metric.kind.name(),
            post_process.name()
        ),
    ))
}

/// The top-level sections of PaddleOCR's configs (`configs/{det,rec,cls}/**/*.yml`): the eight every config
/// has, and `profiler_options`, which the PP-OCRv4 and v5 configs carry at the top level.
const PADDLEOCR_SECTIONS: [&str; 9] = [
    "Global",
    "Architecture",
    "Loss",
    "Optimizer",
    "PostProcess",
    "Metric",
    "Train",
    "Eval",
    "profiler_options",
];

/// The sections sensgrid adds to a PaddleOCR config; overrides create them when the file has none.
pub(crate) const OWN_SECTIONS: [&str; 3] = ["Sensitivity", "Prune", "Recover"];

/// Refuses a top-level section that is neither PaddleOCR's nor sensgrid's, at its own line: a misspelt
/// `Sensitivty` would otherwise be ignored and the analysis run with defaults.
pub(crate) fn check_sections(root: &Map) -> Result<()> {
    let known = || PADDLEOCR_SECTIONS.iter().chain(&OWN_SECTIONS).copied();
    for entry in root.entries() {
        if known().any(|name| name == entry.key) {
            continue;
        }
        let hint = match nearest(&entry.key, known()) {
            Some(name) => format!("did you mean {name}?"),
            None => format!("expected one of {}", known().collect::<Vec<_>>().join(", ")),
        };
        return Err(ConfigError::key(
            &entry.key_origin,
            "",
            format!("unknown section '{}' ({hint})", entry.key),
        ));
    }
    Ok(())
}

/// The name among `names` closest to `typed` when it is close enough to be a misspelling of it: within a
/// third of its length in edits (at least one), letter case ignored.
pub(crate) fn nearest<'a>(typed: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed_lower = typed.to_lowercase();
    names
        .into_iter()
        .map(|name| (edit_distance(&typed_lower, &name.to_lowercase()), name))
        .filter(|&(distance, name)| distance <= (name.chars().count() / 3).max(1))
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance in characters: insertions, deletions and substitutions, one each.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // The previous row of the dynamic programme: distances from a's prefix to every prefix of b.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// A cls `label_list`: non-empty, of strings, since the labels read from label files are strings and
/// PaddleOCR would silently match none of `[0, 180]`.
fn label_list(f: Field<'_>) -> Result<Vec<String>> {
    let labels = f.list(|item| match &item.node.value {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(_) | Value::Float(_) => {
            let got = item.node.describe();
            Err(item.error(format!("expected a string, got {got} (quote it: '{got}')")))
        }
        _ => Err(item.expected("a string")),
    })?;
    if labels.is_empty() {
        return Err(f.error("expected at least one label, got an empty list"));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("sensitivty", "sensitivity"), 1);
        assert_eq!(edit_distance("prnue", "prune"), 2);
    }

    #[test]
    fn nearest_suggests_only_close_names() {
        let names = PADDLEOCR_SECTIONS.iter().chain(&OWN_SECTIONS).copied();
        assert_eq!(nearest("Sensitivty", names.clone()), Some("Sensitivity"));
        assert_eq!(nearest("sensitivity", names.clone()), Some("Sensitivity"));
        assert_eq!(nearest("Evl", names.clone()), Some("Eval"));
        assert_eq!(nearest("Pruning", names.clone()), None);
        assert_eq!(nearest("Dataset", names), None);
    }
}
