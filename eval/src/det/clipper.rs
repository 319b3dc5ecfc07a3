//! Polygon offsetting that gives the same integer polygons as pyclipper (Clipper 6.4.2's `ClipperOffset`),
//! as PaddleOCR's `DBPostProcess.unclip` uses it:
//!
//! ```python
//! offset = pyclipper.PyclipperOffset()                 # MiterLimit 2, ArcTolerance 0.25
//! offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
//! expanded = offset.Execute(poly.area * unclip_ratio / poly.length)
//! ```
//!
//! What has to match, and where it lives:
//! - **Float input.** pyclipper builds each `IntPoint` from Python numbers with Cython's integer conversion,
//!   which is Python's `int()`: floats are *truncated toward zero* (`-0.9 → 0`, `10.99 → 10`), not rounded;
//!   NaN and infinities raise. [`to_clipper_path`] does the same.
//! - **The offset** ([`ClipperOffset`]): duplicate removal, the orientation fix from the lowest vertex,
//!   unit normals, round joins stepped from the arc tolerance, `Round` (half away from zero) on every point,
//!   and the reflex-vertex triple that the union then removes.
//! - **The union** that `Execute` ends with (the `sweep` module): Vatti's sweep with Clipper's rules, so vertex order
//!   and starting vertex agree too, not only the shape.
//!
//! Limits: only closed polygons (`ET_CLOSEDPOLYGON`) are offset; open paths and `ET_CLOSEDLINE` are not
//! needed by PaddleOCR and are not here.

mod sweep;

use super::error::DetError;
use sweep::{FillType, Sweep, round};

/// A vertex in Clipper's integer coordinates (`cInt` is 64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct IntPoint {
    pub x: i64,
    pub y: i64,
}

impl IntPoint {
    pub const fn new(x: i64, y: i64) -> Self {
        IntPoint { x, y }
    }
}

/// How corners are joined when offsetting (Clipper's `JoinType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    Square,
    Round,
    Miter,
}

/// Clipper's largest coordinate magnitude (`hiRange`); beyond it `AddPath` throws.
const HI_RANGE: i64 = 0x3FFF_FFFF_FFFF_FFFF;
const PI: f64 = std::f64::consts::PI;
const DEF_ARC_TOLERANCE: f64 = 0.25;

/// Converts float vertices the way pyclipper does: Python's `int()` on each coordinate, i.e. truncation
/// toward zero.
///
/// # Errors
/// A coordinate that is NaN or infinite (pyclipper raises), or beyond Clipper's range (`AddPath` throws
/// "Coordinate outside allowed range").
pub fn to_clipper_path(points: &[[f64; 2]]) -> Result<Vec<IntPoint>, DetError> {
    let convert = |v: f64| -> Result<i64, DetError> {
        if !v.is_finite() {
            return Err(DetError::Coordinate {
                value: v,
                reason: "not finite",
            });
        }
        let t = v.trunc();
        if t.abs() > HI_RANGE as f64 {
            return Err(DetError::Coordinate {
                value: v,
                reason: "outside Clipper's range",
            });
        }
        Ok(t as i64)
    };
    points
        .iter()
        .map(|&[x, y]| Ok(IntPoint::new(convert(x)?, convert(y)?)))
        .collect()
}

/// Clipper's `Area` of a path: positive for counter-clockwise in y-up axes.
fn path_area(path: &[IntPoint]) -> f64 {
    if path.len() < 3 {
        return 0.0;
    }
    let mut a = 0.0;
    let mut j = path.len() - 1;
    for (i, p) in path.iter().enumerate() {
        a += (path[j].x as f64 + p.x as f64) * (path[j].y as f64 - p.y as f64);
        j = i;
    }
    -a * 0.5
}

/// Clipper's `GetUnitNormal`: the left-hand unit normal of `p1 → p2`, zero for a repeated point.
fn unit_normal(p1: IntPoint, p2: IntPoint) -> (f64, f64) {
    if p1 == p2 {
        return (0.0, 0.0);
    }
    let mut dx = (p2.x - p1.x) as f64;
    let mut dy = (p2.y - p1.y) as f64;
    let f = 1.0 / (dx * dx + dy * dy).sqrt();
    dx *= f;
    dy *= f;
    (dy, -dx)
}

