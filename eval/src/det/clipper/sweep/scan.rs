//! The scanbeam steps: inserting local minima, intersecting edges, horizontals, intersections within a
//! scanbeam, and the edges at its top.

use super::*;

impl Sweep {
    pub(super) fn insert_local_minima_into_ael(&mut self, bot_y: i64) -> Res<()> {
        while self.current_lm < self.minima.len() && self.minima[self.current_lm].y == bot_y {
            let lm = self.minima[self.current_lm];
            self.current_lm += 1;
            let (lb, rb) = (lm.left, lm.right);

            self.insert_edge_into_ael(lb, None);
            self.insert_edge_into_ael(rb, Some(lb));
            self.set_winding_count(lb);
            self.edges[rb].wind_cnt = self.edges[lb].wind_cnt;
            let mut op1 = None;
            if self.is_contributing(lb) {
                let bot = self.edges[lb].bot;
                op1 = Some(self.add_local_min_poly(lb, rb, bot));
            }
            let lb_top = self.edges[lb].top.y;
            self.scanbeam.push(lb_top);

            if self.is_horizontal(rb) {
                self.add_edge_to_sel(rb);
                if let Some(n) = self.edges[rb].next_in_lml {
                    let y = self.edges[n].top.y;
                    self.scanbeam.push(y);
                }
            } else {
                let y = self.edges[rb].top.y;
                self.scanbeam.push(y);
            }

            // Output polygons that share an edge need joining later.
            if let Some(op1) = op1
                && self.is_horizontal(rb)
                && !self.ghost_joins.is_empty()
            {
                for i in 0..self.ghost_joins.len() {
                    let jr = self.ghost_joins[i];
                    if horz_segments_overlap(
                        self.pts[jr.op1].pt.x,
                        jr.off_pt.x,
                        self.edges[rb].bot.x,
                        self.edges[rb].top.x,
                    ) {
                        self.joins.push(Join {
                            op1: jr.op1,
                            op2: op1,
                            off_pt: jr.off_pt,
                        });
                    }
                }
            }

            if self.edges[lb].out_idx >= 0
                && let Some(pl) = self.edges[lb].prev_in_ael
                && self.edges[pl].curr.x == self.edges[lb].bot.x
                && self.edges[pl].out_idx >= 0
                && slopes_equal4(
                    self.edges[pl].bot,
                    self.edges[pl].top,
                    self.edges[lb].curr,
                    self.edges[lb].top,
                )
            {
                let bot = self.edges[lb].bot;
                let op2 = self.add_out_pt(pl, bot);
                let off = self.edges[lb].top;
                // Clipper passes the (possibly null) Op1 here; it is set whenever lb has an output index.
                if let Some(op1) = op1 {
                    self.joins.push(Join { op1, op2, off_pt: off });
                }
            }

            if self.edges[lb].next_in_ael != Some(rb) {
                if self.edges[rb].out_idx >= 0
                    && let Some(pr) = self.edges[rb].prev_in_ael
                    && self.edges[pr].out_idx >= 0
                    && slopes_equal4(
                        self.edges[pr].curr,
                        self.edges[pr].top,
                        self.edges[rb].curr,
                        self.edges[rb].top,
                    )
                {
                    let bot = self.edges[rb].bot;
                    let op2 = self.add_out_pt(pr, bot);
                    let off = self.edges[rb].top;
                    if let Some(op1) = op1 {
                        self.joins.push(Join { op1, op2, off_pt: off });
                    }
                }
                let mut e = self.edges[lb].next_in_ael;
                let curr = self.edges[lb].curr;
                while let Some(x) = e {
                    if x == rb {
                        break;
                    }
                    // The first edge must be to the right of the second above the intersection.
                    self.intersect_edges(rb, x, curr);
                    e = self.edges[x].next_in_ael;
                }
            }
        }
        Ok(())
    }

