//! Adding closed paths: Clipper's edge set-up, clean-up of duplicate and collinear vertices, and the
//! local minima with their left and right bounds (`ClipperBase::AddPath`, `ProcessBound`, `GetBounds`).

use super::*;

impl Sweep {
    pub(super) fn is_horizontal(&self, e: usize) -> bool {
        self.edges[e].dx == HORIZONTAL
    }

    pub(super) fn next(&self, e: usize) -> usize {
        self.edges[e].next
    }

    pub(super) fn prev(&self, e: usize) -> usize {
        self.edges[e].prev
    }

    pub(super) fn remove_edge(&mut self, e: usize) -> usize {
        let (p, n) = (self.edges[e].prev, self.edges[e].next);
        self.edges[p].next = n;
        self.edges[n].prev = p;
        n
    }

    pub(super) fn reverse_horizontal(&mut self, e: usize) {
        let edge = &mut self.edges[e];
        std::mem::swap(&mut edge.top.x, &mut edge.bot.x);
    }

    /// Adds one closed path; false when it has no area to contribute (fewer than three distinct vertices
    /// after Clipper's clean-up, or all on one horizontal line).
    pub(in crate::det::clipper) fn add_path(&mut self, pg: &[IntPoint]) -> bool {
        let mut high = pg.len() as isize - 1;
        while high > 0 && pg[high as usize] == pg[0] {
            high -= 1;
        }
        while high > 0 && pg[high as usize] == pg[high as usize - 1] {
            high -= 1;
        }
        if high < 2 {
            return false;
        }
        let n = high as usize + 1;
        let base = self.edges.len();
        for (i, &pt) in pg[..n].iter().enumerate() {
            self.edges.push(Edge {
                bot: IntPoint::default(),
                curr: pt,
                top: IntPoint::default(),
                dx: 0.0,
                side: Side::Left,
                wind_delta: 0,
                wind_cnt: 0,
                out_idx: UNASSIGNED,
                next: base + (i + 1) % n,
                prev: base + (i + n - 1) % n,
                next_in_lml: None,
                next_in_ael: None,
                prev_in_ael: None,
                next_in_sel: None,
                prev_in_sel: None,
            });
        }

        // Remove duplicate vertices and merge collinear edges.
        let mut e_start = base;
        let mut e = e_start;
        let mut e_loop_stop = e_start;
        loop {
            if self.edges[e].curr == self.edges[self.next(e)].curr {
                if e == self.next(e) {
                    break;
                }
                if e == e_start {
                    e_start = self.next(e);
                }
                e = self.remove_edge(e);
                e_loop_stop = e;
                continue;
            }
            if self.prev(e) == self.next(e) {
                break;
            } else if slopes_equal3(
                self.edges[self.prev(e)].curr,
                self.edges[e].curr,
                self.edges[self.next(e)].curr,
            ) {
                if e == e_start {
                    e_start = self.next(e);
                }
                e = self.remove_edge(e);
                e = self.prev(e);
                e_loop_stop = e;
                continue;
            }
            e = self.next(e);
            if e == e_loop_stop {
                break;
            }
        }
        if self.prev(e) == self.next(e) {
            return false;
        }

        // Second stage of edge initialisation.
        let mut is_flat = true;
        e = e_start;
        loop {
            let next_curr = self.edges[self.next(e)].curr;
            let edge = &mut self.edges[e];
            if edge.curr.y >= next_curr.y {
                edge.bot = edge.curr;
                edge.top = next_curr;
            } else {
                edge.top = edge.curr;
                edge.bot = next_curr;
            }
            let dy = edge.top.y - edge.bot.y;
            edge.dx = if dy == 0 {
                HORIZONTAL
            } else {
                (edge.top.x - edge.bot.x) as f64 / dy as f64
            };
            e = self.next(e);
            if is_flat && self.edges[e].curr.y != self.edges[e_start].curr.y {
                is_flat = false;
            }
            if e == e_start {
                break;
            }
        }
        if is_flat {
            return false;
        }

        // Add the bounds to the local minima list.
        let p = self.prev(e);
        if self.edges[p].bot == self.edges[p].top {
            e = self.next(e);
        }
        let mut e_min: Option<usize> = None;
        loop {
            e = self.find_next_loc_min(e);
            if Some(e) == e_min {
                break;
            } else if e_min.is_none() {
                e_min = Some(e);
            }
            let y = self.edges[e].bot.y;
            let (lb, rb, left_forward) = if self.edges[e].dx < self.edges[self.prev(e)].dx {
                (self.prev(e), e, false)
            } else {
                (e, self.prev(e), true)
            };
            let wd = if self.next(lb) == rb { -1 } else { 1 };
            self.edges[lb].wind_delta = wd;
            self.edges[rb].wind_delta = -wd;
            let e1 = self.process_bound(lb, left_forward);
            let e2 = self.process_bound(rb, !left_forward);
            self.minima.push(LocalMinimum { y, left: lb, right: rb });
            e = if left_forward { e1 } else { e2 };
        }
        true
    }

