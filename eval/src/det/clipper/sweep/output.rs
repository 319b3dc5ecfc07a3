//! Output polygons: adding points, opening polygons at local minima and closing them at local maxima,
//! hole states, and Clipper's choice of a polygon's bottom point.

use super::*;

impl Sweep {
    pub(super) fn new_pt(&mut self, idx: i32, pt: IntPoint) -> usize {
        let i = self.pts.len();
        self.pts.push(OutPt {
            idx,
            pt,
            next: i,
            prev: i,
        });
        i
    }

    pub(super) fn create_out_rec(&mut self) -> usize {
        let i = self.recs.len();
        self.recs.push(OutRec {
            idx: i as i32,
            is_hole: false,
            first_left: None,
            pts: None,
            bottom_pt: None,
        });
        i
    }

    pub(super) fn add_out_pt(&mut self, e: usize, pt: IntPoint) -> usize {
        if self.edges[e].out_idx < 0 {
            let r = self.create_out_rec();
            let op = self.new_pt(r as i32, pt);
            self.recs[r].pts = Some(op);
            self.set_hole_state(e, r);
            self.edges[e].out_idx = r as i32;
            return op;
        }
        let r = self.edges[e].out_idx as usize;
        let op = self.recs[r].pts.expect("an edge's output polygon has points");
        let to_front = self.edges[e].side == Side::Left;
        if to_front && pt == self.pts[op].pt {
            return op;
        } else if !to_front && pt == self.pts[self.pts[op].prev].pt {
            return self.pts[op].prev;
        }
        let new = self.new_pt(r as i32, pt);
        let op_prev = self.pts[op].prev;
        self.pts[new].next = op;
        self.pts[new].prev = op_prev;
        self.pts[op_prev].next = new;
        self.pts[op].prev = new;
        if to_front {
            self.recs[r].pts = Some(new);
        }
        new
    }

    pub(super) fn get_last_out_pt(&self, e: usize) -> usize {
        let r = &self.recs[self.edges[e].out_idx as usize];
        let p = r.pts.expect("an edge's output polygon has points");
        if self.edges[e].side == Side::Left {
            p
        } else {
            self.pts[p].prev
        }
    }

    pub(super) fn set_hole_state(&mut self, e: usize, rec: usize) {
        let mut e2 = self.edges[e].prev_in_ael;
        let mut e_tmp: Option<usize> = None;
        while let Some(x) = e2 {
            if self.edges[x].out_idx >= 0 {
                match e_tmp {
                    None => e_tmp = Some(x),
                    Some(t) if self.edges[t].out_idx == self.edges[x].out_idx => e_tmp = None,
                    Some(_) => {}
                }
            }
            e2 = self.edges[x].prev_in_ael;
        }
        match e_tmp {
            None => {
                self.recs[rec].first_left = None;
                self.recs[rec].is_hole = false;
            }
            Some(t) => {
                let fl = self.edges[t].out_idx as usize;
                self.recs[rec].first_left = Some(fl);
                self.recs[rec].is_hole = !self.recs[fl].is_hole;
            }
        }
    }

    pub(super) fn add_local_min_poly(&mut self, e1: usize, e2: usize, pt: IntPoint) -> usize {
        let (result, e, prev_e);
        if self.is_horizontal(e2) || self.edges[e1].dx > self.edges[e2].dx {
            result = self.add_out_pt(e1, pt);
            self.edges[e2].out_idx = self.edges[e1].out_idx;
            self.edges[e1].side = Side::Left;
            self.edges[e2].side = Side::Right;
            e = e1;
            prev_e = if self.edges[e].prev_in_ael == Some(e2) {
                self.edges[e2].prev_in_ael
            } else {
                self.edges[e].prev_in_ael
            };
        } else {
            result = self.add_out_pt(e2, pt);
            self.edges[e1].out_idx = self.edges[e2].out_idx;
            self.edges[e1].side = Side::Right;
            self.edges[e2].side = Side::Left;
            e = e2;
            prev_e = if self.edges[e].prev_in_ael == Some(e1) {
                self.edges[e1].prev_in_ael
            } else {
                self.edges[e].prev_in_ael
            };
        }
        if let Some(pe) = prev_e
            && self.edges[pe].out_idx >= 0
            && self.edges[pe].top.y < pt.y
            && self.edges[e].top.y < pt.y
        {
            let x_prev = self.top_x(pe, pt.y);
            let x_e = self.top_x(e, pt.y);
            if x_prev == x_e
                && slopes_equal4(
                    IntPoint { x: x_prev, y: pt.y },
                    self.edges[pe].top,
                    IntPoint { x: x_e, y: pt.y },
                    self.edges[e].top,
                )
            {
                let op = self.add_out_pt(pe, pt);
                let off = self.edges[e].top;
                self.joins.push(Join {
                    op1: result,
                    op2: op,
                    off_pt: off,
                });
            }
        }
        result
    }

