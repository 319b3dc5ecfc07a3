//! Per-group pruning ratios from a finished sensitivity table: under a loss threshold
//! ([`ratios_by_loss`], PaddleSlim's `get_ratios_by_loss`) or for a FLOPs reduction ([`ratios_by_flops`]).
//!
//! Pure arithmetic on the table. Reading `sen.pickle`, pruning the graph and counting its FLOPs belong to the
//! callers; [`ratios_by_flops`] takes the FLOPs count as a closure.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::error::{ModelError, Result};
use crate::prune::Plan;

/// A tested pruning ratio, strictly between 0 and 1 like the coordinator's grid cells.
///
/// A newtype rather than a bare `f64` so that a group's table can be a `BTreeMap` keyed by ratio, as
/// `sen.pickle` keys it, and iterate in ratio order: `f64` has no total order. Every value is finite and
/// positive, so the total order of [`f64::total_cmp`] is the numeric one.
#[derive(Debug, Clone, Copy)]
pub struct Ratio(f64);

impl Ratio {
    /// # Errors
    /// A value outside (0, 1), NaN included.
    pub fn new(value: f64) -> Result<Self> {
        if value > 0.0 && value < 1.0 {
            Ok(Self(value))
        } else {
            Err(ModelError::Invalid(format!("ratio {value} is outside (0, 1)")))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ratio {}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A sensitivity table: group key to tested ratio to loss, where loss = (baseline − pruned) / baseline of the
/// eval metric. A loss may be negative (pruning improved the metric) and need not grow with the ratio.
pub type Sensitivities = BTreeMap<String, BTreeMap<Ratio, f64>>;

/// How close [`ratios_by_flops`] gets to the smallest threshold that meets its target.
pub const THRESHOLD_TOLERANCE: f64 = 1e-6;

/// The ratio of every group of `sensitivities` under the loss threshold `max_loss`, exactly as PaddleSlim's
/// `get_ratios_by_loss` computes it.
///
/// Per group, the tested ratios are scanned from the largest down, and the first one whose loss is at most
/// `max_loss` is taken. If it is the largest ratio, that ratio is the result; otherwise the result is
/// interpolated linearly between it, (r0, l0), and the next larger ratio, (r1, l1), to where the loss line
/// reaches `max_loss`: r0 + (max_loss − l0)(r1 − r0) / (l1 − l0). A smaller ratio with a loss under the
/// threshold below a larger one above it is never looked at: the scan stops at the first hit from the top.
///
/// Every group is in the plan. A group where no tested ratio qualifies gets 0.0, an explicit "not pruned", as
/// in PaddleSlim 2.6's static `get_ratios_by_loss` (its dygraph `FilterPruner._get_ratios_by_loss` leaves the
/// group out instead); [`cut_plan`] drops those entries. Every other ratio lies in [r0, r1) of two tested
/// ratios, so inside (0, 1). coordinator/tests/it/paddleslim.rs checks both against the real PaddleSlim.
///
/// # Errors
/// A NaN `max_loss`, or a loss that is not finite (a metric with a baseline of 0): PaddleSlim would give a NaN
/// or infinite ratio.
pub fn ratios_by_loss(sensitivities: &Sensitivities, max_loss: f64) -> Result<Plan> {
    if max_loss.is_nan() {
        return Err(ModelError::Invalid("loss threshold is NaN".into()));
    }
    let mut plan = Plan::new();
    for (key, losses) in sensitivities {
        check_losses(key, losses)?;
        plan.insert(key.clone(), group_ratio(losses, max_loss));
    }
    Ok(plan)
}

/// `plan` without its zero ratios: the groups to cut, as [`Cut::plan`](crate::prune::Cut::plan) takes them.
pub fn cut_plan(plan: &Plan) -> Plan {
    plan.iter()
        .filter(|&(_, &ratio)| ratio != 0.0)
        .map(|(key, &ratio)| (key.clone(), ratio))
        .collect()
}

/// The plan [`ratios_by_flops`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct FlopsPlan {
    /// Every group of the table, 0.0 where it is left unpruned: [`ratios_by_loss`] at `threshold`. Pass it
    /// through [`cut_plan`] before cutting.
    pub ratios: Plan,
    /// The loss threshold the ratios come from.
    pub threshold: f64,
    /// The FLOPs of the model pruned by the ratios, as the caller's `flops_of` counted them.
    pub flops: u64,
    /// The FLOPs of the unpruned model.
    pub base_flops: u64,
}

impl FlopsPlan {
    /// The share of the FLOPs that pruning removes.
    pub fn reduction(&self) -> f64 {
        reduction(self.flops, self.base_flops)
    }
}

/// The smallest loss threshold whose [`ratios_by_loss`] plan cuts the FLOPs by at least `target_reduction`,
/// to within [`THRESHOLD_TOLERANCE`], with that plan and its FLOPs.
///
/// `flops_of` counts the FLOPs of the model pruned by a plan; it is only ever handed [`cut_plan`]s, with no
/// zero ratios. `base_flops` is the unpruned model's count. The search is a bisection on the threshold between
/// the smallest and the largest loss of the table (see the comment inside for why that is sound), so it calls
/// `flops_of` about log2(loss range / tolerance) times, some 20 to 30.
///
/// # Errors
/// A `target_reduction` outside (0, 1), a `base_flops` of 0, a table with no loss or with a loss that is not
/// finite, an error of `flops_of`, or a target that even the largest threshold, every group at its largest
/// tested ratio, does not reach: the message gives the best reduction the tested ratios reach.
pub fn ratios_by_flops(
    sensitivities: &Sensitivities,
    target_reduction: f64,
    flops_of: &mut dyn FnMut(&Plan) -> Result<u64>,
    base_flops: u64,
) -> Result<FlopsPlan> {
    if !(target_reduction > 0.0 && target_reduction < 1.0) {
        return Err(ModelError::Invalid(format!(
            "FLOPs reduction target {target_reduction} is outside (0, 1)"
        )));
    }
    if base_flops == 0 {
        return Err(ModelError::Invalid("base FLOPs are 0".into()));
    }
    let losses = sensitivities.values().flat_map(|losses| losses.values().copied());
    let (min_loss, max_loss) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), loss| {
        (lo.min(loss), hi.max(loss))
    });
    if min_loss > max_loss {
        return Err(ModelError::Invalid("the sensitivity table holds no loss".into()));
    }