    pub(super) fn intersect_edges(&mut self, e1: usize, e2: usize, pt: IntPoint) {
        let e1_contributing = self.edges[e1].out_idx >= 0;
        let e2_contributing = self.edges[e2].out_idx >= 0;

        let (d1, d2) = (self.edges[e1].wind_delta, self.edges[e2].wind_delta);
        let a = &mut self.edges[e1];
        if a.wind_cnt + d2 == 0 {
            a.wind_cnt = -a.wind_cnt
        } else {
            a.wind_cnt += d2
        }
        let b = &mut self.edges[e2];
        if b.wind_cnt - d1 == 0 {
            b.wind_cnt = -b.wind_cnt
        } else {
            b.wind_cnt -= d1
        }
        let e1_wc = self.fill_wc(e1);
        let e2_wc = self.fill_wc(e2);
        let zero_or_one = |w: i32| w == 0 || w == 1;

        if e1_contributing && e2_contributing {
            if !zero_or_one(e1_wc) || !zero_or_one(e2_wc) {
                self.add_local_max_poly(e1, e2, pt);
            } else {
                self.add_out_pt(e1, pt);
                self.add_out_pt(e2, pt);
                self.swap_sides(e1, e2);
                self.swap_poly_indexes(e1, e2);
            }
        } else if e1_contributing {
            if zero_or_one(e2_wc) {
                self.add_out_pt(e1, pt);
                self.swap_sides(e1, e2);
                self.swap_poly_indexes(e1, e2);
            }
        } else if e2_contributing {
            if zero_or_one(e1_wc) {
                self.add_out_pt(e2, pt);
                self.swap_sides(e1, e2);
                self.swap_poly_indexes(e1, e2);
            }
        } else if zero_or_one(e1_wc) && zero_or_one(e2_wc) {
            if e1_wc == 1 && e2_wc == 1 {
                self.add_local_min_poly(e1, e2, pt);
            } else {
                self.swap_sides(e1, e2);
            }
        }
    }

    pub(super) fn swap_sides(&mut self, e1: usize, e2: usize) {
        let s = self.edges[e1].side;
        self.edges[e1].side = self.edges[e2].side;
        self.edges[e2].side = s;
    }

    pub(super) fn swap_poly_indexes(&mut self, e1: usize, e2: usize) {
        let i = self.edges[e1].out_idx;
        self.edges[e1].out_idx = self.edges[e2].out_idx;
        self.edges[e2].out_idx = i;
    }

    pub(super) fn get_maxima_pair(&self, e: usize) -> Option<usize> {
        let (n, p) = (self.next(e), self.prev(e));
        if self.edges[n].top == self.edges[e].top && self.edges[n].next_in_lml.is_none() {
            Some(n)
        } else if self.edges[p].top == self.edges[e].top && self.edges[p].next_in_lml.is_none() {
            Some(p)
        } else {
            None
        }
    }

    /// As `get_maxima_pair`, but none when the pair is not in the active list (unless horizontal).
    pub(super) fn get_maxima_pair_ex(&self, e: usize) -> Option<usize> {
        let r = self.get_maxima_pair(e)?;
        if self.edges[r].next_in_ael == self.edges[r].prev_in_ael && !self.is_horizontal(r) {
            return None;
        }
        Some(r)
    }

    pub(super) fn process_horizontals(&mut self) -> Res<()> {
        while let Some(e) = self.pop_edge_from_sel() {
            self.process_horizontal(e)?;
        }
        Ok(())
    }

    pub(super) fn horz_direction(&self, e: usize) -> (bool, i64, i64) {
        let edge = &self.edges[e];
        if edge.bot.x < edge.top.x {
            (true, edge.bot.x, edge.top.x)
        } else {
            (false, edge.top.x, edge.bot.x)
        }
    }

