//! Edge geometry (`TopX`, `IntersectPoint`), the active and sorted edge lists, and winding counts.

use super::*;

impl Sweep {
    pub(super) fn top_x(&self, e: usize, y: i64) -> i64 {
        let edge = &self.edges[e];
        if y == edge.top.y {
            edge.top.x
        } else {
            edge.bot.x + round(edge.dx * (y - edge.bot.y) as f64)
        }
    }

    pub(super) fn intersect_point(&self, e1: usize, e2: usize) -> IntPoint {
        let (a, b) = (&self.edges[e1], &self.edges[e2]);
        let mut ip = IntPoint::default();
        if a.dx == b.dx {
            ip.y = a.curr.y;
            ip.x = self.top_x(e1, ip.y);
            return ip;
        } else if a.dx == 0.0 {
            ip.x = a.bot.x;
            if b.dx == HORIZONTAL {
                ip.y = b.bot.y;
            } else {
                let b2 = b.bot.y as f64 - (b.bot.x as f64 / b.dx);
                ip.y = round(ip.x as f64 / b.dx + b2);
            }
        } else if b.dx == 0.0 {
            ip.x = b.bot.x;
            if a.dx == HORIZONTAL {
                ip.y = a.bot.y;
            } else {
                let b1 = a.bot.y as f64 - (a.bot.x as f64 / a.dx);
                ip.y = round(ip.x as f64 / a.dx + b1);
            }
        } else {
            let b1 = a.bot.x as f64 - a.bot.y as f64 * a.dx;
            let b2 = b.bot.x as f64 - b.bot.y as f64 * b.dx;
            let q = (b2 - b1) / (a.dx - b.dx);
            ip.y = round(q);
            ip.x = if a.dx.abs() < b.dx.abs() {
                round(a.dx * q + b1)
            } else {
                round(b.dx * q + b2)
            };
        }
        if ip.y < a.top.y || ip.y < b.top.y {
            ip.y = if a.top.y > b.top.y { a.top.y } else { b.top.y };
            ip.x = if a.dx.abs() < b.dx.abs() {
                self.top_x(e1, ip.y)
            } else {
                self.top_x(e2, ip.y)
            };
        }
        // Never below the bottom of the scanbeam.
        if ip.y > a.curr.y {
            ip.y = a.curr.y;
            ip.x = if a.dx.abs() > b.dx.abs() {
                self.top_x(e2, ip.y)
            } else {
                self.top_x(e1, ip.y)
            };
        }
        ip
    }

    pub(super) fn e2_inserts_before_e1(&self, e1: usize, e2: usize) -> bool {
        let (a, b) = (&self.edges[e1], &self.edges[e2]);
        if b.curr.x == a.curr.x {
            if b.top.y > a.top.y {
                b.top.x < self.top_x(e1, b.top.y)
            } else {
                a.top.x > self.top_x(e2, a.top.y)
            }
        } else {
            b.curr.x < a.curr.x
        }
    }

    pub(super) fn insert_edge_into_ael(&mut self, edge: usize, start: Option<usize>) {
        let Some(head) = self.active else {
            self.edges[edge].prev_in_ael = None;
            self.edges[edge].next_in_ael = None;
            self.active = Some(edge);
            return;
        };
        if start.is_none() && self.e2_inserts_before_e1(head, edge) {
            self.edges[edge].prev_in_ael = None;
            self.edges[edge].next_in_ael = Some(head);
            self.edges[head].prev_in_ael = Some(edge);
            self.active = Some(edge);
            return;
        }
        let mut s = start.unwrap_or(head);
        while let Some(n) = self.edges[s].next_in_ael {
            if self.e2_inserts_before_e1(n, edge) {
                break;
            }
            s = n;
        }
        let n = self.edges[s].next_in_ael;
        self.edges[edge].next_in_ael = n;
        if let Some(n) = n {
            self.edges[n].prev_in_ael = Some(edge);
        }
        self.edges[edge].prev_in_ael = Some(s);
        self.edges[s].next_in_ael = Some(edge);
    }

    pub(super) fn delete_from_ael(&mut self, e: usize) {
        let (p, n) = (self.edges[e].prev_in_ael, self.edges[e].next_in_ael);
        if p.is_none() && n.is_none() && self.active != Some(e) {
            return;
        }
        match p {
            Some(p) => self.edges[p].next_in_ael = n,
            None => self.active = n,
        }
        if let Some(n) = n {
            self.edges[n].prev_in_ael = p;
        }
        self.edges[e].next_in_ael = None;
        self.edges[e].prev_in_ael = None;
    }

