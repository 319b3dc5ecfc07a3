//! After the sweep: joining output polygons along shared edges, and removing duplicate and collinear
//! points (`JoinCommonEdges`, `FixupOutPolygon`).

use super::*;

impl Sweep {
    pub(super) fn get_out_rec(&self, idx: i32) -> usize {
        let mut r = idx as usize;
        while r != self.recs[r].idx as usize {
            r = self.recs[r].idx as usize;
        }
        r
    }

    pub(super) fn dup_out_pt(&mut self, op: usize, insert_after: bool) -> usize {
        let (pt, idx) = (self.pts[op].pt, self.pts[op].idx);
        let r = self.new_pt(idx, pt);
        if insert_after {
            let n = self.pts[op].next;
            self.pts[r].next = n;
            self.pts[r].prev = op;
            self.pts[n].prev = r;
            self.pts[op].next = r;
        } else {
            let p = self.pts[op].prev;
            self.pts[r].prev = p;
            self.pts[r].next = op;
            self.pts[p].next = r;
            self.pts[op].prev = r;
        }
        r
    }

    /// Walks `op` along its horizontal run towards `pt` and splits there (one half of `JoinHorz`).
    pub(super) fn join_horz_side(
        &mut self,
        mut op: usize,
        left_to_right: bool,
        pt: IntPoint,
        discard_left: bool,
    ) -> (usize, usize) {
        let after;
        if left_to_right {
            loop {
                let n = self.pts[op].next;
                let (np, cp) = (self.pts[n].pt, self.pts[op].pt);
                if np.x <= pt.x && np.x >= cp.x && np.y == pt.y {
                    op = n;
                } else {
                    break;
                }
            }
            if discard_left && self.pts[op].pt.x != pt.x {
                op = self.pts[op].next;
            }
            after = !discard_left;
        } else {
            loop {
                let n = self.pts[op].next;
                let (np, cp) = (self.pts[n].pt, self.pts[op].pt);
                if np.x >= pt.x && np.x <= cp.x && np.y == pt.y {
                    op = n;
                } else {
                    break;
                }
            }
            if !discard_left && self.pts[op].pt.x != pt.x {
                op = self.pts[op].next;
            }
            after = discard_left;
        }
        let mut opb = self.dup_out_pt(op, after);
        if self.pts[opb].pt != pt {
            op = opb;
            self.pts[op].pt = pt;
            opb = self.dup_out_pt(op, after);
        }
        (op, opb)
    }

    pub(super) fn join_horz(
        &mut self,
        op1: usize,
        op1b: usize,
        op2: usize,
        op2b: usize,
        pt: IntPoint,
        discard_left: bool,
    ) -> bool {
        let dir1_ltr = self.pts[op1].pt.x <= self.pts[op1b].pt.x;
        let dir2_ltr = self.pts[op2].pt.x <= self.pts[op2b].pt.x;
        if dir1_ltr == dir2_ltr {
            return false;
        }
        let (op1, op1b) = self.join_horz_side(op1, dir1_ltr, pt, discard_left);
        let (op2, op2b) = self.join_horz_side(op2, dir2_ltr, pt, discard_left);
        if dir1_ltr == discard_left {
            self.pts[op1].prev = op2;
            self.pts[op2].next = op1;
            self.pts[op1b].next = op2b;
            self.pts[op2b].prev = op1b;
        } else {
            self.pts[op1].next = op2;
            self.pts[op2].prev = op1;
            self.pts[op1b].prev = op2b;
            self.pts[op2b].next = op1b;
        }
        true
    }

