//! Rotated rectangles as OpenCV 4.10 computes them: `convexHull` (Sklansky's scan, with its index-order
//! rotation of the result), `minAreaRect` (rotating calipers in `float`), `boxPoints`, and PaddleOCR's
//! `get_mini_boxes` corner order on top.
//!
//! PaddleOCR only ever calls these on integer points (contours and pyclipper's output), so only the
//! integer hull is here. Every float operation follows OpenCV's order and precision (`float` where OpenCV
//! uses `float`, `double` where it uses `double`), so corners come out bit for bit.

/// OpenCV's `RotatedRect`: centre, `(width, height)` and angle in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotatedRect {
    pub center: [f32; 2],
    pub size: [f32; 2],
    pub angle: f32,
}

fn sign(v: i64) -> i32 {
    (v > 0) as i32 - (v < 0) as i32
}

/// One of Sklansky's four chains over `order` (indices of points sorted by x, then y), from `start` to
/// `end`; returns the chain as positions in `order`.
fn sklansky(pts: &[[i32; 2]], order: &[usize], start: isize, end: isize, nsign: i32, sign2: i32) -> Vec<isize> {
    let p = |i: isize| pts[order[i as usize]];
    let incr: isize = if end > start { 1 } else { -1 };
    if start == end || p(start) == p(end) {
        return vec![start];
    }
    let (mut pprev, mut pcur, mut pnext) = (start, start + incr, start + 2 * incr);
    let mut stack = vec![pprev, pcur, pnext];
    let after_end = end + incr;
    while pnext != after_end {
        let (cur, next) = (p(pcur), p(pnext));
        if cur == next {
            pnext += incr;
            *stack.last_mut().expect("non-empty") = pnext;
            continue;
        }
        let by = (next[1] - cur[1]) as i64;
        if sign(by) != nsign {
            let prev = p(pprev);
            let (ax, ay) = ((cur[0] - prev[0]) as i64, (cur[1] - prev[1]) as i64);
            let bx = (next[0] - cur[0]) as i64;
            let convexity = ay * bx - ax * by;
            if sign(convexity) == sign2 && (ax != 0 || ay != 0) {
                pprev = pcur;
                pcur = pnext;
                pnext += incr;
                stack.push(pnext);
            } else if pprev == start {
                pcur = pnext;
                stack[1] = pcur;
                pnext += incr;
                stack[2] = pnext;
            } else {
                let n = stack.len();
                stack[n - 2] = pnext;
                pcur = pprev;
                pprev = stack[n - 4];
                stack.pop();
            }
        } else {
            pnext += incr;
            *stack.last_mut().expect("non-empty") = pnext;
        }
    }
    stack.pop();
    stack
}

