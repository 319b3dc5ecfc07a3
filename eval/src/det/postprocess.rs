//! PaddleOCR's `DBPostProcess`: from a DB probability map to text boxes in source-image pixels.
//!
//! The steps, each as PaddleOCR (numpy 2, OpenCV 4.10, pyclipper 1.3) computes them:
//! 1. binarise `map > thresh` (the threshold is compared as `float32`, as numpy does with a Python float);
//!    optionally dilate with the 2x2 kernel of ones;
//! 2. `findContours(RETR_LIST, CHAIN_APPROX_SIMPLE)` and keep the first `max_candidates` in OpenCV's order;
//! 3. `quad`: the contour's minimum-area rectangle (`get_mini_boxes`), dropped when its short side is under
//!    3; `poly`: `approxPolyDP(contour, 0.002 * arcLength)`, dropped under 4 vertices;
//! 4. the score: the mean of the map inside the box (`fast`: the rectangle, or the approximated polygon in
//!    poly mode) or inside the contour (`slow`, quad mode only), rasterised like `cv2.fillPoly` over the
//!    clipped bounding window; boxes scoring under `box_thresh` are dropped;
//! 5. `unclip` ([`super::clipper`]); a result of more than one polygon is dropped, and so is one whose
//!    minimum-area rectangle has a short side under 5;
//! 6. scaling to the source image: `clip(round(x / width * src_w), 0, src_w)` (numpy rounds half to even).
//!    In quad mode `x / width` is a `float32` division (the box is `float32`) and the product is taken in
//!    `double` (`src_w` is a numpy `float64`); in poly mode the box holds integers and all of it is `double`.
//!
//! One decision of ours: when `unclip` returns no polygon at all (a box that truncates to fewer than three
//! distinct integer points), PaddleOCR would hand an empty array to `cv2.minAreaRect` and fail; here the
//! candidate is dropped.

use super::DetError;
use super::approx::{approx_poly_dp_closed, arc_length_closed};
use super::clipper::{IntPoint, unclip};
use super::contours::find_contours;
use super::raster::{Mask, dilate_2x2, fill_poly, masked_mean};
use super::rect::mini_box;

/// How a candidate's score is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreMode {
    /// The mean over the minimum-area rectangle (PaddleOCR's default).
    Fast,
    /// The mean over the contour itself.
    Slow,
}

/// The shape of the boxes returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxType {
    /// Four corners of a rotated rectangle: top-left, top-right, bottom-right, bottom-left.
    Quad,
    /// The unclipped polygon itself.
    Poly,
}

/// `DBPostProcess` options; [`Default`] gives the defaults of PaddleOCR's code (not of any one config), which
/// are also what a config's `PostProcess` section falls back to.
#[derive(Debug, Clone, PartialEq)]
pub struct DbPostProcess {
    /// Probability above which a pixel is text (0.3).
    pub thresh: f64,
    /// Mean probability under which a candidate box is dropped (0.7; configs often set 0.6).
    pub box_thresh: f64,
    /// How many contours are considered, in OpenCV's order (1000).
    pub max_candidates: usize,
    /// How far boxes are grown: `area * ratio / perimeter` (2.0; configs often set 1.5).
    pub unclip_ratio: f64,
    /// Dilate the binary map with a 2x2 kernel of ones first (false).
    pub use_dilation: bool,
    pub score_mode: ScoreMode,
    pub box_type: BoxType,
}

impl Default for DbPostProcess {
    fn default() -> Self {
        DbPostProcess {
            thresh: 0.3,
            box_thresh: 0.7,
            max_candidates: 1000,
            unclip_ratio: 2.0,
            use_dilation: false,
            score_mode: ScoreMode::Fast,
            box_type: BoxType::Quad,
        }
    }
}

/// PaddleOCR's `min_size`: rectangles with a shorter side are dropped (plus 2 after unclipping).
const MIN_SIZE: f64 = 3.0;

/// One image's row of PaddleOCR's `shape_list`: `[src_h, src_w, ratio_h, ratio_w]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShapeInfo {
    pub src_h: f64,
    pub src_w: f64,
    pub ratio_h: f64,
    pub ratio_w: f64,
}

impl From<[f64; 4]> for ShapeInfo {
    fn from([src_h, src_w, ratio_h, ratio_w]: [f64; 4]) -> Self {
        ShapeInfo {
            src_h,
            src_w,
            ratio_h,
            ratio_w,
        }
    }
}

/// A detected text region in source-image pixels (integer values) and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct DetBox {
    /// Four corners in quad mode; the polygon's vertices in poly mode.
    pub points: Vec<[f32; 2]>,
    pub score: f64,
}

/// A probability map borrowed from the model output: `height` rows of `width` values.
#[derive(Debug, Clone, Copy)]
pub struct ProbMap<'a> {
    pub data: &'a [f32],
    pub height: usize,
    pub width: usize,
}

