//! `Metric`: which of PaddleOCR's metrics scores the eval set (`ppocr/metrics`), with its arguments.

use crate::config::error::{ConfigError, Result};
use crate::config::read::Section;
use crate::config::tree::{Entry, Origin};

/// The `Metric` section.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub kind: MetricKind,
    /// The key of the metric's result that ranks models (PaddleOCR's `main_indicator`); it is also the
    /// sensitivity's default metric.
    pub main_indicator: String,
}

/// The metric, by PaddleOCR's class name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Detection: precision, recall and their harmonic mean over matched boxes.
    DetMetric,
    /// Recognition: exact-match accuracy and normalised edit distance.
    RecMetric {
        /// Compare texts with spaces removed (PaddleOCR's default: true).
        ignore_space: bool,
        /// Compare only digits and ASCII letters, lower-cased (default: false).
        is_filter: bool,
    },
    /// Orientation classification: accuracy.
    ClsMetric,
}

impl MetricKind {
    /// PaddleOCR's class name.
    pub fn name(&self) -> &'static str {
        match self {
            MetricKind::DetMetric => "DetMetric",
            MetricKind::RecMetric { .. } => "RecMetric",
            MetricKind::ClsMetric => "ClsMetric",
        }
    }

    /// The keys of the dict the metric returns (its `get_metric`), any of which can rank models.
    pub fn keys(&self) -> &'static [&'static str] {
        match self {
            MetricKind::DetMetric => &["precision", "recall", "hmean"],
            MetricKind::RecMetric { .. } => &["acc", "norm_edit_dis"],
            MetricKind::ClsMetric => &["acc"],
        }
    }

    /// PaddleOCR's default `main_indicator`.
    fn default_indicator(&self) -> &'static str {
        match self {
            MetricKind::DetMetric => "hmean",
            MetricKind::RecMetric { .. } | MetricKind::ClsMetric => "acc",
        }
    }
}

/// Names the metric dict's keys accept, as choices for [`crate::config::read::Field::choice`].
pub(crate) fn key_choices(kind: &MetricKind) -> Vec<(&'static str, &'static str)> {
    kind.keys().iter().map(|&k| (k, k)).collect()
}

#[derive(Clone, Copy)]
enum Name {
    Det,
    Rec,
    Cls,
}

/// Reads `Metric` (required), and where its `name` is set; `file` locates a missing section.
pub(crate) fn read(entry: Option<&Entry>, file: &Origin) -> Result<(Metric, Origin)> {
    let Some(entry) = entry else {
        return Err(ConfigError::key(file, "Metric", "missing section"));
    };
    let section = Section::open("Metric", &entry.key_origin, Some(&entry.value))?;
    let names = [
        ("DetMetric", Name::Det),
        ("RecMetric", Name::Rec),
        ("ClsMetric", Name::Cls),
    ];
    let (name, name_at) = section
        .get("name", |f| Ok((f.choice(&names)?, f.node.origin.clone())))?
        .ok_or_else(|| section.missing("name", &format!("one of {}", names.map(|(name, _)| name).join(", "))))?;
    let kind = match name {
        Name::Det => {
            section.check_keys(&["name", "main_indicator"])?;
            MetricKind::DetMetric
        }
        Name::Cls => {
            section.check_keys(&["name", "main_indicator"])?;
            MetricKind::ClsMetric
        }
        Name::Rec => {
            section.check_keys(&["name", "main_indicator", "ignore_space", "is_filter"])?;
            MetricKind::RecMetric {
                ignore_space: section.get("ignore_space", |f| f.bool())?.unwrap_or(true),
                is_filter: section.get("is_filter", |f| f.bool())?.unwrap_or(false),
            }
        }
    };
    let main_indicator = section
        .get("main_indicator", |f| f.choice(&key_choices(&kind)))?
        .unwrap_or(kind.default_indicator())
        .to_owned();
    Ok((Metric { kind, main_indicator }, name_at))
}
