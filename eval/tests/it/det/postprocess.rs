//! `DBPostProcess` against the Python reference (`fixtures/db/`, from `scripts/oracle/db_postprocess_cases.py`):
//! synthetic maps, each under several option sets. Boxes must be equal, scores within 1e-5.

use sensgrid_eval::det::{BoxType, DbPostProcess, ProbMap, ScoreMode, ShapeInfo};
use serde_json::Value;

use super::{fixture, json, points_i64};

/// A map stored as little-endian `u16`, read as `float32(q) / float32(65535)` like the generator does.
fn read_map(name: &str, len: usize) -> Vec<f32> {
    let bytes = std::fs::read(fixture(&format!("db/{name}"))).unwrap();
    assert_eq!(bytes.len(), 2 * len, "{name}");
    bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]) as f32 / 65535.0f32)
        .collect()
}

fn options(o: &Value) -> DbPostProcess {
    DbPostProcess {
        thresh: o["thresh"].as_f64().unwrap(),
        box_thresh: o["box_thresh"].as_f64().unwrap(),
        max_candidates: o["max_candidates"].as_u64().unwrap() as usize,
        unclip_ratio: o["unclip_ratio"].as_f64().unwrap(),
        use_dilation: o["use_dilation"].as_bool().unwrap(),
        score_mode: match o["score_mode"].as_str().unwrap() {
            "fast" => ScoreMode::Fast,
            _ => ScoreMode::Slow,
        },
        box_type: match o["box_type"].as_str().unwrap() {
            "quad" => BoxType::Quad,
            _ => BoxType::Poly,
        },
    }
}

fn check(box_type: &str) {
    let maps = json("db/cases.json");
    let mut runs = 0;
    let mut boxes_seen = 0;
    for m in maps.as_array().unwrap() {
        let (h, w) = (
            m["height"].as_u64().unwrap() as usize,
            m["width"].as_u64().unwrap() as usize,
        );
        let data = read_map(m["file"].as_str().unwrap(), h * w);
        let shape: Vec<f64> = m["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let shape = ShapeInfo::from([shape[0], shape[1], shape[2], shape[3]]);
        for run in m["runs"].as_array().unwrap() {
            if run["options"]["box_type"] != box_type {
                continue;
            }
            runs += 1;
            let what = format!("{} {}", m["file"], run["options"]);
            let got = options(&run["options"])
                .boxes(ProbMap::new(&data, h, w).unwrap(), shape)
                .unwrap();
            let want_boxes: Vec<Vec<[i64; 2]>> = run["boxes"].as_array().unwrap().iter().map(points_i64).collect();
            let want_scores: Vec<f64> = run["scores"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got_boxes: Vec<Vec<[i64; 2]>> = got
                .iter()
                .map(|b| b.points.iter().map(|p| [p[0] as i64, p[1] as i64]).collect())
                .collect();
            assert_eq!(got_boxes, want_boxes, "{what}");
            for (g, w) in got.iter().zip(&want_scores) {
                assert!((g.score - w).abs() <= 1e-5, "{what}: score {} vs {w}", g.score);
            }
            boxes_seen += want_boxes.len();
        }
    }
    assert!(runs >= 6 && boxes_seen > 10, "{runs} runs, {boxes_seen} boxes");
}

#[test]
fn quad_boxes_match_paddleocr() {
    check("quad");
}

#[test]
fn poly_boxes_match_paddleocr() {
    check("poly");
}
