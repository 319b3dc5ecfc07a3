//! The boolean union that ends Clipper 6.4.2's `ClipperOffset::Execute`: Vatti's sweep over closed subject
//! paths, with Clipper's own winding rules, output-point bookkeeping, joins and clean-up, so that the polygons
//! come out with the same vertices, in the same order and from the same starting vertex as pyclipper's.
//!
//! Only what the offset needs is here: closed subject paths, the union, one fill type for all of them, no
//! clip paths (so Clipper's second winding count is always 0 and never excludes an edge), the positive and
//! negative fill rules only, no open paths, no `StrictlySimple` and no `PreserveCollinear`. Coordinates are
//! Clipper's 64-bit integers; products that Clipper takes in 128 bits when it must are always taken in 128
//! bits here, which gives the same answers.
//!
//! Clipper sorts local minima and intersections with `std::sort`; [`crate::det::stdsort`] sorts them the way
//! libstdc++ does, because the order of equal keys shows in the output.
//!
//! The run is one [`Sweep`]: `paths` sets up edges and local minima, `scan` steps through the scanbeams with
//! `lists` (edge lists and winding) and `output` (output polygons), and `joins` cleans up afterwards.

use std::collections::BinaryHeap;

use super::IntPoint;
use crate::det::stdsort::std_sort;

mod joins;
mod lists;
mod output;
mod paths;
mod scan;

/// Clipper's `HORIZONTAL` slope marker.
const HORIZONTAL: f64 = -1.0e40;
/// An edge that does not own an output polygon.
const UNASSIGNED: i32 = -1;

/// Which winding numbers count as inside (Clipper's `PolyFillType`): the offset only ever uses these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillType {
    Positive,
    Negative,
}

/// Clipper's rounding: half away from zero, then truncation to an integer.
pub(super) fn round(v: f64) -> i64 {
    if v < 0.0 { (v - 0.5) as i64 } else { (v + 0.5) as i64 }
}

/// The sweep failed where Clipper throws (its `Execute` then returns no polygons).
#[derive(Debug)]
pub(super) struct SweepFailed;

type Res<T> = Result<T, SweepFailed>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