    pub(super) fn find_next_loc_min(&self, mut e: usize) -> usize {
        loop {
            while self.edges[e].bot != self.edges[self.prev(e)].bot || self.edges[e].curr == self.edges[e].top {
                e = self.next(e);
            }
            if !self.is_horizontal(e) && !self.is_horizontal(self.prev(e)) {
                break;
            }
            while self.is_horizontal(self.prev(e)) {
                e = self.prev(e);
            }
            let e2 = e;
            while self.is_horizontal(e) {
                e = self.next(e);
            }
            if self.edges[e].top.y == self.edges[self.prev(e)].bot.y {
                continue; // just an intermediate horizontal
            }
            if self.edges[self.prev(e2)].bot.x < self.edges[e].bot.x {
                e = e2;
            }
            break;
        }
        e
    }

    pub(super) fn process_bound(&mut self, mut e: usize, next_is_forward: bool) -> usize {
        let mut result = e;
        if self.is_horizontal(e) {
            let e_start = if next_is_forward { self.prev(e) } else { self.next(e) };
            if self.is_horizontal(e_start) {
                if self.edges[e_start].bot.x != self.edges[e].bot.x && self.edges[e_start].top.x != self.edges[e].bot.x
                {
                    self.reverse_horizontal(e);
                }
            } else if self.edges[e_start].bot.x != self.edges[e].bot.x {
                self.reverse_horizontal(e);
            }
        }
        let e_start = e;
        if next_is_forward {
            while self.edges[result].top.y == self.edges[self.next(result)].bot.y {
                result = self.next(result);
            }
            if self.is_horizontal(result) {
                let mut horz = result;
                while self.is_horizontal(self.prev(horz)) {
                    horz = self.prev(horz);
                }
                if self.edges[self.prev(horz)].top.x > self.edges[self.next(result)].top.x {
                    result = self.prev(horz);
                }
            }
            while e != result {
                self.edges[e].next_in_lml = Some(self.next(e));
                if self.is_horizontal(e) && e != e_start && self.edges[e].bot.x != self.edges[self.prev(e)].top.x {
                    self.reverse_horizontal(e);
                }
                e = self.next(e);
            }
            if self.is_horizontal(e) && e != e_start && self.edges[e].bot.x != self.edges[self.prev(e)].top.x {
                self.reverse_horizontal(e);
            }
            self.next(result)
        } else {
            while self.edges[result].top.y == self.edges[self.prev(result)].bot.y {
                result = self.prev(result);
            }
            if self.is_horizontal(result) {
                let mut horz = result;
                while self.is_horizontal(self.next(horz)) {
                    horz = self.next(horz);
                }
                if self.edges[self.next(horz)].top.x >= self.edges[self.prev(result)].top.x {
                    result = self.next(horz);
                }
            }
            while e != result {
                self.edges[e].next_in_lml = Some(self.prev(e));
                if self.is_horizontal(e) && e != e_start && self.edges[e].bot.x != self.edges[self.next(e)].top.x {
                    self.reverse_horizontal(e);
                }
                e = self.prev(e);
            }
            if self.is_horizontal(e) && e != e_start && self.edges[e].bot.x != self.edges[self.next(e)].top.x {
                self.reverse_horizontal(e);
            }
            self.prev(result)
        }
    }

    /// Clipper's `GetBounds`: `(left, top, right, bottom)` of every added path, or zeros when none.
    pub(in crate::det::clipper) fn bounds(&self) -> (i64, i64, i64, i64) {
        let Some(first) = self.minima.first() else {
            return (0, 0, 0, 0);
        };
        let b = self.edges[first.left].bot;
        let (mut left, mut top, mut right, mut bottom) = (b.x, b.y, b.x, b.y);
        for lm in &self.minima {
            bottom = bottom.max(self.edges[lm.left].bot.y);
            for start in [lm.left, lm.right] {
                let mut e = start;
                while let Some(n) = self.edges[e].next_in_lml {
                    left = left.min(self.edges[e].bot.x);
                    right = right.max(self.edges[e].bot.x);
                    e = n;
                }
                let edge = &self.edges[e];
                left = left.min(edge.bot.x).min(edge.top.x);
                right = right.max(edge.bot.x).max(edge.top.x);
                top = top.min(edge.top.y);
            }
        }
        (left, top, right, bottom)
    }
}