/// `cv::convexHull(points, hull, clockwise = false, returnPoints)` on integer points, as indices into
/// `pts` in OpenCV's order (counter-clockwise in image axes, starting where OpenCV starts).
pub fn convex_hull(pts: &[[i32; 2]]) -> Vec<usize> {
    let total = pts.len();
    if total == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..total).collect();
    // OpenCV sorts pointers by (x, y, address): the address is the input order.
    order.sort_by(|&a, &b| (pts[a][0], pts[a][1], a).cmp(&(pts[b][0], pts[b][1], b)));
    let (mut miny, mut maxy) = (0, 0);
    for i in 1..total {
        let y = pts[order[i]][1];
        if pts[order[miny]][1] > y {
            miny = i;
        }
        if pts[order[maxy]][1] < y {
            maxy = i;
        }
    }
    if pts[order[0]] == pts[order[total - 1]] {
        return vec![0];
    }
    let last = total as isize - 1;
    let at = |s: &[isize], i: usize| order[s[i] as usize];

    let mut hull = Vec::new();
    // Upper half (counter-clockwise output swaps the two chains).
    let tl = sklansky(pts, &order, 0, maxy as isize, -1, 1);
    let tr = sklansky(pts, &order, last, maxy as isize, -1, -1);
    let (tl, tr) = (tr, tl);
    for i in 0..tl.len() - 1 {
        hull.push(at(&tl, i));
    }
    for i in (1..tr.len()).rev() {
        hull.push(at(&tr, i));
    }
    let stop = if tr.len() > 2 {
        Some(tr[1])
    } else if tl.len() > 2 {
        Some(tl[tl.len() - 2])
    } else {
        None
    };
    // Lower half.
    let bl = sklansky(pts, &order, 0, miny as isize, 1, -1);
    let br = sklansky(pts, &order, last, miny as isize, 1, 1);
    let (mut bl_count, mut br_count) = (bl.len(), br.len());
    if let Some(stop) = stop {
        let check = if bl_count > 2 {
            Some(bl[1])
        } else if bl_count + br_count > 2 {
            Some(br[2 - bl_count])
        } else {
            None
        };
        if let Some(check) = check
            && (check == stop || pts[order[check as usize]] == pts[order[stop as usize]])
        {
            // All points on one line: the lower half mirrors the upper one.
            bl_count = bl_count.min(2);
            br_count = br_count.min(2);
        }
    }
    for i in 0..bl_count - 1 {
        hull.push(at(&bl, i));
    }
    for i in (1..br_count).rev() {
        hull.push(at(&br, i));
    }
    rotate_to_index_order(&mut hull);
    hull
}

/// OpenCV's last step: rotate the hull so its input indices ascend (or descend) when they can.
fn rotate_to_index_order(hull: &mut Vec<usize>) {
    let nout = hull.len();
    if nout < 3 {
        return;
    }
    let (mut min_idx, mut max_idx, mut lt) = (0usize, 0usize, 0isize);
    for i in 1..nout {
        let idx = hull[i];
        lt += (hull[i - 1] < idx) as isize;
        if lt > 1 && lt <= i as isize - 2 {
            break;
        }
        if idx < hull[min_idx] {
            min_idx = i;
        }
        if idx > hull[max_idx] {
            max_idx = i;
        }
    }
    let mmdist = max_idx.abs_diff(min_idx);
    if (mmdist == 1 || mmdist == nout - 1) && (lt <= 1 || lt >= nout as isize - 2) {
        let ascending = (max_idx + 1) % nout == min_idx;
        let i0 = if ascending { min_idx } else { max_idx };
        if i0 > 0 {
            let mut rotated = Vec::with_capacity(nout);
            let mut j = i0;
            for i in 0..nout {
                let curr = hull[j];
                rotated.push(curr);
                let next_j = if j + 1 < nout { j + 1 } else { 0 };
                if i < nout - 1 && ascending != (curr < hull[next_j]) {
                    return;
                }
                j = next_j;
            }
            *hull = rotated;
        }
    }
}