    pub(super) fn process_horizontal(&mut self, mut horz: usize) -> Res<()> {
        let (mut left_to_right, mut horz_left, mut horz_right) = self.horz_direction(horz);

        let mut e_last_horz = horz;
        while let Some(n) = self.edges[e_last_horz].next_in_lml {
            if !self.is_horizontal(n) {
                break;
            }
            e_last_horz = n;
        }
        let e_max_pair = if self.edges[e_last_horz].next_in_lml.is_none() {
            self.get_maxima_pair(e_last_horz)
        } else {
            None
        };

        let mut op1: Option<usize> = None;
        loop {
            let is_last_horz = horz == e_last_horz;
            let mut e = if left_to_right {
                self.edges[horz].next_in_ael
            } else {
                self.edges[horz].prev_in_ael
            };
            while let Some(x) = e {
                let cx = self.edges[x].curr.x;
                if (left_to_right && cx > horz_right) || (!left_to_right && cx < horz_left) {
                    break;
                }
                // Also stop at the end of an intermediate horizontal: smaller slopes are to the right of
                // larger ones above the horizontal.
                if cx == self.edges[horz].top.x
                    && let Some(nl) = self.edges[horz].next_in_lml
                    && self.edges[x].dx < self.edges[nl].dx
                {
                    break;
                }

                if self.edges[horz].out_idx >= 0 {
                    let curr = self.edges[x].curr;
                    let op = self.add_out_pt(horz, curr);
                    op1 = Some(op);
                    let mut next_horz = self.sorted;
                    while let Some(nh) = next_horz {
                        if self.edges[nh].out_idx >= 0
                            && horz_segments_overlap(
                                self.edges[horz].bot.x,
                                self.edges[horz].top.x,
                                self.edges[nh].bot.x,
                                self.edges[nh].top.x,
                            )
                        {
                            let op2 = self.get_last_out_pt(nh);
                            let off = self.edges[nh].top;
                            self.joins.push(Join {
                                op1: op2,
                                op2: op,
                                off_pt: off,
                            });
                        }
                        next_horz = self.edges[nh].next_in_sel;
                    }
                    let bot = self.edges[horz].bot;
                    self.ghost_joins.push(Join {
                        op1: op,
                        op2: op,
                        off_pt: bot,
                    });
                }

                // Still within the horizontal, but the maxima pair only counts at the last of them.
                if Some(x) == e_max_pair && is_last_horz {
                    if self.edges[horz].out_idx >= 0 {
                        let top = self.edges[horz].top;
                        self.add_local_max_poly(horz, x, top);
                    }
                    self.delete_from_ael(horz);
                    self.delete_from_ael(x);
                    return Ok(());
                }

                let pt = IntPoint {
                    x: self.edges[x].curr.x,
                    y: self.edges[horz].curr.y,
                };
                if left_to_right {
                    self.intersect_edges(horz, x, pt);
                } else {
                    self.intersect_edges(x, horz, pt);
                }
                let e_next = if left_to_right {
                    self.edges[x].next_in_ael
                } else {
                    self.edges[x].prev_in_ael
                };
                self.swap_positions_in_ael(horz, x);
                e = e_next;
            }

            match self.edges[horz].next_in_lml {
                Some(n) if self.is_horizontal(n) => {}
                _ => break,
            }
            horz = self.update_edge_into_ael(horz)?;
            if self.edges[horz].out_idx >= 0 {
                let bot = self.edges[horz].bot;
                self.add_out_pt(horz, bot);
            }
            (left_to_right, horz_left, horz_right) = self.horz_direction(horz);
        }

        if self.edges[horz].out_idx >= 0 && op1.is_none() {
            let op = self.get_last_out_pt(horz);
            let mut next_horz = self.sorted;
            while let Some(nh) = next_horz {
                if self.edges[nh].out_idx >= 0
                    && horz_segments_overlap(
                        self.edges[horz].bot.x,
                        self.edges[horz].top.x,
                        self.edges[nh].bot.x,
                        self.edges[nh].top.x,
                    )
                {
                    let op2 = self.get_last_out_pt(nh);
                    let off = self.edges[nh].top;
                    self.joins.push(Join {
                        op1: op2,
                        op2: op,
                        off_pt: off,
                    });
                }
                next_horz = self.edges[nh].next_in_sel;
            }
            let top = self.edges[horz].top;
            self.ghost_joins.push(Join {
                op1: op,
                op2: op,
                off_pt: top,
            });
        }

        if self.edges[horz].next_in_lml.is_some() {
            if self.edges[horz].out_idx >= 0 {
                let top = self.edges[horz].top;
                let op1 = self.add_out_pt(horz, top);
                horz = self.update_edge_into_ael(horz)?;
                // `horz` is no longer horizontal here.
                let (bot, top) = (self.edges[horz].bot, self.edges[horz].top);
                let e_prev = self.edges[horz].prev_in_ael;
                let e_next = self.edges[horz].next_in_ael;
                let joins_here = |s: &Self, o: usize| {
                    let edge = &s.edges[o];
                    edge.curr == bot
                        && edge.out_idx >= 0
                        && edge.curr.y > edge.top.y
                        && slopes_equal4(top, bot, edge.top, edge.bot)
                };
                if let Some(p) = e_prev
                    && joins_here(self, p)
                {
                    let op2 = self.add_out_pt(p, bot);
                    self.joins.push(Join { op1, op2, off_pt: top });
                } else if let Some(n) = e_next
                    && joins_here(self, n)
                {
                    let op2 = self.add_out_pt(n, bot);
                    self.joins.push(Join { op1, op2, off_pt: top });
                }
            } else {
                self.update_edge_into_ael(horz)?;
            }
        } else {
            if self.edges[horz].out_idx >= 0 {
                let top = self.edges[horz].top;
                self.add_out_pt(horz, top);
            }
            self.delete_from_ael(horz);
        }
        Ok(())
    }