impl<'a> ProbMap<'a> {
    /// # Errors
    /// [`DetError::MapSize`] when `data` does not hold `height * width` values.
    pub fn new(data: &'a [f32], height: usize, width: usize) -> Result<Self, DetError> {
        let expected = height * width;
        if data.len() != expected || expected == 0 {
            return Err(DetError::MapSize {
                height,
                width,
                expected,
                got: data.len(),
            });
        }
        Ok(ProbMap { data, height, width })
    }
}

impl DbPostProcess {
    /// The boxes of one image, in PaddleOCR's order.
    ///
    /// # Errors
    /// A `shape` whose source size is not positive and finite, or options out of their domain.
    pub fn boxes(&self, map: ProbMap<'_>, shape: ShapeInfo) -> Result<Vec<DetBox>, DetError> {
        self.check(shape)?;
        let thresh = self.thresh as f32;
        let mut bitmap = Mask {
            width: map.width,
            height: map.height,
            data: map.data.iter().map(|&v| (v > thresh) as u8).collect(),
        };
        if self.use_dilation {
            bitmap = dilate_2x2(&bitmap);
        }
        let contours = find_contours(&bitmap.data, map.width, map.height);
        let mut out = Vec::new();
        for contour in contours.iter().take(self.max_candidates) {
            let found = match self.box_type {
                BoxType::Quad => self.quad(map, contour, shape)?,
                BoxType::Poly => self.poly(map, contour, shape)?,
            };
            out.extend(found);
        }
        Ok(out)
    }

    fn check(&self, shape: ShapeInfo) -> Result<(), DetError> {
        for (name, value) in [("src_h", shape.src_h), ("src_w", shape.src_w)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(DetError::Shape { name, value });
            }
        }
        if !(self.unclip_ratio.is_finite() && self.unclip_ratio > 0.0) {
            return Err(DetError::Option {
                name: "unclip_ratio",
                message: format!("must be > 0, got {}", self.unclip_ratio),
            });
        }
        Ok(())
    }

    fn quad(&self, map: ProbMap<'_>, contour: &[[i32; 2]], shape: ShapeInfo) -> Result<Option<DetBox>, DetError> {
        let Some((corners, sside)) = mini_box(contour) else {
            return Ok(None);
        };
        if (sside as f64) < MIN_SIZE {
            return Ok(None);
        }
        let score = match self.score_mode {
            ScoreMode::Fast => score_fast(map, &corners),
            ScoreMode::Slow => score_int_polygon(map, contour),
        };
        if self.box_thresh > score {
            return Ok(None);
        }
        let points: Vec<[f64; 2]> = corners.iter().map(|p| [p[0] as f64, p[1] as f64]).collect();
        let Some(expanded) = single_polygon(unclip(&points, self.unclip_ratio)?) else {
            return Ok(None);
        };
        let Some((corners, sside)) = mini_box(&expanded) else {
            return Ok(None);
        };
        if (sside as f64) < MIN_SIZE + 2.0 {
            return Ok(None);
        }
        let (w, h) = (map.width as f32, map.height as f32);
        let points = corners
            .iter()
            .map(|p| {
                [
                    scale((p[0] / w) as f64, shape.src_w) as f32,
                    scale((p[1] / h) as f64, shape.src_h) as f32,
                ]
            })
            .collect();
        Ok(Some(DetBox { points, score }))
    }

    fn poly(&self, map: ProbMap<'_>, contour: &[[i32; 2]], shape: ShapeInfo) -> Result<Option<DetBox>, DetError> {
        let epsilon = 0.002 * arc_length_closed(contour);
        let points = approx_poly_dp_closed(contour, epsilon);
        if points.len() < 4 {
            return Ok(None);
        }
        let score = score_int_polygon(map, &points);
        if self.box_thresh > score {
            return Ok(None);
        }
        let fpoints: Vec<[f64; 2]> = points.iter().map(|p| [p[0] as f64, p[1] as f64]).collect();
        let Some(expanded) = single_polygon(unclip(&fpoints, self.unclip_ratio)?) else {
            return Ok(None);
        };
        let Some((_, sside)) = mini_box(&expanded) else {
            return Ok(None);
        };
        if (sside as f64) < MIN_SIZE + 2.0 {
            return Ok(None);
        }
        let (w, h) = (map.width as f64, map.height as f64);
        let points = expanded
            .iter()
            .map(|p| {
                [
                    scale(p[0] as f64 / w, shape.src_w) as f32,
                    scale(p[1] as f64 / h, shape.src_h) as f32,
                ]
            })
            .collect();
        Ok(Some(DetBox { points, score }))
    }
}

/// `np.clip(np.round(frac * dest), 0, dest)`, with numpy's half-to-even rounding.
fn scale(frac: f64, dest: f64) -> f64 {
    (frac * dest).round_ties_even().clamp(0.0, dest)
}

