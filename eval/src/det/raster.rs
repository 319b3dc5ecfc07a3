//! The raster operations PaddleOCR's DB post-processing calls, as OpenCV 4.10 does them:
//! `cv::fillPoly` (LINE_8 outline plus scanline fill in 16.16 fixed point, spans from the edges rounded to
//! the nearest pixel), `cv::mean` under a mask, and
//! `cv::dilate` with the 2x2 kernel of ones.

use super::stdsort::std_sort;

const XY_SHIFT: i64 = 16;
const XY_ONE: i64 = 1 << XY_SHIFT;

/// A single-channel `u8` image, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Mask {
    pub fn zeros(width: usize, height: usize) -> Self {
        Mask {
            width,
            height,
            data: vec![0; width * height],
        }
    }

    fn set(&mut self, x: i64, y: i64, v: u8) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.data[y as usize * self.width + x as usize] = v;
        }
    }
}

/// OpenCV's `clipLine` on a `width`x`height` image; false when the segment misses it.
fn clip_line(width: i64, height: i64, p1: &mut [i64; 2], p2: &mut [i64; 2]) -> bool {
    let (right, bottom) = (width - 1, height - 1);
    if width <= 0 || height <= 0 {
        return false;
    }
    let code = |p: &[i64; 2]| {
        (p[0] < 0) as i32 + (p[0] > right) as i32 * 2 + (p[1] < 0) as i32 * 4 + (p[1] > bottom) as i32 * 8
    };
    let (mut c1, mut c2) = (code(p1), code(p2));
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            p1[0] += ((a - p1[1]) as f64 * (p2[0] - p1[0]) as f64 / (p2[1] - p1[1]) as f64) as i64;
            p1[1] = a;
            c1 = (p1[0] < 0) as i32 + (p1[0] > right) as i32 * 2;
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            p2[0] += ((a - p2[1]) as f64 * (p2[0] - p1[0]) as f64 / (p2[1] - p1[1]) as f64) as i64;
            p2[1] = a;
            c2 = (p2[0] < 0) as i32 + (p2[0] > right) as i32 * 2;
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                p1[1] += ((a - p1[0]) as f64 * (p2[1] - p1[1]) as f64 / (p2[0] - p1[0]) as f64) as i64;
                p1[0] = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                p2[1] += ((a - p2[0]) as f64 * (p2[1] - p1[1]) as f64 / (p2[0] - p1[0]) as f64) as i64;
                p2[0] = a;
                c2 = 0;
            }
        }
    }
    (c1 | c2) == 0
}