    pub(super) fn join_points(&mut self, j: &mut Join, r1: usize, r2: usize) -> bool {
        let (mut op1, mut op2) = (j.op1, j.op2);
        let is_horizontal = self.pts[op1].pt.y == j.off_pt.y;
        if is_horizontal && j.off_pt == self.pts[op1].pt && j.off_pt == self.pts[op2].pt {
            // Both points and the offset point coincide (Clipper's "strictly simple" kind of join).
            if r1 != r2 {
                return false;
            }
            let leaves_upward = |s: &Self, op: usize| {
                let mut opb = s.pts[op].next;
                while opb != op && s.pts[opb].pt == j.off_pt {
                    opb = s.pts[opb].next;
                }
                s.pts[opb].pt.y > j.off_pt.y
            };
            let reverse1 = leaves_upward(self, op1);
            if reverse1 == leaves_upward(self, op2) {
                return false;
            }
            self.splice(j, op1, op2, reverse1);
            return true;
        }
        if is_horizontal {
            // Horizontal joins: the overlap of the two horizontal runs is not known yet.
            let mut op1b = op1;
            while self.pts[self.pts[op1].prev].pt.y == self.pts[op1].pt.y
                && self.pts[op1].prev != op1b
                && self.pts[op1].prev != op2
            {
                op1 = self.pts[op1].prev;
            }
            while self.pts[self.pts[op1b].next].pt.y == self.pts[op1b].pt.y
                && self.pts[op1b].next != op1
                && self.pts[op1b].next != op2
            {
                op1b = self.pts[op1b].next;
            }
            if self.pts[op1b].next == op1 || self.pts[op1b].next == op2 {
                return false; // a flat polygon
            }
            let mut op2b = op2;
            while self.pts[self.pts[op2].prev].pt.y == self.pts[op2].pt.y
                && self.pts[op2].prev != op2b
                && self.pts[op2].prev != op1b
            {
                op2 = self.pts[op2].prev;
            }
            while self.pts[self.pts[op2b].next].pt.y == self.pts[op2b].pt.y
                && self.pts[op2b].next != op2
                && self.pts[op2b].next != op1
            {
                op2b = self.pts[op2b].next;
            }
            if self.pts[op2b].next == op2 || self.pts[op2b].next == op1 {
                return false; // a flat polygon
            }
            let (p1, p1b, p2, p2b) = (self.pts[op1].pt, self.pts[op1b].pt, self.pts[op2].pt, self.pts[op2b].pt);
            let Some((left, right)) = get_overlap(p1.x, p1b.x, p2.x, p2b.x) else {
                return false;
            };
            // Keep op1 and op2 off the discarded side: other joins may still need them.
            let (pt, discard_left) = if p1.x >= left && p1.x <= right {
                (p1, p1.x > p1b.x)
            } else if p2.x >= left && p2.x <= right {
                (p2, p2.x > p2b.x)
            } else if p1b.x >= left && p1b.x <= right {
                (p1b, p1b.x > p1.x)
            } else {
                (p2b, p2b.x > p2.x)
            };
            j.op1 = op1;
            j.op2 = op2;
            return self.join_horz(op1, op1b, op2, op2b, pt, discard_left);
        }

        // Non-horizontal joins: op1 and op2 share the bottom of the overlapping segment, off_pt is above.
        let reverse_of = |s: &Self, op: usize| -> Option<(usize, bool)> {
            let mut opb = s.pts[op].next;
            while s.pts[opb].pt == s.pts[op].pt && opb != op {
                opb = s.pts[opb].next;
            }
            let reverse = s.pts[opb].pt.y > s.pts[op].pt.y || !slopes_equal3(s.pts[op].pt, s.pts[opb].pt, j.off_pt);
            if reverse {
                opb = s.pts[op].prev;
                while s.pts[opb].pt == s.pts[op].pt && opb != op {
                    opb = s.pts[opb].prev;
                }
                if s.pts[opb].pt.y > s.pts[op].pt.y || !slopes_equal3(s.pts[op].pt, s.pts[opb].pt, j.off_pt) {
                    return None;
                }
            }
            Some((opb, reverse))
        };
        let Some((op1b, reverse1)) = reverse_of(self, op1) else {
            return false;
        };
        let Some((op2b, reverse2)) = reverse_of(self, op2) else {
            return false;
        };
        if op1b == op1 || op2b == op2 || op1b == op2b || (r1 == r2 && reverse1 == reverse2) {
            return false;
        }
        self.splice(j, op1, op2, reverse1);
        true
    }

    /// Cuts the rings at `op1` and `op2` (duplicating both) and reconnects them crosswise; `j` then holds
    /// one point of each resulting ring.
    pub(super) fn splice(&mut self, j: &mut Join, op1: usize, op2: usize, reverse1: bool) {
        let op1b = self.dup_out_pt(op1, !reverse1);
        let op2b = self.dup_out_pt(op2, reverse1);
        if reverse1 {
            self.pts[op1].prev = op2;
            self.pts[op2].next = op1;
            self.pts[op1b].next = op2b;
            self.pts[op2b].prev = op1b;
        } else {
            self.pts[op1].next = op2;
            self.pts[op2].prev = op1;
            self.pts[op1b].prev = op2b;
            self.pts[op2b].next = op1b;
        }
        j.op1 = op1;
        j.op2 = op1b;
    }

    pub(super) fn update_out_pt_idxs(&mut self, rec: usize) {
        let start = self.recs[rec].pts.expect("output polygon has points");
        let idx = self.recs[rec].idx;
        let mut op = start;
        loop {
            self.pts[op].idx = idx;
            op = self.pts[op].prev;
            if op == start {
                break;
            }
        }
    }

