//! Planar polygon geometry for the detection metric, standing in for the three shapely calls PaddleOCR's
//! `DetectionIoUEvaluator` makes: `Polygon(p).is_valid and .is_simple`, `.area`, and
//! `a.intersection(b).area` (the union's area is `area(a) + area(b) - intersection`).
//!
//! Polygons are single rings without holes, as text boxes are; the closing vertex may be given or not.
//!
//! What is done, and where it can differ from shapely:
//! - **Validity** is GEOS's for one ring: at least three distinct vertices, non-zero area, no edge crossing
//!   or touching a non-adjacent edge, no vertex visited twice, no spike back along the previous edge.
//!   PaddleOCR skips invalid polygons (it does not `buffer(0)` them), and so does the metric here.
//! - **Intersection area** of two convex rings clips one by the other's half-planes (exact for
//!   axis-aligned integer boxes, where ties at IoU 0.5 are likeliest); of anything else, sums the signed
//!   overlaps of the two rings' triangle fans, which is the same area up to float rounding.
//! - Predicates use `f64` arithmetic: exact for integer coordinates below 2^26, as labels and boxes are.

/// A ring's vertices without a repeated closing vertex or consecutive duplicates.
fn clean(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut out: Vec<[f64; 2]> = Vec::with_capacity(points.len());
    for &p in points {
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    while out.len() > 1 && out.first() == out.last() {
        out.pop();
    }
    out
}

fn cross(o: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// The signed shoelace area (positive counter-clockwise in y-up axes).
pub fn signed_area(points: &[[f64; 2]]) -> f64 {
    let p = clean(points);
    let n = p.len();
    if n < 3 {
        return 0.0;
    }
    let x0 = p[0][0];
    let mut sum = 0.0;
    for i in 1..n {
        let (prev, cur, next) = (p[i - 1], p[i], p[(i + 1) % n]);
        sum += (cur[0] - x0) * (prev[1] - next[1]);
    }
    -sum / 2.0
}

/// Shapely's `area` of the polygon.
pub fn area(points: &[[f64; 2]]) -> f64 {
    signed_area(points).abs()
}

fn on_segment(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> bool {
    p[0] >= a[0].min(b[0]) && p[0] <= a[0].max(b[0]) && p[1] >= a[1].min(b[1]) && p[1] <= a[1].max(b[1])
}

/// Whether closed segments `ab` and `cd` share any point.
fn segments_touch(a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2]) -> bool {
    let (d1, d2) = (cross(c, d, a), cross(c, d, b));
    let (d3, d4) = (cross(a, b, c), cross(a, b, d));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0)) && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0)) {
        return true;
    }
    (d1 == 0.0 && on_segment(a, c, d))
        || (d2 == 0.0 && on_segment(b, c, d))
        || (d3 == 0.0 && on_segment(c, a, b))
        || (d4 == 0.0 && on_segment(d, a, b))
}

/// `Polygon(points).is_valid and Polygon(points).is_simple` for a single ring.
pub fn is_valid(points: &[[f64; 2]]) -> bool {
    if points.iter().any(|p| !p[0].is_finite() || !p[1].is_finite()) {
        return false;
    }
    let p = clean(points);
    let n = p.len();
    if n < 3 || signed_area(&p) == 0.0 {
        return false;
    }
    for i in 0..n {
        let (a, b) = (p[i], p[(i + 1) % n]);
        // A spike: the next edge turns straight back over this one.
        let c = p[(i + 2) % n];
        if cross(a, b, c) == 0.0 && ((c[0] - b[0]) * (a[0] - b[0]) + (c[1] - b[1]) * (a[1] - b[1])) > 0.0 {
            return false;
        }
        for j in i + 2..n {
            if i == 0 && j == n - 1 {
                continue; // adjacent through the closing vertex
            }
            if segments_touch(a, b, p[j], p[(j + 1) % n]) {
                return false;
            }
        }
    }
    true
}