    pub(super) fn process_intersections(&mut self, top_y: i64) -> Res<()> {
        if self.active.is_none() {
            return Ok(());
        }
        self.build_intersect_list(top_y);
        let n = self.intersections.len();
        if n == 0 {
            return Ok(());
        }
        if n == 1 || self.fixup_intersection_order() {
            self.process_intersect_list();
        } else {
            self.sorted = None;
            self.intersections.clear();
            return Err(SweepFailed);
        }
        self.sorted = None;
        Ok(())
    }

    pub(super) fn build_intersect_list(&mut self, top_y: i64) {
        let Some(head) = self.active else { return };
        self.sorted = Some(head);
        let mut e = Some(head);
        while let Some(x) = e {
            self.edges[x].prev_in_sel = self.edges[x].prev_in_ael;
            self.edges[x].next_in_sel = self.edges[x].next_in_ael;
            self.edges[x].curr.x = self.top_x(x, top_y);
            e = self.edges[x].next_in_ael;
        }
        // Bubble sort, recording each swap as an intersection.
        loop {
            let mut modified = false;
            let Some(mut e) = self.sorted else { break };
            while let Some(n) = self.edges[e].next_in_sel {
                if self.edges[e].curr.x > self.edges[n].curr.x {
                    let mut pt = self.intersect_point(e, n);
                    if pt.y < top_y {
                        pt = IntPoint {
                            x: self.top_x(e, top_y),
                            y: top_y,
                        };
                    }
                    self.intersections.push(IntersectNode { e1: e, e2: n, pt });
                    self.swap_positions_in_sel(e, n);
                    modified = true;
                } else {
                    e = n;
                }
            }
            match self.edges[e].prev_in_sel {
                Some(p) => self.edges[p].next_in_sel = None,
                None => break,
            }
            if !modified {
                break;
            }
        }
        self.sorted = None;
    }

    pub(super) fn edges_adjacent(&self, node: &IntersectNode) -> bool {
        self.edges[node.e1].next_in_sel == Some(node.e2) || self.edges[node.e1].prev_in_sel == Some(node.e2)
    }

    pub(super) fn fixup_intersection_order(&mut self) -> bool {
        // Intersections are processed bottom-most first, and only between edges adjacent at that moment.
        self.copy_ael_to_sel();
        std_sort(&mut self.intersections, |a, b| b.pt.y < a.pt.y);
        let cnt = self.intersections.len();
        for i in 0..cnt {
            if !self.edges_adjacent(&self.intersections[i]) {
                let mut j = i + 1;
                while j < cnt && !self.edges_adjacent(&self.intersections[j]) {
                    j += 1;
                }
                if j == cnt {
                    return false;
                }
                self.intersections.swap(i, j);
            }
            let node = self.intersections[i];
            self.swap_positions_in_sel(node.e1, node.e2);
        }
        true
    }

    pub(super) fn process_intersect_list(&mut self) {
        let list = std::mem::take(&mut self.intersections);
        for node in list {
            self.intersect_edges(node.e1, node.e2, node.pt);
            self.swap_positions_in_ael(node.e1, node.e2);
        }
    }

