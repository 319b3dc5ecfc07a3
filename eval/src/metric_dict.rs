//! Metrics under PaddleOCR's names, as its `get_metric` returns them and sen.pickle's evaluations read
//! them: `precision`, `recall`, `hmean` for det; `acc`, `norm_edit_dis` for rec; `acc` for cls. The caller
//! adds what PaddleOCR's eval loop adds on top (`num_samples`, say) with [`MetricDict::insert`].

use std::collections::BTreeMap;

use crate::cls::ClsScores;
use crate::det::DetScores;
use crate::rec::RecScores;

/// Metric name to value, in name order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricDict(BTreeMap<String, f64>);

impl MetricDict {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one entry.
    pub fn insert(&mut self, key: impl Into<String>, value: f64) -> &mut Self {
        self.0.insert(key.into(), value);
        self
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }

    pub fn as_map(&self) -> &BTreeMap<String, f64> {
        &self.0
    }

    pub fn into_map(self) -> BTreeMap<String, f64> {
        self.0
    }
}

impl From<DetScores> for MetricDict {
    fn from(s: DetScores) -> Self {
        let mut d = MetricDict::new();
        d.insert("precision", s.precision)
            .insert("recall", s.recall)
            .insert("hmean", s.hmean);
        d
    }
}

impl From<RecScores> for MetricDict {
    fn from(s: RecScores) -> Self {
        let mut d = MetricDict::new();
        d.insert("acc", s.acc).insert("norm_edit_dis", s.norm_edit_dis);
        d
    }
}

impl From<ClsScores> for MetricDict {
    fn from(s: ClsScores) -> Self {
        let mut d = MetricDict::new();
        d.insert("acc", s.acc);
        d
    }
}

impl From<MetricDict> for BTreeMap<String, f64> {
    fn from(d: MetricDict) -> Self {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paddleocr_keys() {
        let det = MetricDict::from(DetScores {
            precision: 0.5,
            recall: 0.25,
            hmean: 1.0 / 3.0,
        });
        let keys: Vec<&str> = det.as_map().keys().map(String::as_str).collect();
        assert_eq!(keys, ["hmean", "precision", "recall"]);
        assert_eq!(det.get("recall"), Some(0.25));

        let mut rec = MetricDict::from(RecScores {
            acc: 0.75,
            norm_edit_dis: 0.9,
        });
        rec.insert("num_samples", 4.0);
        let map: BTreeMap<String, f64> = rec.into();
        assert_eq!(
            map,
            BTreeMap::from([
                ("acc".to_string(), 0.75),
                ("norm_edit_dis".to_string(), 0.9),
                ("num_samples".to_string(), 4.0)
            ])
        );

        let cls = MetricDict::from(ClsScores { acc: 1.0 });
        assert_eq!(cls.into_map(), BTreeMap::from([("acc".to_string(), 1.0)]));
    }
}