    pub(super) fn add_local_max_poly(&mut self, e1: usize, e2: usize, pt: IntPoint) {
        self.add_out_pt(e1, pt);
        let (i1, i2) = (self.edges[e1].out_idx, self.edges[e2].out_idx);
        if i1 == i2 {
            self.edges[e1].out_idx = UNASSIGNED;
            self.edges[e2].out_idx = UNASSIGNED;
        } else if i1 < i2 {
            self.append_polygon(e1, e2);
        } else {
            self.append_polygon(e2, e1);
        }
    }

    pub(super) fn outrec1_right_of_outrec2(&self, mut r1: usize, r2: usize) -> bool {
        loop {
            match self.recs[r1].first_left {
                Some(fl) => {
                    r1 = fl;
                    if r1 == r2 {
                        return true;
                    }
                }
                None => return false,
            }
        }
    }

    pub(super) fn append_polygon(&mut self, e1: usize, e2: usize) {
        let r1 = self.edges[e1].out_idx as usize;
        let r2 = self.edges[e2].out_idx as usize;
        let hole_state_rec = if self.outrec1_right_of_outrec2(r1, r2) {
            r2
        } else if self.outrec1_right_of_outrec2(r2, r1) {
            r1
        } else {
            self.get_lowermost_rec(r1, r2)
        };

        let p1_lft = self.recs[r1].pts.expect("output polygon has points");
        let p1_rt = self.pts[p1_lft].prev;
        let p2_lft = self.recs[r2].pts.expect("output polygon has points");
        let p2_rt = self.pts[p2_lft].prev;

        if self.edges[e1].side == Side::Left {
            if self.edges[e2].side == Side::Left {
                // z y x a b c
                self.reverse_links(p2_lft);
                self.pts[p2_lft].next = p1_lft;
                self.pts[p1_lft].prev = p2_lft;
                self.pts[p1_rt].next = p2_rt;
                self.pts[p2_rt].prev = p1_rt;
                self.recs[r1].pts = Some(p2_rt);
            } else {
                // x y z a b c
                self.pts[p2_rt].next = p1_lft;
                self.pts[p1_lft].prev = p2_rt;
                self.pts[p2_lft].prev = p1_rt;
                self.pts[p1_rt].next = p2_lft;
                self.recs[r1].pts = Some(p2_lft);
            }
        } else if self.edges[e2].side == Side::Right {
            // a b c z y x
            self.reverse_links(p2_lft);
            self.pts[p1_rt].next = p2_rt;
            self.pts[p2_rt].prev = p1_rt;
            self.pts[p2_lft].next = p1_lft;
            self.pts[p1_lft].prev = p2_lft;
        } else {
            // a b c x y z
            self.pts[p1_rt].next = p2_lft;
            self.pts[p2_lft].prev = p1_rt;
            self.pts[p1_lft].prev = p2_rt;
            self.pts[p2_rt].next = p1_lft;
        }

        self.recs[r1].bottom_pt = None;
        if hole_state_rec == r2 {
            if self.recs[r2].first_left != Some(r1) {
                self.recs[r1].first_left = self.recs[r2].first_left;
            }
            self.recs[r1].is_hole = self.recs[r2].is_hole;
        }
        self.recs[r2].pts = None;
        self.recs[r2].bottom_pt = None;
        self.recs[r2].first_left = Some(r1);

        let ok_idx = self.edges[e1].out_idx;
        let obsolete_idx = self.edges[e2].out_idx;
        self.edges[e1].out_idx = UNASSIGNED;
        self.edges[e2].out_idx = UNASSIGNED;
        let side = self.edges[e1].side;
        let mut e = self.active;
        while let Some(x) = e {
            if self.edges[x].out_idx == obsolete_idx {
                self.edges[x].out_idx = ok_idx;
                self.edges[x].side = side;
                break;
            }
            e = self.edges[x].next_in_ael;
        }
        self.recs[r2].idx = self.recs[r1].idx;
    }

