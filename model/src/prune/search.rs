//! Choosing a plan by measuring it (`Prune.max_model_loss`, `Prune.latency_reduction`): a chain of candidate
//! plans built from the sensitivity table, and the bracket search over it that the coordinator runs with real
//! evaluations of the jointly pruned model (probe jobs).
//!
//! Losses measured one group at a time do not add up when every group is cut at once, so no threshold on the
//! table alone says what the pruned model keeps. PaddleSlim's threshold family is also too coarse: at any
//! threshold every cell that lost nothing alone is cut at once, and on a small eval set that is most of them.
//! The [`Chain`] instead raises one group to one tested ratio per step, cheapest first (loss per FLOP saved, a
//! loss of 0 or less counting as 0, smaller ratios first among equals), so step k+1 always cuts a superset of
//! step k's channels and the search can stop anywhere between two thresholds.
//!
//! [`decide`] is pure: it reads the measurements so far and answers the next steps to measure (as many as
//! there are workers, spread evenly over the open bracket: a parallel bracket search), the chosen step, or why
//! the target cannot be met. The coordinator calls it again after every round, so a restarted coordinator
//! resumes from the stored probes.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{ModelError, Result};
use crate::prune::Plan;
use crate::prune::planner::Sensitivities;

/// One step of a [`Chain`]: raise `group` to the tested `ratio`, whose loss alone was `loss`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rung {
    pub group: String,
    pub ratio: f64,
    pub loss: f64,
}

/// Candidate plans, each cutting a superset of the one before: step 0 is the unpruned model, step
/// [`Chain::len`] every group at its largest tested ratio.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    rungs: Vec<Rung>,
    groups: Vec<String>,
}

impl Chain {
    /// The chain of `table`; `group_flops` gives the FLOPs that pruning all of a group removes, so that a
    /// rung's cost is its loss per FLOP saved (a group it does not name counts 1 FLOP).
    pub fn new(table: &Sensitivities, group_flops: &BTreeMap<String, u64>) -> Chain {
        struct Candidate<'a> {
            cost: f64,
            ratio: f64,
            saved: f64,
            group: &'a str,
            loss: f64,
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        for (group, losses) in table {
            let flops = group_flops.get(group).copied().unwrap_or(1).max(1) as f64;
            for (ratio, &loss) in losses {
                let saved = flops * ratio.get();
                candidates.push(Candidate {
                    cost: loss.max(0.0) / saved,
                    ratio: ratio.get(),
                    saved,
                    group,
                    loss,
                });
            }
        }
        candidates.sort_by(|a, b| {
            a.cost
                .total_cmp(&b.cost)
                .then(a.ratio.total_cmp(&b.ratio))
                .then(b.saved.total_cmp(&a.saved))
                .then(a.group.cmp(b.group))
        });
        let mut reached: BTreeMap<&str, f64> = BTreeMap::new();
        let mut rungs = Vec::new();
        for c in candidates {
            let current = reached.entry(c.group).or_insert(0.0);
            // A cheaper larger ratio came first: this one cuts nothing more.
            if c.ratio > *current {
                *current = c.ratio;
                rungs.push(Rung {
                    group: c.group.to_owned(),
                    ratio: c.ratio,
                    loss: c.loss,
                });
            }
        }
        Chain {
            rungs,
            groups: table.keys().cloned().collect(),
        }
    }

    /// Steps past the unpruned model.
    pub fn len(&self) -> usize {
        self.rungs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rungs.is_empty()
    }

    pub fn rungs(&self) -> &[Rung] {
        &self.rungs
    }

    /// The plan of `step` (clamped to the chain): every group of the table, at the largest ratio its rungs up to
    /// `step` reach, 0.0 where none does.
    pub fn plan(&self, step: usize) -> Plan {
        let mut plan: Plan = self.groups.iter().map(|g| (g.clone(), 0.0)).collect();
        for rung in &self.rungs[..step.min(self.rungs.len())] {
            let ratio = plan.entry(rung.group.clone()).or_insert(0.0);
            *ratio = ratio.max(rung.ratio);
        }
        plan
    }
}

/// A reduction to reach.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reduction {
    /// This share of the FLOPs, counted statically on the pruned graph.
    Flops(f64),
    /// This share of the latency, as the probes measured it on the workers' device.
    Latency(f64),
}

