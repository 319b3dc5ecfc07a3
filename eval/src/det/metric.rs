//! PaddleOCR's `DetMetric` (`DetectionIoUEvaluator`): precision, recall and hmean of detected polygons
//! against ground truth, with don't-care regions.
//!
//! Per image, in PaddleOCR's order:
//! 1. invalid polygons (see [`super::polygon::is_valid`]) are skipped, ground truth and detections alike;
//! 2. a detection is don't-care when, for the first don't-care ground truth it overlaps enough, the
//!    intersection covers more than `area_precision_constraint` (0.5) of the detection's area;
//! 3. ground truth `g` then detection `d` in order: both still unmatched, neither don't-care and
//!    `IoU > iou_constraint` (0.5) makes a match (greedy, one-to-one);
//! 4. the image counts cared-for ground truth, cared-for detections and matches.
//!
//! Counts add up over the whole set; [`DetMetric::finalize`] gives PaddleOCR's `combine_results`:
//! recall = matched / gt (0 when there is no ground truth), precision = matched / detections (0 when
//! none), hmean = 2pr / (p + r) (0 when both are 0).

use super::polygon::{area, intersection_area, is_valid};

/// A ground-truth polygon and whether it is don't-care.
#[derive(Debug, Clone, PartialEq)]
pub struct GtPolygon {
    pub points: Vec<[f64; 2]>,
    pub ignore: bool,
}

/// Whether a transcription marks its box don't-care, as PaddleOCR's `DetLabelEncode` decides (`###` or
/// `*`).
pub fn is_dont_care(transcription: &str) -> bool {
    transcription == "###" || transcription == "*"
}

/// One image's contribution (`evaluate_image`'s per-sample metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageCounts {
    /// Valid ground truth that is not don't-care.
    pub gt_care: usize,
    /// Valid detections that are not don't-care.
    pub det_care: usize,
    /// One-to-one matches.
    pub det_matched: usize,
}

/// The metric over a set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetScores {
    pub precision: f64,
    pub recall: f64,
    pub hmean: f64,
}

/// Accumulates images and reports PaddleOCR's detection metric.
#[derive(Debug, Clone, PartialEq)]
pub struct DetMetric {
    /// IoU above which a detection matches a ground truth (0.5).
    pub iou_constraint: f64,
    /// Share of a detection's area inside a don't-care region above which it is ignored (0.5).
    pub area_precision_constraint: f64,
    totals: ImageCounts,
    images: usize,
}

impl Default for DetMetric {
    fn default() -> Self {
        Self::new()
    }
}

impl DetMetric {
    /// PaddleOCR's constraints: IoU 0.5, area precision 0.5.
    pub fn new() -> Self {
        Self::with_constraints(0.5, 0.5)
    }

    pub fn with_constraints(iou_constraint: f64, area_precision_constraint: f64) -> Self {
        DetMetric {
            iou_constraint,
            area_precision_constraint,
            totals: ImageCounts::default(),
            images: 0,
        }
    }

    /// Evaluates one image without accumulating it.
    pub fn evaluate_image(&self, gt: &[GtPolygon], detections: &[Vec<[f64; 2]>]) -> ImageCounts {
        let gts: Vec<&GtPolygon> = gt.iter().filter(|g| is_valid(&g.points)).collect();
        let dont_care_gt: Vec<usize> = (0..gts.len()).filter(|&i| gts[i].ignore).collect();

        let dets: Vec<&Vec<[f64; 2]>> = detections.iter().filter(|d| is_valid(d)).collect();
        let dont_care_det: Vec<bool> = dets
            .iter()
            .map(|d| {
                let det_area = area(d);
                dont_care_gt.iter().any(|&g| {
                    let inter = intersection_area(&gts[g].points, d);
                    let precision = if det_area == 0.0 { 0.0 } else { inter / det_area };
                    precision > self.area_precision_constraint
                })
            })
            .collect();

        let mut det_matched = 0;
        if !gts.is_empty() && !dets.is_empty() {
            let mut gt_taken = vec![false; gts.len()];
            let mut det_taken = vec![false; dets.len()];
            for (gi, g) in gts.iter().enumerate() {
                for (di, d) in dets.iter().enumerate() {
                    if gt_taken[gi] || det_taken[di] || g.ignore || dont_care_det[di] {
                        continue;
                    }
                    let inter = intersection_area(d, &g.points);
                    let union = area(d) + area(&g.points) - inter;
                    if inter / union > self.iou_constraint {
                        gt_taken[gi] = true;
                        det_taken[di] = true;
                        det_matched += 1;
                    }
                }
            }
        }
        ImageCounts {
            gt_care: gts.len() - dont_care_gt.len(),
            det_care: dets.len() - dont_care_det.iter().filter(|&&c| c).count(),
            det_matched,
        }
    }

    /// Evaluates one image and adds it to the totals.
    pub fn accumulate(&mut self, gt: &[GtPolygon], detections: &[Vec<[f64; 2]>]) -> ImageCounts {
        let c = self.evaluate_image(gt, detections);
        self.add(c);
        c
    }