/// `ClipperOffset` for closed polygons, with pyclipper's defaults.
#[derive(Debug, Clone)]
pub struct ClipperOffset {
    /// Miter joins longer than this many `delta`s are squared off (Clipper's default 2).
    pub miter_limit: f64,
    /// Largest distance a rounded join may stray from the true arc (Clipper's default 0.25).
    pub arc_tolerance: f64,
    paths: Vec<(Vec<IntPoint>, JoinType)>,
    /// Path and vertex index of the lowest (largest y, then smallest x) vertex over all paths.
    lowest: Option<(usize, usize)>,
}

impl Default for ClipperOffset {
    fn default() -> Self {
        Self::new()
    }
}

impl ClipperOffset {
    /// pyclipper's `PyclipperOffset()`: miter limit 2, arc tolerance 0.25.
    pub fn new() -> Self {
        ClipperOffset {
            miter_limit: 2.0,
            arc_tolerance: DEF_ARC_TOLERANCE,
            paths: Vec::new(),
            lowest: None,
        }
    }

    /// `AddPath(path, join, ET_CLOSEDPOLYGON)`: drops repeated vertices (and a closing vertex equal to the
    /// first); a path left with fewer than three vertices is ignored, as Clipper does.
    pub fn add_closed_polygon(&mut self, path: &[IntPoint], join: JoinType) {
        if path.is_empty() {
            return;
        }
        let mut high = path.len() - 1;
        while high > 0 && path[0] == path[high] {
            high -= 1;
        }
        let mut contour = vec![path[0]];
        let mut k = 0;
        for &p in &path[1..=high] {
            if *contour.last().expect("starts non-empty") != p {
                contour.push(p);
                let lowest = contour[k];
                if p.y > lowest.y || (p.y == lowest.y && p.x < lowest.x) {
                    k = contour.len() - 1;
                }
            }
        }
        if contour.len() < 3 {
            return;
        }
        let candidate = contour[k];
        self.paths.push((contour, join));
        let index = self.paths.len() - 1;
        self.lowest = match self.lowest {
            None => Some((index, k)),
            Some((pi, vi)) => {
                let ip = self.paths[pi].0[vi];
                if candidate.y > ip.y || (candidate.y == ip.y && candidate.x < ip.x) {
                    Some((index, k))
                } else {
                    Some((pi, vi))
                }
            }
        };
    }

    /// `Execute(delta)`: offsets every path by `delta` (outward when positive) and cleans the result up
    /// with a union, returning Clipper's polygons in Clipper's order. An empty result is what Clipper
    /// returns when its sweep fails, too.
    pub fn execute(&mut self, delta: f64) -> Vec<Vec<IntPoint>> {
        self.fix_orientations();
        let polys = self.do_offset(delta);
        if delta > 0.0 {
            let mut sweep = Sweep::new(FillType::Positive, false);
            for p in &polys {
                sweep.add_path(p);
            }
            sweep.execute().unwrap_or_default()
        } else {
            let mut sweep = Sweep::new(FillType::Negative, true);
            for p in &polys {
                sweep.add_path(p);
            }
            let (left, top, right, bottom) = sweep.bounds();
            sweep.add_path(&[
                IntPoint::new(left - 10, bottom + 10),
                IntPoint::new(right + 10, bottom + 10),
                IntPoint::new(right + 10, top - 10),
                IntPoint::new(left - 10, top - 10),
            ]);
            let mut out = sweep.execute().unwrap_or_default();
            if !out.is_empty() {
                out.remove(0);
            }
            out
        }
    }

    /// Reverses every path when the one holding the lowest vertex is clockwise (negative area).
    fn fix_orientations(&mut self) {
        if let Some((pi, _)) = self.lowest
            && path_area(&self.paths[pi].0) < 0.0
        {
            for (path, _) in &mut self.paths {
                path.reverse();
            }
            // The lowest vertex keeps its path; its index within the path is no longer needed.
        }
    }