    // Why bisection finds the smallest threshold. Per group, raising the threshold t never lowers the ratio:
    // the index i(t) of the first qualifying ratio from the top only grows with t, as the set of losses <= t
    // does. While i(t) stays put, the ratio r0 + (t − l0)(r1 − r0)/(l1 − l0) grows with t (r1 > r0, l1 > l0);
    // when i(t) moves up from i to j > i, the ratio goes from below r(i+1) to at least r(j) >= r(i+1); and a
    // group that starts to qualify goes from 0 to a positive ratio. Cutting a larger share of a group removes
    // a superset of its channels (the criterion ranks them once), and removing channels never adds FLOPs, so
    // the FLOPs never rise with t, and the thresholds that meet the target form one interval reaching up to
    // +inf. Below the smallest loss nothing is pruned (reduction 0, short of any target); at the largest loss
    // every group sits at its largest tested ratio, the most this table can prune.
    let evaluate = |threshold: f64, flops_of: &mut dyn FnMut(&Plan) -> Result<u64>| -> Result<FlopsPlan> {
        let ratios = ratios_by_loss(sensitivities, threshold)?;
        let flops = flops_of(&cut_plan(&ratios))?;
        Ok(FlopsPlan {
            ratios,
            threshold,
            flops,
            base_flops,
        })
    };
    let meets = |plan: &FlopsPlan| plan.reduction() >= target_reduction;

    let mut best = evaluate(max_loss, flops_of)?;
    if !meets(&best) {
        return Err(ModelError::Invalid(format!(
            "a FLOPs reduction of {:.2}% is out of reach: with every group at its largest tested ratio \
             (loss threshold {max_loss}) FLOPs fall by {:.2}%, from {base_flops} to {}",
            target_reduction * 100.0,
            best.reduction() * 100.0,
            best.flops,
        )));
    }
    let at_min = evaluate(min_loss, flops_of)?;
    if meets(&at_min) {
        return Ok(at_min);
    }
    // Invariant: `lo` misses the target, `best.threshold` meets it.
    let mut lo = min_loss;
    while best.threshold - lo > THRESHOLD_TOLERANCE {
        let mid = lo + (best.threshold - lo) / 2.0;
        if mid <= lo || mid >= best.threshold {
            break; // no float left between them
        }
        let plan = evaluate(mid, flops_of)?;
        if meets(&plan) {
            best = plan;
        } else {
            lo = mid;
        }
    }
    Ok(best)
}

/// One group's ratio under `max_loss`; see [`ratios_by_loss`].
fn group_ratio(losses: &BTreeMap<Ratio, f64>, max_loss: f64) -> f64 {
    let table: Vec<(f64, f64)> = losses.iter().map(|(ratio, &loss)| (ratio.get(), loss)).collect();
    let Some(i) = table.iter().rposition(|&(_, loss)| loss <= max_loss) else {
        return 0.0;
    };
    let (r0, l0) = table[i];
    let Some(&(r1, l1)) = table.get(i + 1) else {
        return r0;
    };
    // l1 − l0 > 0, so no division by zero: the scan from the top passed over i + 1, so l1 > max_loss, and
    // stopped at i, so l0 <= max_loss. Hence also 0 <= (max_loss − l0) / (l1 − l0) < 1, and the ratio lies in
    // [r0, r1).
    r0 + (max_loss - l0) * (r1 - r0) / (l1 - l0)
}

fn check_losses(key: &str, losses: &BTreeMap<Ratio, f64>) -> Result<()> {
    match losses.iter().find(|(_, loss)| !loss.is_finite()) {
        Some((ratio, loss)) => Err(ModelError::Invalid(format!(
            "group '{key}', ratio {}: loss {loss} is not finite",
            ratio.get()
        ))),
        None => Ok(()),
    }
}

fn reduction(flops: u64, base_flops: u64) -> f64 {
    (base_flops as f64 - flops as f64) / base_flops as f64
}
