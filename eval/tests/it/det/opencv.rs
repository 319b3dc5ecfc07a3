//! The OpenCV primitives against OpenCV 4.10 (`fixtures/opencv_cases.json`, from
//! `scripts/oracle/opencv_cases.py`): contours, minimum-area rectangles and their corners, polygon fills.

use sensgrid_eval::det::approx::{approx_poly_dp_closed, arc_length_closed};
use sensgrid_eval::det::contours::find_contours;
use sensgrid_eval::det::raster::{Mask, fill_poly};
use sensgrid_eval::det::rect::{box_points, min_area_rect};
use serde_json::Value;

use super::{json, points_f64, points_i64};

fn mask_of(case: &Value) -> Mask {
    let (w, h) = (
        case["width"].as_u64().unwrap() as usize,
        case["height"].as_u64().unwrap() as usize,
    );
    let data: Vec<u8> = case["mask"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_str()
                .unwrap()
                .bytes()
                .map(|b| (b == b'#') as u8)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(data.len(), w * h);
    Mask {
        width: w,
        height: h,
        data,
    }
}

fn i32_points(v: &Value) -> Vec<[i32; 2]> {
    points_i64(v).into_iter().map(|[x, y]| [x as i32, y as i32]).collect()
}

#[test]
fn find_contours_matches_opencv() {
    let cases = json("opencv_cases.json");
    for (i, case) in cases["contours"].as_array().unwrap().iter().enumerate() {
        let m = mask_of(case);
        let want: Vec<Vec<[i32; 2]>> = case["contours"].as_array().unwrap().iter().map(i32_points).collect();
        assert_eq!(
            find_contours(&m.data, m.width, m.height),
            want,
            "case {i}: {:?}",
            case["mask"]
        );
    }
}

#[test]
fn min_area_rect_and_box_points_match_opencv() {
    let cases = json("opencv_cases.json");
    for (i, case) in cases["rects"].as_array().unwrap().iter().enumerate() {
        let pts = i32_points(&case["points"]);
        let r = min_area_rect(&pts).unwrap();
        let want = &case["rect"];
        let f = |v: &Value| v.as_f64().unwrap() as f32;
        let want_rect = (
            [f(&want[0][0]), f(&want[0][1])],
            [f(&want[1][0]), f(&want[1][1])],
            f(&want[2]),
        );
        assert_eq!((r.center, r.size, r.angle), want_rect, "case {i}: {pts:?}");
        let want_box: Vec<[f32; 2]> = points_f64(&case["box"])
            .iter()
            .map(|p| [p[0] as f32, p[1] as f32])
            .collect();
        assert_eq!(box_points(&r).to_vec(), want_box, "case {i}: {pts:?}");
    }
}

#[test]
fn fill_poly_matches_opencv() {
    let cases = json("opencv_cases.json");
    let mut failures = Vec::new();
    let all = cases["fills"].as_array().unwrap();
    for (i, case) in all.iter().enumerate() {
        let want = mask_of(case);
        let mut got = Mask::zeros(want.width, want.height);
        let pts = i32_points(&case["points"]);
        fill_poly(&mut got, &pts, 1);
        if got != want {
            let inside = pts
                .iter()
                .all(|p| p[0] >= 0 && p[1] >= 0 && (p[0] as usize) < want.width && (p[1] as usize) < want.height);
            let show = |m: &Mask| {
                m.data
                    .chunks(m.width)
                    .map(|r| r.iter().map(|&v| if v != 0 { '#' } else { '.' }).collect::<String>())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            failures.push(format!(
                "case {i} (inside: {inside}): {pts:?}\n{}\n--\n{}",
                show(&got),
                show(&want)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn arc_length_and_approx_poly_dp_match_opencv() {
    let cases = json("opencv_cases.json");
    let all = cases["approx"].as_array().unwrap();
    assert!(all.len() > 100);
    for (i, case) in all.iter().enumerate() {
        let pts = i32_points(&case["points"]);
        let length = arc_length_closed(&pts);
        assert_eq!(length, case["arc_length"].as_f64().unwrap(), "case {i}");
        let got = approx_poly_dp_closed(&pts, case["factor"].as_f64().unwrap() * length);
        assert_eq!(got, i32_points(&case["approx"]), "case {i}: {pts:?}");
    }
}
