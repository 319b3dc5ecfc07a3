//! The detection metric against PaddleOCR's evaluator rules run with shapely (`fixtures/det_metric_cases.json`,
//! from `scripts/oracle/det_metric_cases.py`): per-image counts and the combined scores.

use sensgrid_eval::det::{DetMetric, GtPolygon, ImageCounts};

use super::{json, points_f64};

#[test]
fn counts_and_scores_match_paddleocr() {
    let cases = json("det_metric_cases.json");
    let mut metric = DetMetric::new();
    let images = cases["images"].as_array().unwrap();
    for (i, image) in images.iter().enumerate() {
        let gt: Vec<GtPolygon> = image["gt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| GtPolygon {
                points: points_f64(&g["points"]),
                ignore: g["ignore"].as_bool().unwrap(),
            })
            .collect();
        let det: Vec<Vec<[f64; 2]>> = image["det"].as_array().unwrap().iter().map(points_f64).collect();
        let c = &image["counts"];
        let want = ImageCounts {
            gt_care: c["gt_care"].as_u64().unwrap() as usize,
            det_care: c["det_care"].as_u64().unwrap() as usize,
            det_matched: c["det_matched"].as_u64().unwrap() as usize,
        };
        assert_eq!(metric.accumulate(&gt, &det), want, "image {i}");
    }
    let got = metric.finalize();
    let want = &cases["metrics"];
    assert_eq!(got.precision, want["precision"].as_f64().unwrap());
    assert_eq!(got.recall, want["recall"].as_f64().unwrap());
    assert_eq!(got.hmean, want["hmean"].as_f64().unwrap());
    assert_eq!(metric.totals().1, images.len());
}