impl Reduction {
    fn name(self) -> &'static str {
        match self {
            Reduction::Flops(_) => "flops_reduction",
            Reduction::Latency(_) => "latency_reduction",
        }
    }

    fn share(self) -> f64 {
        match self {
            Reduction::Flops(y) | Reduction::Latency(y) => y,
        }
    }

    fn of(self, m: &Measured) -> f64 {
        match self {
            Reduction::Flops(_) => m.flops_reduction,
            Reduction::Latency(_) => m.latency_reduction,
        }
    }
}

/// A measured target: at least one of the two.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// The pruned model's measured loss on the eval set is at most this.
    pub max_model_loss: Option<f64>,
    /// Reach this reduction (the least cut that does).
    pub reduction: Option<Reduction>,
    /// The search stops once the FLOPs reductions of the bracket's two ends are this close.
    pub tolerance: f64,
}

impl Target {
    /// # Errors
    /// A target with neither bound, a bound outside (0, 1) or a tolerance outside [0, 1), naming it.
    pub fn validate(&self) -> Result<()> {
        let invalid = |what: String| Err(ModelError::Invalid(what));
        if self.max_model_loss.is_none() && self.reduction.is_none() {
            return invalid("a measured target needs max_model_loss or a reduction".into());
        }
        let bounds = self
            .max_model_loss
            .map(|x| ("max_model_loss", x))
            .into_iter()
            .chain(self.reduction.map(|r| (r.name(), r.share())));
        for (name, value) in bounds {
            if !(value > 0.0 && value < 1.0) {
                return invalid(format!("{name} {value} is outside (0, 1)"));
            }
        }
        if !(self.tolerance >= 0.0 && self.tolerance < 1.0) {
            return invalid(format!("tolerance {} is outside [0, 1)", self.tolerance));
        }
        Ok(())
    }
}

/// One probe's result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    pub step: usize,
    /// (baseline − pruned) / baseline on the run's metric.
    pub loss: f64,
    pub flops_reduction: f64,
    pub latency_reduction: f64,
}

/// What [`decide`] answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Measure these steps next (none measured yet), in ascending order.
    Probe(Vec<usize>),
    /// This measured step is the plan; `why` says which target held and by how much.
    Chosen { step: usize, why: String },
    /// No step meets the target; the message names the best one measured.
    Unreachable(String),
}

