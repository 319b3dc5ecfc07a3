//! Incremental cells (issue 16): the activations a cell shares with the unmasked model, kept between cells.
//!
//! Masking a group changes the run only from the first step that reads one of its constants; every tensor
//! alive before that step is the unmasked run's. The first cell of a group computes that [`Boundary`] for
//! each eval batch and keeps it; later cells whose first masked step is the same (the other ratios of the
//! group, and any group that starts at the same step) run only the steps after it. Results are bit-equal to
//! a full run: the same kernels see the same tensors.
//!
//! The boundaries are kept per step, under a byte budget (`Sensitivity.cache_mb`), the least recently used
//! step evicted first. A step whose boundaries for the whole eval set exceed the budget on their own is
//! evaluated in full from then on. What belongs here: the cache and its accounting; the evaluation loop is
//! `evaluate.rs`'s, the cut of a run `exec/plan.rs`'s.

use std::collections::HashSet;

use anyhow::Result;
use tch::Tensor;

use crate::exec::{Boundary, Executor};

/// What the cache did, counted over its life (tests check reuse with it; never timing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Batches whose boundary was computed (the prefix run).
    pub prefixes: usize,
    /// Batches run from a kept boundary.
    pub reuses: usize,
    /// Batches run in full because their step's boundaries do not fit the budget.
    pub full_runs: usize,
    /// Steps dropped to make room for another.
    pub evictions: usize,
}

/// The boundaries of one step, one per eval batch in order.
struct Entry {
    step: usize,
    boundaries: Vec<Boundary>,
    bytes: usize,
}

/// Boundaries kept per step, least recently used first.
pub struct BoundaryCache {
    budget: usize,
    /// Least recently used first.
    entries: Vec<Entry>,
    /// Steps whose boundaries alone exceed the budget.
    oversize: HashSet<usize>,
    stats: CacheStats,
}

impl BoundaryCache {
    /// A cache that keeps at most `budget` bytes.
    pub fn new(budget: usize) -> BoundaryCache {
        BoundaryCache {
            budget,
            entries: Vec::new(),
            oversize: HashSet::new(),
            stats: CacheStats::default(),
        }
    }

    /// Changes the budget, evicting what no longer fits; steps found too large are tried again.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.oversize.clear();
        while self.bytes() > budget && !self.entries.is_empty() {
            self.entries.remove(0);
            self.stats.evictions += 1;
        }
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    /// The model's outputs for eval batch `batch` (`input`), computed from `step` on: from the kept boundary
    /// when there is one, else by computing it (and keeping it when it fits). The constants read before `step`
    /// must be the unmasked model's, as they are when `step` is the first reader of the masked ones.
    ///
    /// # Errors
    /// A failing node.
    pub fn outputs(&mut self, executor: &Executor, step: usize, batch: usize, input: &Tensor) -> Result<Vec<Tensor>> {
        if self.oversize.contains(&step) {
            self.stats.full_runs += 1;
            return executor.run(std::slice::from_ref(input));
        }
        let position = self.entries.iter().position(|e| e.step == step);
        if let Some(position) = position {
            // Most recently used goes last.
            let entry = self.entries.remove(position);
            self.entries.push(entry);
            let entry = self.entries.last().expect("pushed above");
            if let Some(boundary) = entry.boundaries.get(batch) {
                self.stats.reuses += 1;
                return executor.run_from(boundary);
            }
        }
        let boundary = executor.run_prefix(std::slice::from_ref(input), step)?;
        self.stats.prefixes += 1;
        let outputs = executor.run_from(&boundary)?;
        self.keep(step, batch, boundary);
        Ok(outputs)
    }

    /// Keeps `boundary` as batch `batch` of `step` (the most recently used entry) if the budget allows,
    /// evicting other steps first; a step that does not fit alone is marked oversize and dropped.
    fn keep(&mut self, step: usize, batch: usize, boundary: Boundary) {
        let bytes = boundary.bytes();
        if self.entries.last().is_none_or(|e| e.step != step) {
            self.entries.push(Entry {
                step,
                boundaries: Vec::new(),
                bytes: 0,
            });
        }
        // Batches come in order from the first; anything else (never expected) is simply not kept.
        if self.entries.last().is_some_and(|e| e.boundaries.len() != batch) {
            return;
        }
        while self.bytes() + bytes > self.budget && self.entries.len() > 1 {
            self.entries.remove(0);
            self.stats.evictions += 1;
        }
        if self.bytes() + bytes > self.budget {
            self.entries.pop();
            self.oversize.insert(step);
            return;
        }
        let entry = self.entries.last_mut().expect("pushed above");
        entry.boundaries.push(boundary);
        entry.bytes += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::plan_tests::skip_graph;

    fn inputs() -> Vec<Tensor> {
        vec![
            Tensor::from_slice(&[0.5f32, 1.0, -3.0]),
            Tensor::from_slice(&[-1.0f32, 2.0, 0.0]),
        ]
    }

    /// Runs every input from `step` through `cache`, checking each output against a full run.
    fn pass(cache: &mut BoundaryCache, executor: &Executor, step: usize) {
        for (batch, input) in inputs().iter().enumerate() {
            let got = cache.outputs(executor, step, batch, input).unwrap();
            let want = executor.run(std::slice::from_ref(input)).unwrap();
            assert!(got[0].equal(&want[0]));
        }
    }

    #[test]
    fn a_steps_boundaries_are_computed_once_and_reused() {
        let executor = Executor::new(&skip_graph(), tch::Device::Cpu).unwrap();
        let mut cache = BoundaryCache::new(1 << 20);
        pass(&mut cache, &executor, 2);
        pass(&mut cache, &executor, 2);
        pass(&mut cache, &executor, 2);
        let stats = cache.stats();
        assert_eq!((stats.prefixes, stats.reuses, stats.full_runs), (2, 4, 0));
        // Two batches of t1 and t2, three floats each.
        assert_eq!(cache.bytes(), 2 * 2 * 3 * 4);
    }

    #[test]
    fn the_least_recently_used_step_goes_first_and_a_step_too_large_runs_in_full() {
        let executor = Executor::new(&skip_graph(), tch::Device::Cpu).unwrap();
        // Room for step 2's boundaries (48 bytes) or step 1's (t1 only: 24 bytes), not both.
        let mut cache = BoundaryCache::new(48);
        pass(&mut cache, &executor, 2);
        pass(&mut cache, &executor, 1);
        assert_eq!(cache.stats().evictions, 1);
        assert_eq!(cache.bytes(), 24);
        pass(&mut cache, &executor, 1);
        assert_eq!(cache.stats().reuses, 2);

        // 30 bytes hold one batch of step 2, not both: the step falls back to full runs.
        let mut cache = BoundaryCache::new(30);
        pass(&mut cache, &executor, 2);
        pass(&mut cache, &executor, 2);
        let stats = cache.stats();
        assert_eq!((stats.prefixes, stats.reuses, stats.full_runs), (2, 0, 2));
        assert_eq!(cache.bytes(), 0);
    }
}