/// `cv::line(img, p1, p2, color, 1, LINE_8)`: Bresenham from the left end, clipped to the image first.
fn line8(img: &mut Mask, mut p1: [i64; 2], mut p2: [i64; 2], color: u8) {
    let (w, h) = (img.width as i64, img.height as i64);
    let outside = |p: &[i64; 2]| p[0] < 0 || p[0] >= w || p[1] < 0 || p[1] >= h;
    if (outside(&p1) || outside(&p2)) && !clip_line(w, h, &mut p1, &mut p2) {
        return;
    }
    let (mut dx, mut dy) = (p2[0] - p1[0], p2[1] - p1[1]);
    if dx < 0 {
        dx = -dx;
        dy = -dy;
        p1 = p2;
    }
    let mut step_y = 1;
    if dy < 0 {
        dy = -dy;
        step_y = -1;
    }
    let vertical = dy > dx;
    if vertical {
        std::mem::swap(&mut dx, &mut dy);
    }
    let mut err = dx - (dy + dy);
    let (plus, minus) = (dx + dx, -(dy + dy));
    let mut p = p1;
    for _ in 0..=dx {
        img.set(p[0], p[1], color);
        let diagonal = err < 0;
        err += minus + if diagonal { plus } else { 0 };
        // The major axis always advances; the minor one on a diagonal step.
        if vertical {
            p[1] += step_y;
            if diagonal {
                p[0] += 1;
            }
        } else {
            p[0] += 1;
            if diagonal {
                p[1] += step_y;
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PolyEdge {
    y0: i64,
    y1: i64,
    x: i64,
    dx: i64,
    next: Option<usize>,
}

/// `cv::fillPoly(img, [pts], color)` with LINE_8 and no shift: the outline is drawn with lines, then every
/// scanline is filled between pairs of edges.
pub fn fill_poly(img: &mut Mask, pts: &[[i32; 2]], color: u8) {
    let (w, h) = (img.width as i64, img.height as i64);
    let mut edges: Vec<PolyEdge> = Vec::with_capacity(pts.len() + 2);
    let Some(&last) = pts.last() else { return };
    let mut pt0 = [(last[0] as i64) << XY_SHIFT, last[1] as i64];
    for &p in pts {
        let pt1 = [(p[0] as i64) << XY_SHIFT, p[1] as i64];
        let mut t0 = [(pt0[0] + (XY_ONE >> 1)) >> XY_SHIFT, pt0[1]];
        let mut t1 = [(pt1[0] + (XY_ONE >> 1)) >> XY_SHIFT, pt1[1]];
        line8(img, t0, t1, color);
        // The edge runs through pixel centres (x + 0.5) unless an end is off the image; then it runs
        // between the clipped ends when clipping leaves a slanted segment.
        let (mut p0c, mut p1c) = (pt0, pt1);
        let out = |t: &[i64; 2]| t[0] < 0 || t[0] >= w || t[1] < 0 || t[1] >= h;
        if out(&t0) || out(&t1) {
            clip_line(w, h, &mut t0, &mut t1);
            if t0[1] != t1[1] {
                p0c = [t0[0] << XY_SHIFT, t0[1]];
                p1c = [t1[0] << XY_SHIFT, t1[1]];
            }
        } else {
            p0c[0] += XY_ONE >> 1;
            p1c[0] += XY_ONE >> 1;
        }
        let ([x0c, y0c], [x1c, y1c]) = (p0c, p1c);
        if pt0[1] != pt1[1] {
            let dx = (x1c - x0c) / (y1c - y0c);
            let edge = if pt0[1] < pt1[1] {
                PolyEdge {
                    y0: pt0[1],
                    y1: pt1[1],
                    x: x0c + (pt0[1] - y0c) * dx,
                    dx,
                    next: None,
                }
            } else {
                PolyEdge {
                    y0: pt1[1],
                    y1: pt0[1],
                    x: x1c + (pt1[1] - y1c) * dx,
                    dx,
                    next: None,
                }
            };
            edges.push(edge);
        }
        pt0 = pt1;
    }
    fill_edge_collection(img, edges, color);
}

fn fill_edge_collection(img: &mut Mask, mut edges: Vec<PolyEdge>, color: u8) {
    let total = edges.len();
    if total < 2 {
        return;
    }
    let (w, h) = (img.width as i64, img.height as i64);
    let (mut y_min, mut y_max, mut x_min, mut x_max) = (i64::MAX, i64::MIN, i64::MAX, i64::MIN);
    for e in &edges {
        let x1 = e.x + (e.y1 - e.y0) * e.dx;
        y_min = y_min.min(e.y0);
        y_max = y_max.max(e.y1);
        x_min = x_min.min(e.x).min(x1);
        x_max = x_max.max(e.x).max(x1);
    }
    if y_max < 0 || y_min >= h || x_max < 0 || x_min >= (w << XY_SHIFT) {
        return;
    }
    std_sort(&mut edges, |a, b| {
        if a.y0 != b.y0 {
            a.y0 < b.y0
        } else if a.x != b.x {
            a.x < b.x
        } else {
            a.dx < b.dx
        }
    });
    // The end marker, then the head of the active list (OpenCV's `tmp`).
    edges.push(PolyEdge {
        y0: i64::MAX,
        y1: 0,
        x: 0,
        dx: 0,
        next: None,
    });
    let head = total + 1;
    edges.push(PolyEdge {
        y0: 0,
        y1: 0,
        x: 0,
        dx: 0,
        next: None,
    });

    let mut i = 0usize;
    let y_max = y_max.min(h);
    let mut y = edges[0].y0;
    while y < y_max {
        let mut draw = false;
        let clipline = y < 0;
        let mut prelast = head;
        let mut last = edges[head].next;
        while last.is_some() || edges[i].y0 == y {
            if let Some(l) = last
                && edges[l].y1 == y
            {
                // Drop the edge at its lower end.
                edges[prelast].next = edges[l].next;
                last = edges[l].next;
                continue;
            }
            let keep_prelast = prelast;
            match last {
                Some(l) if edges[i].y0 > y || edges[l].x < edges[i].x => {
                    prelast = l;
                    last = edges[l].next;
                }
                _ if i < total => {
                    // Insert the next edge when y reaches its upper end.
                    edges[prelast].next = Some(i);
                    edges[i].next = last;
                    prelast = i;
                    i += 1;
                }
                _ => break,
            }
            if draw {
                if !clipline {
                    let (a, b) = (edges[keep_prelast].x, edges[prelast].x);
                    let (lo, hi) = if a > b { (b, a) } else { (a, b) };
                    let mut x1 = lo >> XY_SHIFT;
                    let mut x2 = hi >> XY_SHIFT;
                    if x1 < w && x2 >= 0 {
                        x1 = x1.max(0);
                        x2 = x2.min(w - 1);
                        let row = y as usize * img.width;
                        for x in x1..=x2 {
                            img.data[row + x as usize] = color;
                        }
                    }
                }
                edges[keep_prelast].x += edges[keep_prelast].dx;
                edges[prelast].x += edges[prelast].dx;
            }
            draw = !draw;
        }

        // Bubble sort the active list by x.
        let mut keep_prelast: Option<usize> = None;
        loop {
            let mut prelast = head;
            let mut last = edges[head].next;
            let mut last_exchange = None;
            while let Some(l) = last {
                if Some(l) == keep_prelast {
                    break;
                }
                let Some(te) = edges[l].next else { break };
                if edges[l].x > edges[te].x {
                    edges[prelast].next = Some(te);
                    edges[l].next = edges[te].next;
                    edges[te].next = Some(l);
                    prelast = te;
                    last_exchange = Some(prelast);
                } else {
                    prelast = l;
                    last = Some(te);
                }
            }
            let Some(ex) = last_exchange else { break };
            keep_prelast = Some(ex);
            if keep_prelast == edges[head].next || ex == head {
                break;
            }
        }
        y += 1;
    }
}

/// `cv::mean(values, mask)[0]` over a `width`-wide window of `values` starting at `(x0, y0)` with the
/// mask's size: the masked values summed in `double` in raster order, times the reciprocal of their count
/// (0 when the mask is empty).
pub fn masked_mean(values: &[f32], stride: usize, x0: usize, y0: usize, mask: &Mask) -> f64 {
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for y in 0..mask.height {
        let row = &values[(y0 + y) * stride + x0..][..mask.width];
        for (v, &m) in row.iter().zip(&mask.data[y * mask.width..][..mask.width]) {
            if m != 0 {
                sum += *v as f64;
                n += 1;
            }
        }
    }
    sum * if n > 0 { 1.0 / n as f64 } else { 0.0 }
}

/// `cv::dilate(mask, [[1, 1], [1, 1]])`: each pixel becomes the maximum of itself and its neighbours to
/// the left, above and above-left (the kernel's anchor is its centre, (1, 1)); outside the image counts
/// as nothing.
pub fn dilate_2x2(mask: &Mask) -> Mask {
    let (w, h) = (mask.width, mask.height);
    let mut out = Mask::zeros(w, h);
    for y in 0..h {
        for x in 0..w {
            let mut v = mask.data[y * w + x];
            if x > 0 {
                v = v.max(mask.data[y * w + x - 1]);
            }
            if y > 0 {
                v = v.max(mask.data[(y - 1) * w + x]);
                if x > 0 {
                    v = v.max(mask.data[(y - 1) * w + x - 1]);
                }
            }
            out.data[y * w + x] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(m: &Mask) -> Vec<String> {
        m.data
            .chunks(m.width)
            .map(|r| r.iter().map(|&v| if v != 0 { '#' } else { '.' }).collect())
            .collect()
    }

    #[test]
    fn fill_poly_of_a_triangle_matches_opencv() {
        // cv2.fillPoly(np.zeros((6, 8), np.uint8), [np.array([[1, 0], [6, 2], [2, 5]], np.int32)], 1)
        let mut m = Mask::zeros(8, 6);
        fill_poly(&mut m, &[[1, 0], [6, 2], [2, 5]], 1);
        assert_eq!(
            rows(&m),
            vec![".##.....", ".####...", ".######.", "..####..", "..###...", "..#....."]
        );
    }

    #[test]
    fn dilation_spreads_right_and_down() {
        let mut m = Mask::zeros(3, 3);
        m.data[4] = 1;
        assert_eq!(rows(&dilate_2x2(&m)), vec!["...", ".##", ".##"]);
    }
}
