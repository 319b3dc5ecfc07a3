//! `cv::arcLength` and `cv::approxPolyDP` on closed integer contours, as PaddleOCR's `box_type: poly`
//! calls them (`approxPolyDP(contour, 0.002 * arcLength(contour, True), True)`): OpenCV's Douglas-Peucker,
//! which starts from an approximately farthest pair of points and ends with a pass that drops vertices on
//! almost straight runs.

/// `cv::arcLength(contour, closed = true)`: each side's length in `float`, summed in `double`.
pub fn arc_length_closed(pts: &[[i32; 2]]) -> f64 {
    if pts.len() <= 1 {
        return 0.0;
    }
    let mut prev = pts[pts.len() - 1].map(|v| v as f32);
    let mut perimeter = 0.0f64;
    for p in pts {
        let p = p.map(|v| v as f32);
        let (dx, dy) = (p[0] - prev[0], p[1] - prev[1]);
        perimeter += (dx * dx + dy * dy).sqrt() as f64;
        prev = p;
    }
    perimeter
}

/// `cv::approxPolyDP(contour, epsilon, closed = true)` on integer points.
pub fn approx_poly_dp_closed(src: &[[i32; 2]], epsilon: f64) -> Vec<[i32; 2]> {
    let count = src.len();
    if count == 0 {
        return Vec::new();
    }
    let eps = epsilon * epsilon;
    let mut dst: Vec<[i32; 2]> = Vec::with_capacity(count);
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let next = |pos: usize| if pos + 1 >= count { 0 } else { pos + 1 };

    // 1. An approximately farthest pair: three rounds of "farthest from the last start".
    let mut pos = 0usize;
    let mut right_start = 0usize;
    let mut start_pt = src[0];
    let mut le_eps = false;
    for _ in 0..3 {
        pos = (pos + right_start) % count;
        start_pt = src[pos];
        pos = next(pos);
        let mut max_dist = 0.0;
        for j in 1..count {
            let pt = src[pos];
            pos = next(pos);
            let dx = (pt[0] - start_pt[0]) as f64;
            let dy = (pt[1] - start_pt[1]) as f64;
            let dist = dx * dx + dy * dy;
            if dist > max_dist {
                max_dist = dist;
                right_start = j;
            }
        }
        le_eps = max_dist <= eps;
    }

    // 2. Two halves on the stack.
    if !le_eps {
        let slice_start = pos % count;
        let slice_end = (right_start + slice_start) % count;
        stack.push((slice_end, slice_start));
        stack.push((slice_start, slice_end));
    } else {
        dst.push(start_pt);
    }

    // 3. Split each slice at its farthest point until every point is within epsilon of its chord.
    while let Some((s_start, s_end)) = stack.pop() {
        let end_pt = src[s_end];
        let mut pos = s_start;
        let start_pt = src[pos];
        pos = next(pos);
        let mut split = 0usize;
        let le_eps = if pos != s_end {
            let dx = (end_pt[0] - start_pt[0]) as f64;
            let dy = (end_pt[1] - start_pt[1]) as f64;
            let mut max_dist = 0.0f64;
            while pos != s_end {
                let pt = src[pos];
                pos = next(pos);
                let dist = ((pt[1] - start_pt[1]) as f64 * dx - (pt[0] - start_pt[0]) as f64 * dy).abs();
                if dist > max_dist {
                    max_dist = dist;
                    split = (pos + count - 1) % count;
                }
            }
            max_dist * max_dist <= eps * (dx * dx + dy * dy)
        } else {
            true
        };
        if le_eps {
            dst.push(start_pt);
        } else {
            stack.push((split, s_end));
            stack.push((s_start, split));
        }
    }

    // 4. Drop vertices that sit on almost straight runs.
    let count = dst.len();
    let mut new_count = count;
    let mut pos = count - 1;
    let rd = |pos: &mut usize, dst: &[[i32; 2]]| {
        let p = dst[*pos];
        *pos = if *pos + 1 >= count { 0 } else { *pos + 1 };
        p
    };
    let mut start_pt = rd(&mut pos, &dst);
    let mut wpos = pos;
    let mut pt = rd(&mut pos, &dst);
    let mut i = 0;
    while i < count && new_count > 2 {
        let end_pt = rd(&mut pos, &dst);
        let dx = (end_pt[0] - start_pt[0]) as f64;
        let dy = (end_pt[1] - start_pt[1]) as f64;
        let dist = ((pt[0] - start_pt[0]) as f64 * dy - (pt[1] - start_pt[1]) as f64 * dx).abs();
        let inner = ((pt[0] - start_pt[0]) * (end_pt[0] - pt[0]) + (pt[1] - start_pt[1]) * (end_pt[1] - pt[1])) as f64;
        if dist * dist <= 0.5 * eps * (dx * dx + dy * dy) && dx != 0.0 && dy != 0.0 && inner >= 0.0 {
            new_count -= 1;
            start_pt = end_pt;
            dst[wpos] = end_pt;
            wpos = if wpos + 1 >= count { 0 } else { wpos + 1 };
            pt = rd(&mut pos, &dst);
            i += 2;
            continue;
        }
        start_pt = pt;
        dst[wpos] = pt;
        wpos = if wpos + 1 >= count { 0 } else { wpos + 1 };
        pt = end_pt;
        i += 1;
    }
    dst.truncate(new_count);
    dst
}
