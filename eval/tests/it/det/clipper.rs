//! `unclip` against pyclipper 1.3.0.post6 (`fixtures/clipper_cases.json`, from `scripts/oracle/clipper_cases.py`).

use sensgrid_eval::det::clipper::{IntPoint, unclip, unclip_distance};

use super::{json, points_f64, points_i64};

#[test]
fn unclip_matches_pyclipper_exactly() {
    let cases = json("clipper_cases.json");
    let cases = cases.as_array().expect("a list of cases");
    assert!(cases.len() > 400, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let points = points_f64(&case["points"]);
        let ratio = case["unclip_ratio"].as_f64().expect("ratio");
        let distance = unclip_distance(&points, ratio);
        let want_distance = case["distance"].as_f64().expect("distance");
        if distance.to_bits() != want_distance.to_bits() {
            failures.push(format!("{name}: distance {distance:?}, shapely {want_distance:?}"));
            continue;
        }
        let got = unclip(&points, ratio).unwrap();
        let want: Vec<Vec<IntPoint>> = case["expanded"]
            .as_array()
            .expect("polygons")
            .iter()
            .map(|p| points_i64(p).into_iter().map(|[x, y]| IntPoint::new(x, y)).collect())
            .collect();
        if got != want {
            failures.push(format!("{name}: got {got:?}\n  want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