    /// Adds an image's counts evaluated elsewhere (on another worker, say).
    pub fn add(&mut self, c: ImageCounts) {
        self.totals.gt_care += c.gt_care;
        self.totals.det_care += c.det_care;
        self.totals.det_matched += c.det_matched;
        self.images += 1;
    }

    /// The summed counts and the number of images added.
    pub fn totals(&self) -> (ImageCounts, usize) {
        (self.totals, self.images)
    }

    /// PaddleOCR's `combine_results` over everything added so far.
    pub fn finalize(&self) -> DetScores {
        combine(self.totals)
    }
}

/// Precision, recall and hmean from summed counts, with PaddleOCR's zero cases.
pub fn combine(t: ImageCounts) -> DetScores {
    let matched = t.det_matched as f64;
    let recall = if t.gt_care == 0 {
        0.0
    } else {
        matched / t.gt_care as f64
    };
    let precision = if t.det_care == 0 {
        0.0
    } else {
        matched / t.det_care as f64
    };
    let hmean = if recall + precision == 0.0 {
        0.0
    } else {
        2.0 * recall * precision / (recall + precision)
    };
    DetScores {
        precision,
        recall,
        hmean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: f64, y: f64, w: f64, h: f64) -> Vec<[f64; 2]> {
        vec![[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    }

    fn gt(points: Vec<[f64; 2]>, ignore: bool) -> GtPolygon {
        GtPolygon { points, ignore }
    }

    #[test]
    fn perfect_match() {
        let mut m = DetMetric::new();
        let c = m.accumulate(&[gt(rect(0.0, 0.0, 10.0, 5.0), false)], &[rect(0.0, 0.0, 10.0, 5.0)]);
        assert_eq!(
            c,
            ImageCounts {
                gt_care: 1,
                det_care: 1,
                det_matched: 1
            }
        );
        assert_eq!(
            m.finalize(),
            DetScores {
                precision: 1.0,
                recall: 1.0,
                hmean: 1.0
            }
        );
    }

    #[test]
    fn dont_care_regions_remove_detections_inside_them() {
        let m = DetMetric::new();
        let gts = [
            gt(rect(0.0, 0.0, 10.0, 10.0), true),
            gt(rect(20.0, 0.0, 10.0, 10.0), false),
        ];
        // Inside the don't-care box; half inside it (not more than half: still cared for); a match.
        let dets = [
            rect(1.0, 1.0, 5.0, 5.0),
            rect(5.0, 0.0, 10.0, 10.0),
            rect(20.0, 0.0, 10.0, 10.0),
        ];
        assert_eq!(
            m.evaluate_image(&gts, &dets),
            ImageCounts {
                gt_care: 1,
                det_care: 2,
                det_matched: 1
            }
        );
    }

    #[test]
    fn split_and_merge_match_at_most_once() {
        let m = DetMetric::new();
        // One long ground truth, two halves detected: each IoU is 0.5, not above it.
        let gts = [gt(rect(0.0, 0.0, 20.0, 5.0), false)];
        let dets = [rect(0.0, 0.0, 10.0, 5.0), rect(10.0, 0.0, 10.0, 5.0)];
        assert_eq!(
            m.evaluate_image(&gts, &dets),
            ImageCounts {
                gt_care: 1,
                det_care: 2,
                det_matched: 0
            }
        );
        // Two ground truths and a detection merging both (IoU 50/105 with each), plus one exact detection.
        let gts = [
            gt(rect(0.0, 0.0, 10.0, 5.0), false),
            gt(rect(11.0, 0.0, 10.0, 5.0), false),
        ];
        let dets = [rect(0.0, 0.0, 21.0, 5.0), rect(11.0, 0.0, 10.0, 5.0)];
        assert_eq!(
            m.evaluate_image(&gts, &dets),
            ImageCounts {
                gt_care: 2,
                det_care: 2,
                det_matched: 1
            }
        );
    }

    #[test]
    fn empty_images_and_zero_cases() {
        let mut m = DetMetric::new();
        assert_eq!(m.accumulate(&[], &[]), ImageCounts::default());
        assert_eq!(
            m.finalize(),
            DetScores {
                precision: 0.0,
                recall: 0.0,
                hmean: 0.0
            }
        );
        m.accumulate(&[], &[rect(0.0, 0.0, 4.0, 4.0)]);
        assert_eq!(
            m.finalize(),
            DetScores {
                precision: 0.0,
                recall: 0.0,
                hmean: 0.0
            }
        );
        m.accumulate(&[gt(rect(0.0, 0.0, 4.0, 4.0), false)], &[]);
        assert_eq!(
            m.totals(),
            (
                ImageCounts {
                    gt_care: 1,
                    det_care: 1,
                    det_matched: 0
                },
                3
            )
        );
    }

    #[test]
    fn invalid_polygons_are_skipped() {
        let m = DetMetric::new();
        let bowtie = vec![[0.0, 0.0], [10.0, 10.0], [10.0, 0.0], [0.0, 10.0]];
        let c = m.evaluate_image(&[gt(bowtie.clone(), false)], &[bowtie]);
        assert_eq!(c, ImageCounts::default());
        assert!(is_dont_care("###") && is_dont_care("*") && !is_dont_care("#"));
    }
}
