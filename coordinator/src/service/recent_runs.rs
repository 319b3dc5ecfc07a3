//! A map from run to what a service keeps about it, holding the runs used most recently only: past its
//! capacity the least recently used run goes, so a coordinator that lives through thousands of runs does not
//! keep every one. A run that went is read from the store again when it is next needed.

use std::collections::HashMap;

use crate::store::RunId;

/// At most `capacity` runs, each with its value and when it was last used.
#[derive(Debug)]
pub struct RecentRuns<V> {
    capacity: usize,
    /// Counts uses: the run with the smallest last use goes first.
    uses: u64,
    entries: HashMap<RunId, (u64, V)>,
}

impl<V: Clone> RecentRuns<V> {
    /// An empty map holding at most `capacity` runs (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            uses: 0,
            entries: HashMap::new(),
        }
    }

    /// The value kept for `run`, now its most recent use.
    pub fn get(&mut self, run: RunId) -> Option<V> {
        self.uses += 1;
        let (used, value) = self.entries.get_mut(&run)?;
        *used = self.uses;
        Some(value.clone())
    }

    /// Keeps `value` for `run` as its most recent use, letting the least recently used run go when that makes
    /// one more than the capacity.
    pub fn insert(&mut self, run: RunId, value: V) {
        self.uses += 1;
        self.entries.insert(run, (self.uses, value));
        if self.entries.len() > self.capacity
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(&id, _)| id)
        {
            self.entries.remove(&oldest);
        }
    }

    /// How many runs are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_run_goes_past_the_capacity() {
        let mut runs = RecentRuns::new(2);
        runs.insert(RunId(1), "one");
        runs.insert(RunId(2), "two");
        assert_eq!(runs.get(RunId(1)), Some("one"));
        runs.insert(RunId(3), "three");
        assert_eq!(runs.len(), 2);
        assert_eq!(runs.get(RunId(2)), None, "run 2 was used least recently");
        assert_eq!(runs.get(RunId(1)), Some("one"));
        assert_eq!(runs.get(RunId(3)), Some("three"));
        // Keeping a held run again replaces its value and evicts nothing.
        runs.insert(RunId(3), "three again");
        assert_eq!((runs.len(), runs.get(RunId(3))), (2, Some("three again")));
        for id in 4..100 {
            runs.insert(RunId(id), "more");
        }
        assert_eq!(runs.len(), 2);
    }
}