/// OpenCV's rotating calipers for the minimum-area rectangle over a convex hull; returns the corner and
/// the two side vectors.
fn rotating_calipers(points: &[[f32; 2]]) -> [[f32; 2]; 3] {
    let n = points.len();
    let mut vect = vec![[0f32; 2]; n];
    let mut inv_len = vec![0f32; n];
    let (mut left, mut bottom, mut right, mut top) = (0, 0, 0, 0);
    let mut pt0 = points[0];
    let (mut left_x, mut right_x, mut top_y, mut bottom_y) = (pt0[0], pt0[0], pt0[1], pt0[1]);
    for i in 0..n {
        if pt0[0] < left_x {
            left_x = pt0[0];
            left = i;
        }
        if pt0[0] > right_x {
            right_x = pt0[0];
            right = i;
        }
        if pt0[1] > top_y {
            top_y = pt0[1];
            top = i;
        }
        if pt0[1] < bottom_y {
            bottom_y = pt0[1];
            bottom = i;
        }
        let pt = points[if i + 1 < n { i + 1 } else { 0 }];
        let dx = (pt[0] - pt0[0]) as f64;
        let dy = (pt[1] - pt0[1]) as f64;
        vect[i] = [dx as f32, dy as f32];
        inv_len[i] = (1.0 / (dx * dx + dy * dy).sqrt()) as f32;
        pt0 = pt;
    }

    // OpenCV still computes the hull's orientation here, but since it picks the caliper by comparing rotated
    // edge vectors, the starting base never matters: every step overwrites it.
    let (mut base_a, mut base_b);
    let mut seq = [bottom, right, top, left];
    let mut minarea = f32::MAX;
    let mut best = (0usize, 0f32, 0f32, 0f32, 0f32, 0usize);

    // Is `v1` clockwise of `v2` (in y-up terms)?
    let first_is_right = |v1: [f32; 2], v2: [f32; 2]| v1[1] * v2[0] + (-v1[0]) * v2[1] < 0.0;
    for _ in 0..n {
        let rot = [
            vect[seq[0]],
            [vect[seq[1]][1], -vect[seq[1]][0]],
            [-vect[seq[2]][0], -vect[seq[2]][1]],
            [-vect[seq[3]][1], vect[seq[3]][0]],
        ];
        let mut main = 0;
        for i in 1..4 {
            if first_is_right(rot[i], rot[main]) {
                main = i;
            }
        }
        let p = seq[main];
        let (lead_x, lead_y) = (vect[p][0] * inv_len[p], vect[p][1] * inv_len[p]);
        (base_a, base_b) = match main {
            0 => (lead_x, lead_y),
            1 => (lead_y, -lead_x),
            2 => (-lead_x, -lead_y),
            _ => (-lead_y, lead_x),
        };
        seq[main] += 1;
        if seq[main] == n {
            seq[main] = 0;
        }
        let dx = points[seq[1]][0] - points[seq[3]][0];
        let dy = points[seq[1]][1] - points[seq[3]][1];
        let width = dx * base_a + dy * base_b;
        let dx = points[seq[2]][0] - points[seq[0]][0];
        let dy = points[seq[2]][1] - points[seq[0]][1];
        let height = -dx * base_b + dy * base_a;
        let area = width * height;
        if area <= minarea {
            minarea = area;
            best = (seq[3], base_a, width, base_b, height, seq[0]);
        }
    }
    let (left_i, a1, width, b1, height, bottom_i) = best;
    let (a2, b2) = (-b1, a1);
    let c1 = a1 * points[left_i][0] + points[left_i][1] * b1;
    let c2 = a2 * points[bottom_i][0] + points[bottom_i][1] * b2;
    let idet = 1.0f32 / (a1 * b2 - a2 * b1);
    let px = (c1 * b2 - c2 * b1) * idet;
    let py = (a1 * c2 - a2 * c1) * idet;
    [[px, py], [a1 * width, b1 * width], [a2 * height, b2 * height]]
}

/// `cv::minAreaRect` of integer points; `None` for no points.
pub fn min_area_rect(pts: &[[i32; 2]]) -> Option<RotatedRect> {
    if pts.is_empty() {
        return None;
    }
    let hull: Vec<[f32; 2]> = convex_hull(pts)
        .into_iter()
        .map(|i| [pts[i][0] as f32, pts[i][1] as f32])
        .collect();
    let mut rect = RotatedRect {
        center: [0.0; 2],
        size: [0.0; 2],
        angle: 0.0,
    };
    match hull.len() {
        0 => {}
        1 => rect.center = hull[0],
        2 => {
            let (p0, p1) = (hull[0], hull[1]);
            rect.center = [(p0[0] + p1[0]) * 0.5, (p0[1] + p1[1]) * 0.5];
            let dx = (p1[0] - p0[0]) as f64;
            let dy = (p1[1] - p0[1]) as f64;
            rect.size = [(dx * dx + dy * dy).sqrt() as f32, 0.0];
            rect.angle = dy.atan2(dx) as f32;
        }
        _ => {
            let [o0, o1, o2] = rotating_calipers(&hull);
            rect.center = [o0[0] + (o1[0] + o2[0]) * 0.5, o0[1] + (o1[1] + o2[1]) * 0.5];
            let len = |v: [f32; 2]| (v[0] as f64 * v[0] as f64 + v[1] as f64 * v[1] as f64).sqrt() as f32;
            rect.size = [len(o1), len(o2)];
            rect.angle = (o1[1] as f64).atan2(o1[0] as f64) as f32;
        }
    }
    // `angle * 180` is a float product in OpenCV; only the division by pi is in double.
    rect.angle = ((rect.angle * 180.0) as f64 / std::f64::consts::PI) as f32;
    Some(rect)
}