    /// Clipper's `PointInPolygon` on an output ring: 0 outside, 1 inside, -1 on the boundary.
    pub(super) fn point_in_polygon(&self, pt: IntPoint, start: usize) -> i32 {
        let mut result = 0;
        let mut op = start;
        loop {
            let (a, b) = (self.pts[op].pt, self.pts[self.pts[op].next].pt);
            if b.y == pt.y && (b.x == pt.x || (a.y == pt.y && ((b.x > pt.x) == (a.x < pt.x)))) {
                return -1;
            }
            if (a.y < pt.y) != (b.y < pt.y) {
                if a.x >= pt.x {
                    if b.x > pt.x {
                        result = 1 - result;
                    } else {
                        let d = (a.x - pt.x) as f64 * (b.y - pt.y) as f64 - (b.x - pt.x) as f64 * (a.y - pt.y) as f64;
                        if d == 0.0 {
                            return -1;
                        }
                        if (d > 0.0) == (b.y > a.y) {
                            result = 1 - result;
                        }
                    }
                } else if b.x > pt.x {
                    let d = (a.x - pt.x) as f64 * (b.y - pt.y) as f64 - (b.x - pt.x) as f64 * (a.y - pt.y) as f64;
                    if d == 0.0 {
                        return -1;
                    }
                    if (d > 0.0) == (b.y > a.y) {
                        result = 1 - result;
                    }
                }
            }
            op = self.pts[op].next;
            if op == start {
                return result;
            }
        }
    }

    pub(super) fn poly2_contains_poly1(&self, op1: usize, op2: usize) -> bool {
        let mut op = op1;
        loop {
            let res = self.point_in_polygon(self.pts[op].pt, op2);
            if res >= 0 {
                return res > 0;
            }
            op = self.pts[op].next;
            if op == op1 {
                return true;
            }
        }
    }

    pub(super) fn join_common_edges(&mut self) {
        let mut i = 0;
        while i < self.joins.len() {
            let mut join = self.joins[i];
            i += 1;
            let r1 = self.get_out_rec(self.pts[join.op1].idx);
            let mut r2 = self.get_out_rec(self.pts[join.op2].idx);
            if self.recs[r1].pts.is_none() || self.recs[r2].pts.is_none() {
                continue;
            }
            // The fragment with the right hole state, before joining.
            let hole_state_rec = if r1 == r2 {
                r1
            } else if self.outrec1_right_of_outrec2(r1, r2) {
                r2
            } else if self.outrec1_right_of_outrec2(r2, r1) {
                r1
            } else {
                self.get_lowermost_rec(r1, r2)
            };
            if !self.join_points(&mut join, r1, r2) {
                continue;
            }
            if r1 == r2 {
                // One polygon split in two.
                self.recs[r1].pts = Some(join.op1);
                self.recs[r1].bottom_pt = None;
                r2 = self.create_out_rec();
                self.recs[r2].pts = Some(join.op2);
                self.update_out_pt_idxs(r2);
                let (p1, p2) = (join.op1, join.op2);
                if self.poly2_contains_poly1(p2, p1) {
                    // r1 contains r2.
                    self.recs[r2].is_hole = !self.recs[r1].is_hole;
                    self.recs[r2].first_left = Some(r1);
                    if (self.recs[r2].is_hole ^ self.reverse_output) == (self.area(p2) > 0.0) {
                        self.reverse_links(p2);
                    }
                } else if self.poly2_contains_poly1(p1, p2) {
                    // r2 contains r1.
                    self.recs[r2].is_hole = self.recs[r1].is_hole;
                    self.recs[r1].is_hole = !self.recs[r2].is_hole;
                    self.recs[r2].first_left = self.recs[r1].first_left;
                    self.recs[r1].first_left = Some(r2);
                    if (self.recs[r1].is_hole ^ self.reverse_output) == (self.area(p1) > 0.0) {
                        self.reverse_links(p1);
                    }
                } else {
                    self.recs[r2].is_hole = self.recs[r1].is_hole;
                    self.recs[r2].first_left = self.recs[r1].first_left;
                }
            } else {
                // Two polygons joined into one.
                self.recs[r2].pts = None;
                self.recs[r2].bottom_pt = None;
                self.recs[r2].idx = self.recs[r1].idx;
                self.recs[r1].is_hole = self.recs[hole_state_rec].is_hole;
                if hole_state_rec == r2 {
                    self.recs[r1].first_left = self.recs[r2].first_left;
                }
                self.recs[r2].first_left = Some(r1);
            }
        }
    }

    /// Removes duplicate points and the middle vertex of collinear runs; drops polygons left with fewer
    /// than three points.
    pub(super) fn fixup_out_polygon(&mut self, rec: usize) {
        let mut last_ok: Option<usize> = None;
        self.recs[rec].bottom_pt = None;
        let Some(mut pp) = self.recs[rec].pts else { return };
        loop {
            let (prev, next) = (self.pts[pp].prev, self.pts[pp].next);
            if prev == pp || prev == next {
                self.recs[rec].pts = None;
                return;
            }
            let (a, b, c) = (self.pts[prev].pt, self.pts[pp].pt, self.pts[next].pt);
            if b == c || b == a || slopes_equal3(a, b, c) {
                last_ok = None;
                self.pts[prev].next = next;
                self.pts[next].prev = prev;
                pp = prev;
            } else if Some(pp) == last_ok {
                break;
            } else {
                if last_ok.is_none() {
                    last_ok = Some(pp);
                }
                pp = next;
            }
        }
        self.recs[rec].pts = Some(pp);
    }
}