#[derive(Debug, Clone)]
struct Edge {
    bot: IntPoint,
    curr: IntPoint,
    top: IntPoint,
    dx: f64,
    side: Side,
    wind_delta: i32,
    wind_cnt: i32,
    out_idx: i32,
    next: usize,
    prev: usize,
    next_in_lml: Option<usize>,
    next_in_ael: Option<usize>,
    prev_in_ael: Option<usize>,
    next_in_sel: Option<usize>,
    prev_in_sel: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct LocalMinimum {
    y: i64,
    left: usize,
    right: usize,
}

#[derive(Debug, Clone, Copy)]
struct OutPt {
    idx: i32,
    pt: IntPoint,
    next: usize,
    prev: usize,
}

#[derive(Debug, Clone)]
struct OutRec {
    idx: i32,
    is_hole: bool,
    first_left: Option<usize>,
    pts: Option<usize>,
    bottom_pt: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Join {
    op1: usize,
    op2: usize,
    off_pt: IntPoint,
}

#[derive(Debug, Clone, Copy)]
struct IntersectNode {
    e1: usize,
    e2: usize,
    pt: IntPoint,
}

fn slopes_equal3(p1: IntPoint, p2: IntPoint, p3: IntPoint) -> bool {
    (p1.y - p2.y) as i128 * (p2.x - p3.x) as i128 == (p1.x - p2.x) as i128 * (p2.y - p3.y) as i128
}

fn slopes_equal4(p1: IntPoint, p2: IntPoint, p3: IntPoint, p4: IntPoint) -> bool {
    (p1.y - p2.y) as i128 * (p3.x - p4.x) as i128 == (p1.x - p2.x) as i128 * (p3.y - p4.y) as i128
}

fn get_dx(p1: IntPoint, p2: IntPoint) -> f64 {
    if p1.y == p2.y {
        HORIZONTAL
    } else {
        (p2.x - p1.x) as f64 / (p2.y - p1.y) as f64
    }
}

fn horz_segments_overlap(mut a1: i64, mut a2: i64, mut b1: i64, mut b2: i64) -> bool {
    if a1 > a2 {
        std::mem::swap(&mut a1, &mut a2);
    }
    if b1 > b2 {
        std::mem::swap(&mut b1, &mut b2);
    }
    a1 < b2 && b1 < a2
}

/// The overlap of two horizontal spans, as `(left, right)` when it has a positive length.
fn get_overlap(a1: i64, a2: i64, b1: i64, b2: i64) -> Option<(i64, i64)> {
    let (left, right) = if a1 < a2 {
        if b1 < b2 {
            (a1.max(b1), a2.min(b2))
        } else {
            (a1.max(b2), a2.min(b1))
        }
    } else if b1 < b2 {
        (a2.max(b1), a1.min(b2))
    } else {
        (a2.max(b2), a1.min(b1))
    };
    (left < right).then_some((left, right))
}

/// One union run: the edges of every path added, then the sweep state and its output.
pub(super) struct Sweep {
    fill: FillType,
    reverse_output: bool,
    edges: Vec<Edge>,
    minima: Vec<LocalMinimum>,
    current_lm: usize,
    scanbeam: BinaryHeap<i64>,
    active: Option<usize>,
    sorted: Option<usize>,
    pts: Vec<OutPt>,
    recs: Vec<OutRec>,
    joins: Vec<Join>,
    ghost_joins: Vec<Join>,
    intersections: Vec<IntersectNode>,
}

impl Sweep {
    pub(super) fn new(fill: FillType, reverse_output: bool) -> Self {
        Sweep {
            fill,
            reverse_output,
            edges: Vec::new(),
            minima: Vec::new(),
            current_lm: 0,
            scanbeam: BinaryHeap::new(),
            active: None,
            sorted: None,
            pts: Vec::new(),
            recs: Vec::new(),
            joins: Vec::new(),
            ghost_joins: Vec::new(),
            intersections: Vec::new(),
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Execute

    /// Runs the union and returns the output polygons in Clipper's order, or `SweepFailed` where Clipper
    /// would report failure.
    pub(super) fn execute(mut self) -> Res<Vec<Vec<IntPoint>>> {
        if self.minima.is_empty() {
            return Ok(Vec::new());
        }
        self.reset();
        self.execute_internal()?;
        Ok(self.build_result())
    }

    fn reset(&mut self) {
        std_sort(&mut self.minima, |a, b| b.y < a.y);
        self.scanbeam.clear();
        for i in 0..self.minima.len() {
            let lm = self.minima[i];
            self.scanbeam.push(lm.y);
            for (e, side) in [(lm.left, Side::Left), (lm.right, Side::Right)] {
                let edge = &mut self.edges[e];
                edge.curr = edge.bot;
                edge.side = side;
                edge.out_idx = UNASSIGNED;
            }
        }
        self.active = None;
        self.current_lm = 0;
    }

    fn pop_scanbeam(&mut self) -> Option<i64> {
        let y = self.scanbeam.pop()?;
        while self.scanbeam.peek() == Some(&y) {
            self.scanbeam.pop();
        }
        Some(y)
    }

    fn execute_internal(&mut self) -> Res<()> {
        self.sorted = None;
        let Some(bot_y) = self.pop_scanbeam() else {
            return Err(SweepFailed);
        };
        self.insert_local_minima_into_ael(bot_y)?;
        let mut top_y = bot_y;
        loop {
            match self.pop_scanbeam() {
                Some(y) => top_y = y,
                None if self.current_lm < self.minima.len() => {}
                None => break,
            }
            self.process_horizontals()?;
            self.ghost_joins.clear();
            self.process_intersections(top_y)?;
            self.process_edges_at_top_of_scanbeam(top_y)?;
            self.insert_local_minima_into_ael(top_y)?;
        }

        for i in 0..self.recs.len() {
            let Some(p) = self.recs[i].pts else { continue };
            if (self.recs[i].is_hole ^ self.reverse_output) == (self.area(p) > 0.0) {
                self.reverse_links(p);
            }
        }
        if !self.joins.is_empty() {
            self.join_common_edges();
        }
        for i in 0..self.recs.len() {
            if self.recs[i].pts.is_some() {
                self.fixup_out_polygon(i);
            }
        }
        Ok(())
    }

    fn build_result(&self) -> Vec<Vec<IntPoint>> {
        let mut out = Vec::new();
        for rec in &self.recs {
            let Some(start) = rec.pts else { continue };
            let mut p = self.pts[start].prev;
            let cnt = self.point_count(p);
            if cnt < 2 {
                continue;
            }
            let mut path = Vec::with_capacity(cnt);
            for _ in 0..cnt {
                path.push(self.pts[p].pt);
                p = self.pts[p].prev;
            }
            out.push(path);
        }
        out
    }

    fn point_count(&self, start: usize) -> usize {
        let mut n = 0;
        let mut p = start;
        loop {
            n += 1;
            p = self.pts[p].next;
            if p == start {
                return n;
            }
        }
    }
}