    fn do_offset(&self, delta: f64) -> Vec<Vec<IntPoint>> {
        if delta > -1.0e-20 && delta < 1.0e-20 {
            return self.paths.iter().map(|(p, _)| p.clone()).collect();
        }
        let miter_lim = if self.miter_limit > 2.0 {
            2.0 / (self.miter_limit * self.miter_limit)
        } else {
            0.5
        };
        let y = if self.arc_tolerance <= 0.0 {
            DEF_ARC_TOLERANCE
        } else if self.arc_tolerance > delta.abs() * DEF_ARC_TOLERANCE {
            delta.abs() * DEF_ARC_TOLERANCE
        } else {
            self.arc_tolerance
        };
        let mut steps = PI / (1.0 - y / delta.abs()).acos();
        if steps > delta.abs() * PI {
            steps = delta.abs() * PI;
        }
        let two_pi = PI * 2.0;
        let mut sin = (two_pi / steps).sin();
        let cos = (two_pi / steps).cos();
        if delta < 0.0 {
            sin = -sin;
        }
        let ctx = OffsetCtx {
            delta,
            sin,
            cos,
            steps_per_rad: steps / two_pi,
            miter_lim,
        };

        let mut out = Vec::with_capacity(self.paths.len());
        for (src, join) in &self.paths {
            let len = src.len();
            if len < 3 && delta <= 0.0 {
                continue;
            }
            let mut normals = Vec::with_capacity(len);
            for j in 0..len {
                normals.push(unit_normal(src[j], src[(j + 1) % len]));
            }
            let mut dest = Vec::new();
            let mut k = len - 1;
            for j in 0..len {
                ctx.offset_point(src, &normals, j, &mut k, *join, &mut dest);
            }
            out.push(dest);
        }
        out
    }
}

/// The per-call constants of `DoOffset`.
struct OffsetCtx {
    delta: f64,
    sin: f64,
    cos: f64,
    steps_per_rad: f64,
    miter_lim: f64,
}

impl OffsetCtx {
    fn at(&self, p: IntPoint, nx: f64, ny: f64) -> IntPoint {
        IntPoint::new(round(p.x as f64 + nx * self.delta), round(p.y as f64 + ny * self.delta))
    }

    /// Clipper's `OffsetPoint` for vertex `j`, whose incoming edge normal is `normals[k]`. Like Clipper,
    /// `k` is not advanced when the corner is (almost) straight, so the next vertex measures its turn from
    /// the same incoming normal.
    fn offset_point(
        &self,
        src: &[IntPoint],
        normals: &[(f64, f64)],
        j: usize,
        k: &mut usize,
        join: JoinType,
        dest: &mut Vec<IntPoint>,
    ) {
        let (nk, nj) = (normals[*k], normals[j]);
        let p = src[j];
        let mut sin_a = nk.0 * nj.1 - nj.0 * nk.1;
        if (sin_a * self.delta).abs() < 1.0 {
            let cos_a = nk.0 * nj.0 + nj.1 * nk.1;
            if cos_a > 0.0 {
                // Nearly straight: one point on the incoming edge's offset.
                dest.push(self.at(p, nk.0, nk.1));
                return;
            }
        } else {
            sin_a = sin_a.clamp(-1.0, 1.0);
        }

        if sin_a * self.delta < 0.0 {
            // A reflex corner: both offset ends with the vertex between them; the union removes the loop.
            dest.push(self.at(p, nk.0, nk.1));
            dest.push(p);
            dest.push(self.at(p, nj.0, nj.1));
        } else {
            let cos_a = nk.0 * nj.0 + nk.1 * nj.1;
            match join {
                JoinType::Miter => {
                    let r = 1.0 + (nj.0 * nk.0 + nj.1 * nk.1);
                    if r >= self.miter_lim {
                        let q = self.delta / r;
                        dest.push(IntPoint::new(
                            round(p.x as f64 + (nk.0 + nj.0) * q),
                            round(p.y as f64 + (nk.1 + nj.1) * q),
                        ));
                    } else {
                        self.square(p, nk, nj, sin_a, cos_a, dest);
                    }
                }
                JoinType::Square => self.square(p, nk, nj, sin_a, cos_a, dest),
                JoinType::Round => {
                    let a = sin_a.atan2(cos_a);
                    let steps = (round(self.steps_per_rad * a.abs()) as i32).max(1);
                    let (mut x, mut y) = nk;
                    for _ in 0..steps {
                        dest.push(self.at(p, x, y));
                        let x2 = x;
                        x = x * self.cos - self.sin * y;
                        y = x2 * self.sin + y * self.cos;
                    }
                    dest.push(self.at(p, nj.0, nj.1));
                }
            }
        }
        *k = j;
    }

    fn square(&self, p: IntPoint, nk: (f64, f64), nj: (f64, f64), sin_a: f64, cos_a: f64, dest: &mut Vec<IntPoint>) {
        let dx = (sin_a.atan2(cos_a) / 4.0).tan();
        dest.push(IntPoint::new(
            round(p.x as f64 + self.delta * (nk.0 - nk.1 * dx)),
            round(p.y as f64 + self.delta * (nk.1 + nk.0 * dx)),
        ));
        dest.push(IntPoint::new(
            round(p.x as f64 + self.delta * (nj.0 + nj.1 * dx)),
            round(p.y as f64 + self.delta * (nj.1 - nj.0 * dx)),
        ));
    }
}