/// `cv::boxPoints`: the four corners, in OpenCV's order.
pub fn box_points(r: &RotatedRect) -> [[f32; 2]; 4] {
    let angle = r.angle as f64 * std::f64::consts::PI / 180.0;
    let b = angle.cos() as f32 * 0.5;
    let a = angle.sin() as f32 * 0.5;
    let ([cx, cy], [w, h]) = (r.center, r.size);
    let p0 = [cx - a * h - b * w, cy + b * h - a * w];
    let p1 = [cx + a * h - b * w, cy - b * h - a * w];
    [
        p0,
        p1,
        [2.0 * cx - p0[0], 2.0 * cy - p0[1]],
        [2.0 * cx - p1[0], 2.0 * cy - p1[1]],
    ]
}

/// PaddleOCR's `get_mini_boxes`: the minimum-area rectangle's corners ordered top-left, top-right,
/// bottom-right, bottom-left (by PaddleOCR's rule: sort by x, then pick by y in each pair), and the length
/// of its shorter side. `None` for no points.
pub fn mini_box(pts: &[[i32; 2]]) -> Option<([[f32; 2]; 4], f32)> {
    let rect = min_area_rect(pts)?;
    let mut p = box_points(&rect);
    // Python's sorted() is stable.
    p.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
    let (i1, i4) = if p[1][1] > p[0][1] { (0, 1) } else { (1, 0) };
    let (i2, i3) = if p[3][1] > p[2][1] { (2, 3) } else { (3, 2) };
    Some(([p[i1], p[i2], p[i3], p[i4]], rect.size[0].min(rect.size[1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from OpenCV 4.10.0 (opencv-python-headless 4.10.0.84).
    #[test]
    fn axis_aligned_rectangle() {
        let r = min_area_rect(&[[0, 0], [10, 0], [10, 4], [0, 4]]).unwrap();
        assert_eq!(
            r,
            RotatedRect {
                center: [5.0, 2.0],
                size: [4.0, 10.0],
                angle: 90.0
            }
        );
        let p = box_points(&r);
        assert_eq!(p[1], [10.0, 0.0]);
        assert_eq!(p[0][1], 0.0);
        assert!(p[0][0] < 0.0 && p[0][0] > -1e-15);
    }

    #[test]
    fn rotated_rectangles() {
        let r = min_area_rect(&[[0, 0], [10, 5], [8, 9], [-2, 4]]).unwrap();
        assert_eq!(r.center, [4.0, 4.5]);
        assert_eq!(r.size, [11.18034, 4.4721355]);
        assert_eq!(r.angle, 26.56505);
        let r = min_area_rect(&[[0, 0], [10, -5], [12, -1], [2, 4]]).unwrap();
        assert_eq!(r.center, [5.9999995, -0.5]);
        assert_eq!(r.size, [4.4721355, 11.180341]);
        assert_eq!(r.angle, 63.43495);
    }

    #[test]
    fn hull_order_is_opencvs() {
        let pts = [[0, 0], [10, 0], [10, 4], [0, 4], [5, 2]];
        let hull: Vec<[i32; 2]> = convex_hull(&pts).into_iter().map(|i| pts[i]).collect();
        assert_eq!(hull, vec![[0, 0], [10, 0], [10, 4], [0, 4]]);
    }
}