    pub(super) fn do_maxima(&mut self, e: usize) -> Res<()> {
        let Some(max_pair) = self.get_maxima_pair_ex(e) else {
            if self.edges[e].out_idx >= 0 {
                let top = self.edges[e].top;
                self.add_out_pt(e, top);
            }
            self.delete_from_ael(e);
            return Ok(());
        };
        let mut e_next = self.edges[e].next_in_ael;
        while let Some(n) = e_next {
            if n == max_pair {
                break;
            }
            let top = self.edges[e].top;
            self.intersect_edges(e, n, top);
            self.swap_positions_in_ael(e, n);
            e_next = self.edges[e].next_in_ael;
        }
        let (oi, mi) = (self.edges[e].out_idx, self.edges[max_pair].out_idx);
        if oi == UNASSIGNED && mi == UNASSIGNED {
            self.delete_from_ael(e);
            self.delete_from_ael(max_pair);
        } else if oi >= 0 && mi >= 0 {
            let top = self.edges[e].top;
            self.add_local_max_poly(e, max_pair, top);
            self.delete_from_ael(e);
            self.delete_from_ael(max_pair);
        } else {
            return Err(SweepFailed);
        }
        Ok(())
    }

    pub(super) fn process_edges_at_top_of_scanbeam(&mut self, top_y: i64) -> Res<()> {
        let mut e = self.active;
        while let Some(x) = e {
            // 1. Maxima, treated as bent horizontals, except maxima with horizontal edges.
            let mut is_maxima = self.edges[x].top.y == top_y && self.edges[x].next_in_lml.is_none();
            if is_maxima {
                let pair = self.get_maxima_pair_ex(x);
                is_maxima = pair.is_none_or(|p| !self.is_horizontal(p));
            }
            if is_maxima {
                let e_prev = self.edges[x].prev_in_ael;
                self.do_maxima(x)?;
                e = match e_prev {
                    None => self.active,
                    Some(p) => self.edges[p].next_in_ael,
                };
            } else {
                // 2. Promote horizontal edges, otherwise update Curr.
                let is_intermediate = self.edges[x].top.y == top_y && self.edges[x].next_in_lml.is_some();
                let mut x = x;
                if is_intermediate && self.is_horizontal(self.edges[x].next_in_lml.unwrap_or(x)) {
                    x = self.update_edge_into_ael(x)?;
                    if self.edges[x].out_idx >= 0 {
                        let bot = self.edges[x].bot;
                        self.add_out_pt(x, bot);
                    }
                    self.add_edge_to_sel(x);
                } else {
                    self.edges[x].curr.x = self.top_x(x, top_y);
                    self.edges[x].curr.y = top_y;
                }
                e = self.edges[x].next_in_ael;
            }
        }

        // 3. Horizontals at the top of the scanbeam.
        self.process_horizontals()?;

        // 4. Promote intermediate vertices.
        let mut e = self.active;
        while let Some(mut x) = e {
            if self.edges[x].top.y == top_y && self.edges[x].next_in_lml.is_some() {
                let mut op = None;
                if self.edges[x].out_idx >= 0 {
                    let top = self.edges[x].top;
                    op = Some(self.add_out_pt(x, top));
                }
                x = self.update_edge_into_ael(x)?;
                // Output polygons that share an edge need joining later.
                let (bot, curr, top) = (self.edges[x].bot, self.edges[x].curr, self.edges[x].top);
                let joins_here = |s: &Self, o: usize| {
                    let edge = &s.edges[o];
                    edge.curr == bot
                        && edge.out_idx >= 0
                        && edge.curr.y > edge.top.y
                        && slopes_equal4(curr, top, edge.curr, edge.top)
                };
                if let Some(op) = op {
                    let e_prev = self.edges[x].prev_in_ael;
                    let e_next = self.edges[x].next_in_ael;
                    if let Some(p) = e_prev
                        && joins_here(self, p)
                    {
                        let op2 = self.add_out_pt(p, bot);
                        self.joins.push(Join {
                            op1: op,
                            op2,
                            off_pt: top,
                        });
                    } else if let Some(n) = e_next
                        && joins_here(self, n)
                    {
                        let op2 = self.add_out_pt(n, bot);
                        self.joins.push(Join {
                            op1: op,
                            op2,
                            off_pt: top,
                        });
                    }
                }
            }
            e = self.edges[x].next_in_ael;
        }
        Ok(())
    }
}
