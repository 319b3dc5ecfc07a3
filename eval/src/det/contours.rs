//! `cv::findContours(mask, RETR_LIST, CHAIN_APPROX_SIMPLE)` as OpenCV 4.10 returns it: Suzuki and Abe's
//! border following over a zero-padded copy of the mask, outer borders and hole borders alike, each
//! contour reduced to the points where the chain direction changes, and the list in OpenCV's order (the
//! reverse of the raster order in which borders are found).
//!
//! The order matters to PaddleOCR: it keeps only the first `max_candidates` contours.

/// Chain code directions: (dx, dy) for codes 0..8, counter-clockwise starting east, y pointing down.
const DELTAS: [(isize, isize); 8] = [(1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)];

/// Marks of the border following (OpenCV's `schar` values): a border pixel whose east neighbour is
/// background, and any other visited border pixel.
const RIGHT_EDGE: i8 = 2 | -128;
const VISITED: i8 = 2;

/// Contours of the non-zero pixels of `mask` (`height` rows of `width`), each a list of `[x, y]` points.
///
/// # Panics
/// If `mask.len() != width * height`.
pub fn find_contours(mask: &[u8], width: usize, height: usize) -> Vec<Vec<[i32; 2]>> {
    assert_eq!(mask.len(), width * height, "mask size");
    // One pixel of background all round, so borders on the image edge are followed like any other.
    let (w, h) = (width + 2, height + 2);
    let mut img = vec![0i8; w * h];
    for y in 0..height {
        for x in 0..width {
            img[(y + 1) * w + x + 1] = (mask[y * width + x] != 0) as i8;
        }
    }

    let mut found = Vec::new();
    for y in 1..h - 1 {
        let mut prev: i8 = 0;
        let mut x = 1;
        while x < w - 1 {
            let p = img[y * w + x];
            if p == prev {
                x += 1;
                continue;
            }
            let outer = prev == 0 && p == 1;
            let hole = !outer && p == 0 && prev >= 1;
            if outer || hole {
                let start_x = if hole { x - 1 } else { x };
                found.push(follow(&mut img, w, start_x, y, hole));
                // OpenCV resumes after the start pixel, re-reading the pixel before it (now marked).
                x += 1;
                prev = img[y * w + x - 1];
                continue;
            }
            prev = p;
            x += 1;
        }
    }
    found.reverse();
    found
}

/// Follows one border from `(x0, y0)` (padded coordinates), marking it, and returns its direction-change
/// points in mask coordinates.
fn follow(img: &mut [i8], w: usize, x0: usize, y0: usize, hole: bool) -> Vec<[i32; 2]> {
    let offset = |s: usize| DELTAS[s & 7].0 + DELTAS[s & 7].1 * w as isize;
    let i0 = y0 * w + x0;
    let at = |img: &[i8], i: usize, s: usize| img[(i as isize + offset(s)) as usize];
    let mut pt = [x0 as i32 - 1, y0 as i32 - 1];
    let mut out = Vec::new();

    // Find the first neighbour, turning clockwise from the background side.
    let s_end0 = if hole { 0 } else { 4 };
    let mut s = s_end0;
    loop {
        s = (s + 7) & 7;
        if at(img, i0, s) != 0 || s == s_end0 {
            break;
        }
    }
    if s == s_end0 {
        // A single pixel.
        img[i0] = RIGHT_EDGE;
        out.push(pt);
        return out;
    }
    let i1 = (i0 as isize + offset(s)) as usize;
    let mut i3 = i0;
    let mut prev_s = s ^ 4;
    loop {
        // Turn counter-clockwise from the previous direction to the next border pixel.
        let s_end = s;
        let mut i4;
        loop {
            s += 1;
            i4 = (i3 as isize + offset(s)) as usize;
            if img[i4] != 0 || s >= 15 {
                break;
            }
        }
        s &= 7;
        if (s as isize - 1) >= 0 && (s - 1) < s_end {
            img[i3] = RIGHT_EDGE;
        } else if img[i3] == 1 {
            img[i3] = VISITED;
        }
        if s != prev_s {
            out.push(pt);
            prev_s = s;
        }
        pt[0] += DELTAS[s].0 as i32;
        pt[1] += DELTAS[s].1 as i32;
        if i4 == i0 && i3 == i1 {
            break;
        }
        i3 = i4;
        s = (s + 4) & 7;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> (Vec<u8>, usize, usize) {
        let w = rows[0].len();
        let data = rows.iter().flat_map(|r| r.bytes().map(|b| (b == b'#') as u8)).collect();
        (data, w, rows.len())
    }

    #[test]
    fn outer_and_hole_borders_in_opencv_order() {
        // Expected from cv2.findContours (OpenCV 4.10) on the same mask.
        let mut m = vec![0u8; 20 * 20];
        let mut set = |x0: usize, x1: usize, y0: usize, y1: usize, v: u8| {
            for y in y0..y1 {
                for x in x0..x1 {
                    m[y * 20 + x] = v;
                }
            }
        };
        set(2, 6, 2, 5, 1);
        set(3, 12, 10, 15, 1);
        set(5, 8, 11, 14, 0);
        set(12, 15, 2, 4, 1);
        let c = find_contours(&m, 20, 20);
        assert_eq!(
            c,
            vec![
                vec![[4, 11], [5, 10], [7, 10], [8, 11], [8, 13], [7, 14], [5, 14], [4, 13]],
                vec![[3, 10], [3, 14], [11, 14], [11, 10]],
                vec![[12, 2], [12, 3], [14, 3], [14, 2]],
                vec![[2, 2], [2, 4], [5, 4], [5, 2]],
            ]
        );
    }

    #[test]
    fn single_pixel_and_edges() {
        let (m, w, h) = mask(&["#..", "...", "..#"]);
        assert_eq!(find_contours(&m, w, h), vec![vec![[2, 2]], vec![[0, 0]]]);
    }
}