fn is_convex(p: &[[f64; 2]]) -> bool {
    let n = p.len();
    let mut sign = 0.0f64;
    for i in 0..n {
        let c = cross(p[i], p[(i + 1) % n], p[(i + 2) % n]);
        if c != 0.0 {
            if sign != 0.0 && c.signum() != sign {
                return false;
            }
            sign = c.signum();
        }
    }
    true
}

/// Clips `subject` by each edge of the counter-clockwise convex `clip` (Sutherland and Hodgman).
fn clip_convex(subject: &[[f64; 2]], clip: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut out = subject.to_vec();
    let n = clip.len();
    for i in 0..n {
        if out.is_empty() {
            break;
        }
        let (a, b) = (clip[i], clip[(i + 1) % n]);
        let input = std::mem::take(&mut out);
        let m = input.len();
        for k in 0..m {
            let (cur, next) = (input[k], input[(k + 1) % m]);
            let (dc, dn) = (cross(a, b, cur), cross(a, b, next));
            if dc >= 0.0 {
                out.push(cur);
            }
            if (dc > 0.0 && dn < 0.0) || (dc < 0.0 && dn > 0.0) {
                let t = dc / (dc - dn);
                out.push([cur[0] + t * (next[0] - cur[0]), cur[1] + t * (next[1] - cur[1])]);
            }
        }
    }
    out
}

/// `p` counter-clockwise (in y-up axes).
fn ccw(p: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    let mut p = p;
    if signed_area(&p) < 0.0 {
        p.reverse();
    }
    p
}

/// The area of the intersection of two valid polygons.
pub fn intersection_area(a: &[[f64; 2]], b: &[[f64; 2]]) -> f64 {
    let (a, b) = (ccw(clean(a)), ccw(clean(b)));
    if a.len() < 3 || b.len() < 3 {
        return 0.0;
    }
    if is_convex(&a) && is_convex(&b) {
        return area(&clip_convex(&a, &b));
    }
    // Each ring's indicator is the signed sum of its fan triangles' indicators; the overlap of two such sums
    // is the sum of the pairwise triangle overlaps, each convex.
    let fan = |p: &[[f64; 2]]| -> Vec<([[f64; 2]; 3], f64)> {
        (1..p.len() - 1)
            .filter_map(|i| {
                let t = [p[0], p[i], p[i + 1]];
                let s = cross(t[0], t[1], t[2]);
                (s != 0.0).then(|| (if s > 0.0 { t } else { [t[0], t[2], t[1]] }, s.signum()))
            })
            .collect()
    };
    let (fa, fb) = (fan(&a), fan(&b));
    let mut total = 0.0;
    for (ta, sa) in &fa {
        for (tb, sb) in &fb {
            total += sa * sb * area(&clip_convex(ta, tb));
        }
    }
    total.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(x: f64, y: f64, s: f64) -> Vec<[f64; 2]> {
        vec![[x, y], [x + s, y], [x + s, y + s], [x, y + s]]
    }

    #[test]
    fn validity() {
        assert!(is_valid(&sq(0.0, 0.0, 1.0)));
        assert!(is_valid(&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]));
        assert!(!is_valid(&[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), "bow-tie");
        assert!(!is_valid(&[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), "collinear");
        assert!(!is_valid(&[[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), "spike");
        assert!(
            !is_valid(&[[0.0, 0.0], [4.0, 0.0], [2.0, 2.0], [4.0, 4.0], [0.0, 4.0], [2.0, 2.0]]),
            "touching"
        );
        assert!(!is_valid(&[[0.0, 0.0], [1.0, 0.0]]));
    }

    #[test]
    fn areas() {
        assert_eq!(area(&sq(0.0, 0.0, 2.0)), 4.0);
        assert_eq!(intersection_area(&sq(0.0, 0.0, 2.0), &sq(1.0, 1.0, 2.0)), 1.0);
        assert_eq!(intersection_area(&sq(0.0, 0.0, 2.0), &sq(5.0, 5.0, 2.0)), 0.0);
        // An L shape against a square over its notch.
        let l = [[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [2.0, 2.0], [2.0, 4.0], [0.0, 4.0]];
        let got = intersection_area(&l, &sq(1.0, 1.0, 2.0));
        assert!((got - 3.0).abs() < 1e-12, "{got}");
    }
}