    pub(super) fn swap_positions_in_ael(&mut self, e1: usize, e2: usize) {
        if self.edges[e1].next_in_ael == self.edges[e1].prev_in_ael
            || self.edges[e2].next_in_ael == self.edges[e2].prev_in_ael
        {
            return;
        }
        if self.edges[e1].next_in_ael == Some(e2) {
            let next = self.edges[e2].next_in_ael;
            if let Some(n) = next {
                self.edges[n].prev_in_ael = Some(e1);
            }
            let prev = self.edges[e1].prev_in_ael;
            if let Some(p) = prev {
                self.edges[p].next_in_ael = Some(e2);
            }
            self.edges[e2].prev_in_ael = prev;
            self.edges[e2].next_in_ael = Some(e1);
            self.edges[e1].prev_in_ael = Some(e2);
            self.edges[e1].next_in_ael = next;
        } else if self.edges[e2].next_in_ael == Some(e1) {
            let next = self.edges[e1].next_in_ael;
            if let Some(n) = next {
                self.edges[n].prev_in_ael = Some(e2);
            }
            let prev = self.edges[e2].prev_in_ael;
            if let Some(p) = prev {
                self.edges[p].next_in_ael = Some(e1);
            }
            self.edges[e1].prev_in_ael = prev;
            self.edges[e1].next_in_ael = Some(e2);
            self.edges[e2].prev_in_ael = Some(e1);
            self.edges[e2].next_in_ael = next;
        } else {
            let next = self.edges[e1].next_in_ael;
            let prev = self.edges[e1].prev_in_ael;
            self.edges[e1].next_in_ael = self.edges[e2].next_in_ael;
            if let Some(n) = self.edges[e1].next_in_ael {
                self.edges[n].prev_in_ael = Some(e1);
            }
            self.edges[e1].prev_in_ael = self.edges[e2].prev_in_ael;
            if let Some(p) = self.edges[e1].prev_in_ael {
                self.edges[p].next_in_ael = Some(e1);
            }
            self.edges[e2].next_in_ael = next;
            if let Some(n) = next {
                self.edges[n].prev_in_ael = Some(e2);
            }
            self.edges[e2].prev_in_ael = prev;
            if let Some(p) = prev {
                self.edges[p].next_in_ael = Some(e2);
            }
        }
        if self.edges[e1].prev_in_ael.is_none() {
            self.active = Some(e1);
        } else if self.edges[e2].prev_in_ael.is_none() {
            self.active = Some(e2);
        }
    }

    pub(super) fn add_edge_to_sel(&mut self, e: usize) {
        self.edges[e].prev_in_sel = None;
        self.edges[e].next_in_sel = self.sorted;
        if let Some(s) = self.sorted {
            self.edges[s].prev_in_sel = Some(e);
        }
        self.sorted = Some(e);
    }

    pub(super) fn delete_from_sel(&mut self, e: usize) {
        let (p, n) = (self.edges[e].prev_in_sel, self.edges[e].next_in_sel);
        if p.is_none() && n.is_none() && self.sorted != Some(e) {
            return;
        }
        match p {
            Some(p) => self.edges[p].next_in_sel = n,
            None => self.sorted = n,
        }
        if let Some(n) = n {
            self.edges[n].prev_in_sel = p;
        }
        self.edges[e].next_in_sel = None;
        self.edges[e].prev_in_sel = None;
    }

    pub(super) fn pop_edge_from_sel(&mut self) -> Option<usize> {
        let e = self.sorted?;
        self.delete_from_sel(e);
        Some(e)
    }

    pub(super) fn copy_ael_to_sel(&mut self) {
        self.sorted = self.active;
        let mut e = self.active;
        while let Some(x) = e {
            self.edges[x].prev_in_sel = self.edges[x].prev_in_ael;
            self.edges[x].next_in_sel = self.edges[x].next_in_ael;
            e = self.edges[x].next_in_ael;
        }
    }