/// The one polygon of an unclip result as integer points; none when there are zero or several (PaddleOCR
/// drops a candidate whose unclip splits). Coordinates beyond `i32` cannot come from a map-sized box.
fn single_polygon(mut polys: Vec<Vec<IntPoint>>) -> Option<Vec<[i32; 2]>> {
    if polys.len() != 1 {
        return None;
    }
    let poly = polys.pop()?;
    poly.iter()
        .map(|p| Some([i32::try_from(p.x).ok()?, i32::try_from(p.y).ok()?]))
        .collect()
}

/// The clipped bounding window `[xmin, xmax] x [ymin, ymax]` of a box, PaddleOCR's way.
fn window(map: ProbMap<'_>, xmin: i64, xmax: i64, ymin: i64, ymax: i64) -> (usize, usize, usize, usize) {
    let (w, h) = (map.width as i64, map.height as i64);
    let c = |v: i64, hi: i64| v.clamp(0, hi - 1) as usize;
    (c(xmin, w), c(xmax, w), c(ymin, h), c(ymax, h))
}

/// `box_score_fast` on a float box: the window from floor/ceil of the corners, the polygon's corners made
/// relative to it and truncated to integers (`astype(np.int32)`), filled, and the map averaged under it.
fn score_fast(map: ProbMap<'_>, corners: &[[f32; 2]; 4]) -> f64 {
    let fold = |f: fn(f32, f32) -> f32, i: usize, init: f32| corners.iter().map(|p| p[i]).fold(init, f);
    let (xmin, xmax, ymin, ymax) = window(
        map,
        fold(f32::min, 0, f32::INFINITY).floor() as i64,
        fold(f32::max, 0, f32::NEG_INFINITY).ceil() as i64,
        fold(f32::min, 1, f32::INFINITY).floor() as i64,
        fold(f32::max, 1, f32::NEG_INFINITY).ceil() as i64,
    );
    let pts: Vec<[i32; 2]> = corners
        .iter()
        .map(|p| {
            [
                (p[0] as f64 - xmin as f64) as f32 as i32,
                (p[1] as f64 - ymin as f64) as f32 as i32,
            ]
        })
        .collect();
    mean_in(map, &pts, xmin, xmax, ymin, ymax)
}

/// `box_score_slow` (and `box_score_fast` on integer points, as poly mode calls it): the window from the
/// points' extremes, clipped, and the map averaged inside the polygon.
fn score_int_polygon(map: ProbMap<'_>, pts: &[[i32; 2]]) -> f64 {
    let xs = pts.iter().map(|p| p[0] as i64);
    let ys = pts.iter().map(|p| p[1] as i64);
    let (xmin, xmax, ymin, ymax) = window(
        map,
        xs.clone().min().unwrap_or(0),
        xs.max().unwrap_or(0),
        ys.clone().min().unwrap_or(0),
        ys.max().unwrap_or(0),
    );
    let rel: Vec<[i32; 2]> = pts.iter().map(|p| [p[0] - xmin as i32, p[1] - ymin as i32]).collect();
    mean_in(map, &rel, xmin, xmax, ymin, ymax)
}

fn mean_in(map: ProbMap<'_>, rel: &[[i32; 2]], xmin: usize, xmax: usize, ymin: usize, ymax: usize) -> f64 {
    let mut mask = Mask::zeros(xmax - xmin + 1, ymax - ymin + 1);
    fill_poly(&mut mask, rel, 1);
    masked_mean(map.data, map.width, xmin, ymin, &mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(h: f64, w: f64) -> ShapeInfo {
        ShapeInfo {
            src_h: h,
            src_w: w,
            ratio_h: 1.0,
            ratio_w: 1.0,
        }
    }

    #[test]
    fn one_bright_rectangle_gives_one_grown_box() {
        let (h, w) = (40, 60);
        let mut data = vec![0.0f32; h * w];
        for y in 10..20 {
            for x in 10..40 {
                data[y * w + x] = 0.9;
            }
        }
        let boxes = DbPostProcess::default()
            .boxes(ProbMap::new(&data, h, w).unwrap(), shape(40.0, 60.0))
            .unwrap();
        assert_eq!(boxes.len(), 1);
        // The contour spans 10..=39 x 10..=19; unclip grows it by area * 2 / perimeter = 6.9.
        assert_eq!(
            boxes[0].points,
            vec![[3.0, 3.0], [46.0, 3.0], [46.0, 26.0], [3.0, 26.0]]
        );
        assert!((boxes[0].score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn map_size_is_checked() {
        let data = [0.0f32; 5];
        assert_eq!(
            ProbMap::new(&data, 2, 3).unwrap_err().to_string(),
            "probability map: expected 2x3 = 6 values, got 5"
        );
    }
}