    pub(super) fn reverse_links(&mut self, start: usize) {
        let mut p1 = start;
        loop {
            let pt = &mut self.pts[p1];
            std::mem::swap(&mut pt.next, &mut pt.prev);
            p1 = pt.prev;
            if p1 == start {
                break;
            }
        }
    }

    pub(super) fn area(&self, start: usize) -> f64 {
        let mut a = 0.0;
        let mut op = start;
        loop {
            let prev = self.pts[self.pts[op].prev].pt;
            let pt = self.pts[op].pt;
            a += (prev.x + pt.x) as f64 * (prev.y - pt.y) as f64;
            op = self.pts[op].next;
            if op == start {
                break;
            }
        }
        a * 0.5
    }

    pub(super) fn get_lowermost_rec(&mut self, r1: usize, r2: usize) -> usize {
        if self.recs[r1].bottom_pt.is_none() {
            let b = self.get_bottom_pt(self.recs[r1].pts.expect("output polygon has points"));
            self.recs[r1].bottom_pt = Some(b);
        }
        if self.recs[r2].bottom_pt.is_none() {
            let b = self.get_bottom_pt(self.recs[r2].pts.expect("output polygon has points"));
            self.recs[r2].bottom_pt = Some(b);
        }
        let (b1, b2) = (
            self.recs[r1].bottom_pt.unwrap_or(0),
            self.recs[r2].bottom_pt.unwrap_or(0),
        );
        let (p1, p2) = (self.pts[b1].pt, self.pts[b2].pt);
        if p1.y != p2.y {
            return if p1.y > p2.y { r1 } else { r2 };
        }
        if p1.x != p2.x {
            return if p1.x < p2.x { r1 } else { r2 };
        }
        if self.pts[b1].next == b1 {
            return r2;
        }
        if self.pts[b2].next == b2 || self.first_is_bottom_pt(b1, b2) {
            r1
        } else {
            r2
        }
    }

    pub(super) fn get_bottom_pt(&self, mut pp: usize) -> usize {
        let mut dups: Option<usize> = None;
        let mut p = self.pts[pp].next;
        while p != pp {
            let (pt, best) = (self.pts[p].pt, self.pts[pp].pt);
            if pt.y > best.y {
                pp = p;
                dups = None;
            } else if pt.y == best.y && pt.x <= best.x {
                if pt.x < best.x {
                    dups = None;
                    pp = p;
                } else if self.pts[p].next != pp && self.pts[p].prev != pp {
                    dups = Some(p);
                }
            }
            p = self.pts[p].next;
        }
        if let Some(mut d) = dups {
            // At least two vertices at the bottom point.
            while d != p {
                if !self.first_is_bottom_pt(p, d) {
                    pp = d;
                }
                d = self.pts[d].next;
                while self.pts[d].pt != self.pts[pp].pt {
                    d = self.pts[d].next;
                }
            }
        }
        pp
    }

    pub(super) fn first_is_bottom_pt(&self, b1: usize, b2: usize) -> bool {
        let slope = |b: usize, forward: bool| {
            let mut p = if forward { self.pts[b].next } else { self.pts[b].prev };
            while self.pts[p].pt == self.pts[b].pt && p != b {
                p = if forward { self.pts[p].next } else { self.pts[p].prev };
            }
            get_dx(self.pts[b].pt, self.pts[p].pt).abs()
        };
        let (dx1p, dx1n) = (slope(b1, false), slope(b1, true));
        let (dx2p, dx2n) = (slope(b2, false), slope(b2, true));
        if dx1p.max(dx1n) == dx2p.max(dx2n) && dx1p.min(dx1n) == dx2p.min(dx2n) {
            self.area(b1) > 0.0
        } else {
            (dx1p >= dx2p && dx1p >= dx2n) || (dx1n >= dx2p && dx1n >= dx2n)
        }
    }
}