/// The next move of the search for `target` over a chain of `len` steps, given the probes measured so far
/// and the `workers` that can measure at once. `flops_reduction` counts a step's FLOPs reduction statically
/// (for the tolerance and a FLOPs target), for steps not measured yet.
///
/// - With a reduction target, first the least step that reaches it: found statically for FLOPs, by a bracket
///   of probes for latency. It is chosen when it has no loss bound or its measured loss is within it.
/// - Otherwise (or when that step loses too much), the largest step whose measured loss is within
///   `max_model_loss`, by a bracket of probes: the lowest failing step above the highest passing one. Once
///   closed (adjacent, or their FLOPs reductions within `tolerance`), the best measured probe is chosen: the
///   largest FLOPs reduction within the loss, or, with a reduction target, the least loss among those that
///   reach it.
///
/// # Errors
/// A target with neither bound, a bound outside (0, 1), an empty chain, or an error of `flops_reduction`.
pub fn decide(
    target: &Target,
    len: usize,
    measured: &[Measured],
    workers: usize,
    flops_reduction: &mut dyn FnMut(usize) -> Result<f64>,
) -> Result<Decision> {
    if len == 0 {
        return Err(ModelError::Invalid(
            "the sensitivity table gives no candidate plan".into(),
        ));
    }
    target.validate()?;
    let by_step: BTreeMap<usize, &Measured> = measured.iter().map(|m| (m.step, m)).collect();
    let workers = workers.max(1);
    let mut flops_of = |step: usize| -> Result<f64> {
        match (step, by_step.get(&step)) {
            (0, _) => Ok(0.0),
            (_, Some(m)) => Ok(m.flops_reduction),
            _ => flops_reduction(step),
        }
    };
    if let Some(reduction) = target.reduction {
        let reached = |m: &Measured| reduction.of(m) >= reduction.share();
        let step = match reduction {
            Reduction::Flops(share) => {
                let most = flops_of(len)?;
                if most < share {
                    return Ok(Decision::Unreachable(format!(
                        "flops_reduction {share} is out of reach: every group at its largest tested ratio removes \
                         {:.2}% of the FLOPs",
                        most * 100.0
                    )));
                }
                // The least step that reaches it: FLOPs never rise along the chain.
                let (mut lo, mut hi) = (0, len);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if flops_of(mid)? >= share {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                hi
            }
            Reduction::Latency(share) => {
                let hi = measured.iter().filter(|m| reached(m)).map(|m| m.step).min();
                let hi = hi.unwrap_or(len + 1);
                let lo = measured
                    .iter()
                    .filter(|m| m.step < hi && !reached(m))
                    .map(|m| m.step)
                    .max()
                    .unwrap_or(0);
                if hi > len && lo == len {
                    let best = measured
                        .iter()
                        .map(|m| m.latency_reduction)
                        .fold(f64::NEG_INFINITY, f64::max);
                    return Ok(Decision::Unreachable(format!(
                        "latency_reduction {share} is out of reach: every group at its largest tested ratio \
                         (step {len}) measured {:.2}%, the most of any probe {:.2}%",
                        by_step[&len].latency_reduction * 100.0,
                        best * 100.0
                    )));
                }
                if !closed(lo, hi, len, target.tolerance, &mut flops_of)? {
                    return Ok(Decision::Probe(spread(lo, hi, len, workers)));
                }
                hi
            }
        };
        let Some(m) = by_step.get(&step) else {
            return Ok(Decision::Probe(vec![step]));
        };
        match target.max_model_loss {
            None => {
                return Ok(Decision::Chosen {
                    step,
                    why: format!(
                        "{} {} reached: {:.2}% measured, loss {:.4}",
                        reduction.name(),
                        reduction.share(),
                        reduction.of(m) * 100.0,
                        m.loss
                    ),
                });
            }
            Some(x) if m.loss <= x => {
                return Ok(Decision::Chosen {
                    step,
                    why: format!(
                        "{} {} reached ({:.2}% measured) within max_model_loss {x}: loss {:.4}",
                        reduction.name(),
                        reduction.share(),
                        reduction.of(m) * 100.0,
                        m.loss
                    ),
                });
            }
            Some(_) => {}
        }
    }
    let x = target
        .max_model_loss
        .expect("checked: a target without a reduction has a loss bound");
    let passes = |m: &Measured| m.loss <= x;
    let lo = measured.iter().filter(|m| passes(m)).map(|m| m.step).max().unwrap_or(0);
    let hi = measured
        .iter()
        .filter(|m| m.step > lo && !passes(m))
        .map(|m| m.step)
        .min()
        .unwrap_or(len + 1);
    if !closed(lo, hi, len, target.tolerance, &mut flops_of)? {
        return Ok(Decision::Probe(spread(lo, hi, len, workers)));
    }
    let passing = measured.iter().filter(|m| passes(m));
    if let Some(reduction) = target.reduction {
        let share = reduction.share();
        let best_within = passing.clone().map(|m| reduction.of(m)).fold(0.0, f64::max);
        let chosen = passing
            .filter(|m| reduction.of(m) >= share)
            .min_by(|a, b| a.loss.total_cmp(&b.loss).then(a.step.cmp(&b.step)));
        return Ok(match chosen {
            Some(m) => Decision::Chosen {
                step: m.step,
                why: format!(
                    "{} {share} reached ({:.2}% measured) within max_model_loss {x}: loss {:.4}",
                    reduction.name(),
                    reduction.of(m) * 100.0,
                    m.loss
                ),
            },
            None => Decision::Unreachable(format!(
                "max_model_loss {x} does not hold at {} {share}: the least cut that reaches it measured a loss \
                 above {x}; the best {} measured within {x} is {:.2}%",
                reduction.name(),
                reduction.name(),
                best_within * 100.0
            )),
        });
    }
    let best = passing.max_by(|a, b| {
        a.flops_reduction
            .total_cmp(&b.flops_reduction)
            .then(b.loss.total_cmp(&a.loss))
            .then(b.step.cmp(&a.step))
    });
    Ok(match best {
        Some(m) => Decision::Chosen {
            step: m.step,
            why: format!(
                "max_model_loss {x} held: loss {:.4} measured, FLOPs reduced by {:.2}%",
                m.loss,
                m.flops_reduction * 100.0
            ),
        },
        None => Decision::Unreachable(format!(
            "max_model_loss {x} cannot hold: even the smallest cut (step 1) measured a loss of {:.4}",
            by_step.get(&1).map_or(f64::NAN, |m| m.loss)
        )),
    })
}

/// Whether the bracket (lo, hi) needs no more probes: adjacent, or (with `hi` on the chain) the FLOPs
/// reductions of its ends within `tolerance`.
fn closed(
    lo: usize,
    hi: usize,
    len: usize,
    tolerance: f64,
    flops_of: &mut dyn FnMut(usize) -> Result<f64>,
) -> Result<bool> {
    if hi <= lo + 1 {
        return Ok(true);
    }
    Ok(hi <= len && flops_of(hi)? - flops_of(lo)? <= tolerance)
}

/// Up to `workers` steps strictly inside (lo, hi) and on the chain, splitting it evenly; never empty when
/// `hi > lo + 1`.
fn spread(lo: usize, hi: usize, len: usize, workers: usize) -> Vec<usize> {
    let top = (hi - 1).min(len);
    let steps: BTreeSet<usize> = (1..=workers)
        .map(|i| (lo + (hi - lo) * i / (workers + 1)).clamp(lo + 1, top))
        .collect();
    steps.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::planner::Ratio;

    fn table(rows: &[(&str, &[(f64, f64)])]) -> Sensitivities {
        rows.iter()
            .map(|(g, cells)| {
                (
                    (*g).to_owned(),
                    cells.iter().map(|&(r, l)| (Ratio::new(r).unwrap(), l)).collect(),
                )
            })
            .collect()
    }

    /// Cheap cuts first: zero losses by ratio, then loss per FLOP; every step cuts a superset of the last.
    #[test]
    fn the_chain_raises_the_cheapest_group_first_and_only_ever_grows() {
        let t = table(&[
            ("a", &[(0.25, 0.0), (0.5, 0.2)]),
            ("b", &[(0.25, 0.0), (0.5, 0.0)]),
            ("c", &[(0.25, 0.1), (0.5, -0.01)]),
        ]);
        let flops = BTreeMap::from([("a".to_owned(), 100), ("b".to_owned(), 10), ("c".to_owned(), 100)]);
        let chain = Chain::new(&t, &flops);
        let order: Vec<(&str, f64)> = chain.rungs().iter().map(|r| (r.group.as_str(), r.ratio)).collect();
        // c at 0.5 lost nothing (a negative loss counts 0) and saves more than b at 0.5; its 0.25 rung would
        // add nothing after it.
        assert_eq!(order, [("a", 0.25), ("b", 0.25), ("c", 0.5), ("b", 0.5), ("a", 0.5)]);
        assert_eq!(
            chain.plan(0),
            Plan::from([("a".into(), 0.0), ("b".into(), 0.0), ("c".into(), 0.0)])
        );
        assert_eq!(
            chain.plan(3),
            Plan::from([("a".into(), 0.25), ("b".into(), 0.25), ("c".into(), 0.5)])
        );
        for step in 1..=chain.len() {
            let (before, after) = (chain.plan(step - 1), chain.plan(step));
            assert!(
                before.iter().all(|(g, r)| after[g] >= *r),
                "step {step} cuts less somewhere"
            );
            assert_ne!(before, after, "step {step} changes nothing");
        }
    }

    /// A monotone loss curve: the search closes on the last step within the bound, with `workers` probes a round.
    fn run_search(
        target: Target,
        len: usize,
        workers: usize,
        loss: impl Fn(usize) -> f64,
        latency: impl Fn(usize) -> f64,
    ) -> (Decision, Vec<Vec<usize>>) {
        let flops = |step: usize| step as f64 / len as f64 * 0.8;
        let mut measured: Vec<Measured> = Vec::new();
        let mut rounds = Vec::new();
        loop {
            let decision = decide(&target, len, &measured, workers, &mut |s| Ok(flops(s))).unwrap();
            match decision {
                Decision::Probe(steps) => {
                    assert!(!steps.is_empty() && steps.len() <= workers.max(1));
                    for &s in &steps {
                        assert!(
                            s >= 1 && s <= len && measured.iter().all(|m| m.step != s),
                            "step {s} again"
                        );
                        measured.push(Measured {
                            step: s,
                            loss: loss(s),
                            flops_reduction: flops(s),
                            latency_reduction: latency(s),
                        });
                    }
                    rounds.push(steps);
                    assert!(rounds.len() < 40, "the search does not close");
                }
                done => return (done, rounds),
            }
        }
    }

    #[test]
    fn max_model_loss_alone_finds_the_last_step_within_the_bound_in_few_rounds() {
        let target = Target {
            max_model_loss: Some(0.02),
            reduction: None,
            tolerance: 0.0,
        };
        let loss = |s: usize| s as f64 * 0.001; // step 20 is the last within 0.02
        let (one, rounds_one) = run_search(target, 300, 1, loss, |_| 0.0);
        let (four, rounds_four) = run_search(target, 300, 4, loss, |_| 0.0);
        for decision in [&one, &four] {
            assert!(matches!(decision, Decision::Chosen { step: 20, .. }), "{decision:?}");
        }
        assert!(
            rounds_four.len() < rounds_one.len(),
            "{} vs {}",
            rounds_four.len(),
            rounds_one.len()
        );
        assert!(rounds_one.len() <= 10);
    }

    #[test]
    fn the_tolerance_stops_the_search_early_and_keeps_a_measured_passing_step() {
        let target = Target {
            max_model_loss: Some(0.02),
            reduction: None,
            tolerance: 0.05,
        };
        let (decision, _) = run_search(target, 300, 2, |s| s as f64 * 0.001, |_| 0.0);
        let Decision::Chosen { step, .. } = decision else {
            panic!("{decision:?}")
        };
        assert!(step <= 20 && (20 - step) as f64 / 300.0 * 0.8 <= 0.05, "step {step}");
    }

    #[test]
    fn a_loss_bound_that_not_even_the_first_step_holds_is_unreachable() {
        let target = Target {
            max_model_loss: Some(0.01),
            reduction: None,
            tolerance: 0.0,
        };
        let (decision, _) = run_search(target, 50, 3, |_| 0.5, |_| 0.0);
        assert!(
            matches!(&decision, Decision::Unreachable(m) if m.contains("step 1")),
            "{decision:?}"
        );
    }

    #[test]
    fn a_flops_target_is_found_statically_and_checked_by_one_probe() {
        let target = Target {
            max_model_loss: Some(0.1),
            reduction: Some(Reduction::Flops(0.4)),
            tolerance: 0.0,
        };
        let (decision, rounds) = run_search(target, 100, 4, |s| s as f64 * 0.001, |_| 0.0);
        assert_eq!(rounds, [vec![50]], "0.4 of 0.8 at step 50");
        assert!(matches!(decision, Decision::Chosen { step: 50, .. }), "{decision:?}");

        // Too lossy at 50: the loss search names the best reduction within the bound.
        let (decision, _) = run_search(target, 100, 4, |s| s as f64 * 0.01, |_| 0.0);
        assert!(
            matches!(&decision, Decision::Unreachable(m) if m.contains("8.00%")),
            "step 10 is the last within 0.1: {decision:?}"
        );
    }

    #[test]
    fn a_latency_target_is_bracketed_by_probes() {
        let target = Target {
            max_model_loss: None,
            reduction: Some(Reduction::Latency(0.3)),
            tolerance: 0.0,
        };
        let (decision, _) = run_search(target, 200, 3, |_| 0.0, |s| s as f64 / 400.0);
        assert!(matches!(decision, Decision::Chosen { step: 120, .. }), "{decision:?}");
        let (decision, _) = run_search(target, 200, 3, |_| 0.0, |s| s as f64 / 1000.0);
        assert!(
            matches!(&decision, Decision::Unreachable(m) if m.contains("out of reach")),
            "{decision:?}"
        );
    }

    #[test]
    fn targets_out_of_range_are_refused() {
        let mut none = |_| Ok(0.0);
        for target in [
            Target {
                max_model_loss: None,
                reduction: None,
                tolerance: 0.0,
            },
            Target {
                max_model_loss: Some(1.5),
                reduction: None,
                tolerance: 0.0,
            },
            Target {
                max_model_loss: Some(0.1),
                reduction: Some(Reduction::Latency(0.0)),
                tolerance: 0.0,
            },
        ] {
            assert!(decide(&target, 10, &[], 1, &mut none).is_err(), "{target:?}");
        }
    }
}