/// Shapely's (GEOS's) polygon area of a ring given without its closing vertex: the shoelace sum taken
/// relative to the first x, in GEOS's order, so the float result is the same.
pub fn shapely_area(ring: &[[f64; 2]]) -> f64 {
    let n = ring.len();
    if n < 3 {
        return 0.0;
    }
    // GEOS walks the closed ring p0..p(n-1), p0.
    let at = |i: usize| ring[i % n];
    let x0 = ring[0][0];
    let mut sum = 0.0;
    for i in 1..n {
        let (prev, cur, next) = (at(i - 1), at(i), at(i + 1));
        sum += (cur[0] - x0) * (prev[1] - next[1]);
    }
    (sum / 2.0).abs()
}

/// Shapely's polygon `length` (perimeter) of a ring given without its closing vertex.
pub fn shapely_length(ring: &[[f64; 2]]) -> f64 {
    let n = ring.len();
    let mut len = 0.0;
    for i in 1..=n {
        let (a, b) = (ring[i - 1], ring[i % n]);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        len += (dx * dx + dy * dy).sqrt();
    }
    len
}

/// PaddleOCR's `unclip`: offsets `points` outward by `area * unclip_ratio / length` (shapely's area and
/// perimeter) with round joins, returning pyclipper's polygons.
///
/// # Errors
/// As [`to_clipper_path`] for coordinates pyclipper refuses.
pub fn unclip(points: &[[f64; 2]], unclip_ratio: f64) -> Result<Vec<Vec<IntPoint>>, DetError> {
    let distance = unclip_distance(points, unclip_ratio);
    let path = to_clipper_path(points)?;
    let mut offset = ClipperOffset::new();
    offset.add_closed_polygon(&path, JoinType::Round);
    Ok(offset.execute(distance))
}

/// The offset distance PaddleOCR's `unclip` uses: `area * unclip_ratio / length`.
pub fn unclip_distance(points: &[[f64; 2]], unclip_ratio: f64) -> f64 {
    shapely_area(points) * unclip_ratio / shapely_length(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, i64)]) -> Vec<IntPoint> {
        v.iter().map(|&(x, y)| IntPoint::new(x, y)).collect()
    }

    #[test]
    fn floats_truncate_toward_zero_like_python_int() {
        let p = to_clipper_path(&[[-0.9, 10.99], [-1.7, 2.0]]).unwrap();
        assert_eq!(p, pts(&[(0, 10), (-1, 2)]));
        assert!(to_clipper_path(&[[f64::NAN, 0.0]]).is_err());
        assert!(to_clipper_path(&[[f64::INFINITY, 0.0]]).is_err());
    }

    #[test]
    fn square_offset_matches_pyclipper() {
        // pyclipper 1.3.0.post6: Execute(2.5) on the 10x10 square.
        let mut o = ClipperOffset::new();
        o.add_closed_polygon(&pts(&[(0, 0), (10, 0), (10, 10), (0, 10)]), JoinType::Round);
        let got = o.execute(2.5);
        let want = pts(&[
            (12, -2),
            (13, 0),
            (13, 10),
            (12, 12),
            (10, 13),
            (0, 13),
            (-2, 12),
            (-3, 10),
            (-3, 0),
            (-2, -2),
            (0, -3),
            (10, -3),
        ]);
        assert_eq!(got, vec![want]);
    }

    #[test]
    fn zero_delta_returns_the_cleaned_polygon() {
        // pyclipper: Execute(0.0) on the truncated quad.
        let mut o = ClipperOffset::new();
        o.add_closed_polygon(&pts(&[(0, 0), (10, -1), (10, 10), (-1, 10)]), JoinType::Round);
        assert_eq!(o.execute(0.0), vec![pts(&[(10, 10), (-1, 10), (0, 0), (10, -1)])]);
    }

    #[test]
    fn degenerate_paths_give_nothing() {
        let mut o = ClipperOffset::new();
        o.add_closed_polygon(&pts(&[(0, 0), (5, 5), (0, 0)]), JoinType::Round);
        assert!(o.execute(3.0).is_empty());
    }

    #[test]
    fn shapely_area_and_length_of_a_rectangle() {
        let r = [[1.0, 1.0], [4.0, 1.0], [4.0, 3.0], [1.0, 3.0]];
        assert_eq!(shapely_area(&r), 6.0);
        assert_eq!(shapely_length(&r), 10.0);
    }
}