    pub(super) fn swap_positions_in_sel(&mut self, e1: usize, e2: usize) {
        if self.edges[e1].next_in_sel.is_none() && self.edges[e1].prev_in_sel.is_none() {
            return;
        }
        if self.edges[e2].next_in_sel.is_none() && self.edges[e2].prev_in_sel.is_none() {
            return;
        }
        if self.edges[e1].next_in_sel == Some(e2) {
            let next = self.edges[e2].next_in_sel;
            if let Some(n) = next {
                self.edges[n].prev_in_sel = Some(e1);
            }
            let prev = self.edges[e1].prev_in_sel;
            if let Some(p) = prev {
                self.edges[p].next_in_sel = Some(e2);
            }
            self.edges[e2].prev_in_sel = prev;
            self.edges[e2].next_in_sel = Some(e1);
            self.edges[e1].prev_in_sel = Some(e2);
            self.edges[e1].next_in_sel = next;
        } else if self.edges[e2].next_in_sel == Some(e1) {
            let next = self.edges[e1].next_in_sel;
            if let Some(n) = next {
                self.edges[n].prev_in_sel = Some(e2);
            }
            let prev = self.edges[e2].prev_in_sel;
            if let Some(p) = prev {
                self.edges[p].next_in_sel = Some(e1);
            }
            self.edges[e1].prev_in_sel = prev;
            self.edges[e1].next_in_sel = Some(e2);
            self.edges[e2].prev_in_sel = Some(e1);
            self.edges[e2].next_in_sel = next;
        } else {
            let next = self.edges[e1].next_in_sel;
            let prev = self.edges[e1].prev_in_sel;
            self.edges[e1].next_in_sel = self.edges[e2].next_in_sel;
            if let Some(n) = self.edges[e1].next_in_sel {
                self.edges[n].prev_in_sel = Some(e1);
            }
            self.edges[e1].prev_in_sel = self.edges[e2].prev_in_sel;
            if let Some(p) = self.edges[e1].prev_in_sel {
                self.edges[p].next_in_sel = Some(e1);
            }
            self.edges[e2].next_in_sel = next;
            if let Some(n) = next {
                self.edges[n].prev_in_sel = Some(e2);
            }
            self.edges[e2].prev_in_sel = prev;
            if let Some(p) = prev {
                self.edges[p].next_in_sel = Some(e2);
            }
        }
        if self.edges[e1].prev_in_sel.is_none() {
            self.sorted = Some(e1);
        } else if self.edges[e2].prev_in_sel.is_none() {
            self.sorted = Some(e2);
        }
    }

    /// Replaces `e` in the active list by the next edge of its bound and returns that edge.
    pub(super) fn update_edge_into_ael(&mut self, e: usize) -> Res<usize> {
        let n = self.edges[e].next_in_lml.ok_or(SweepFailed)?;
        let (p_ael, n_ael) = (self.edges[e].prev_in_ael, self.edges[e].next_in_ael);
        self.edges[n].out_idx = self.edges[e].out_idx;
        match p_ael {
            Some(p) => self.edges[p].next_in_ael = Some(n),
            None => self.active = Some(n),
        }
        if let Some(x) = n_ael {
            self.edges[x].prev_in_ael = Some(n);
        }
        self.edges[n].side = self.edges[e].side;
        self.edges[n].wind_delta = self.edges[e].wind_delta;
        self.edges[n].wind_cnt = self.edges[e].wind_cnt;
        let edge = &mut self.edges[n];
        edge.curr = edge.bot;
        edge.prev_in_ael = p_ael;
        edge.next_in_ael = n_ael;
        if edge.dx != HORIZONTAL {
            let y = edge.top.y;
            self.scanbeam.push(y);
        }
        Ok(n)
    }

    // ---------------------------------------------------------------------------------------------------
    // Winding

    pub(super) fn set_winding_count(&mut self, edge: usize) {
        // Every edge is a closed subject edge (winding delta ±1), so the closest preceding edge is the
        // one to count from, and the second winding count (against clip paths) stays 0.
        let e = self.edges[edge].prev_in_ael;
        let wd = self.edges[edge].wind_delta;
        let cnt = match e {
            None => wd,
            Some(e) => {
                let (ec, ed) = (self.edges[e].wind_cnt, self.edges[e].wind_delta);
                if ec * ed < 0 {
                    if ec.abs() > 1 {
                        if ed * wd < 0 { ec } else { ec + wd }
                    } else {
                        wd
                    }
                } else if ed * wd < 0 {
                    ec
                } else {
                    ec + wd
                }
            }
        };
        self.edges[edge].wind_cnt = cnt;
    }

    pub(super) fn is_contributing(&self, e: usize) -> bool {
        let c = self.edges[e].wind_cnt;
        match self.fill {
            FillType::Positive => c == 1,
            FillType::Negative => c == -1,
        }
    }

    pub(super) fn fill_wc(&self, e: usize) -> i32 {
        let c = self.edges[e].wind_cnt;
        match self.fill {
            FillType::Positive => c,
            FillType::Negative => -c,
        }
    }
}
