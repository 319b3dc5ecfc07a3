//! The ratio planner: PaddleSlim's `get_ratios_by_loss` against ratios worked out by hand, and the FLOPs
//! target search against a synthetic FLOPs count.

use std::collections::BTreeMap;

use sensgrid_model::ModelError;
use sensgrid_model::prune::Plan;
use sensgrid_model::prune::planner::{
    Ratio, Sensitivities, THRESHOLD_TOLERANCE, cut_plan, ratios_by_flops, ratios_by_loss,
};

const EXPAND: &str = "conv10_expand_weights";
const LINEAR: &str = "conv10_linear_weights";

/// The sensitivities of PaddleOCR's pruning guide. The expand group's losses are not monotonic: 0.2 loses more
/// than 0.3, and 0.7 more than 0.8.
const GUIDE: [(&str, [(f64, f64); 8]); 2] = [
    (
        EXPAND,
        [
            (0.1, 0.006509952684312718),
            (0.2, 0.01827734339798862),
            (0.3, 0.014528405644659832),
            (0.4, 0.030615754498018757),
            (0.5, 0.047105205602406594),
            (0.6, 0.06536008804270439),
            (0.7, 0.12391408417493704),
            (0.8, 0.11798612250664964),
        ],
    ),
    (
        LINEAR,
        [
            (0.1, 0.05113190831455035),
            (0.2, 0.07705573833558801),
            (0.3, 0.12096721757739311),
            (0.4, 0.1819252083008504),
            (0.5, 0.3728054727792405),
            (0.6, 0.5135061352930738),
            (0.7, 0.7272187676899062),
            (0.8, 0.7908166677143281),
        ],
    ),
];

fn table(groups: &[(&str, &[(f64, f64)])]) -> Sensitivities {
    groups
        .iter()
        .map(|&(key, losses)| {
            let losses = losses.iter().map(|&(r, l)| (Ratio::new(r).unwrap(), l)).collect();
            (key.to_string(), losses)
        })
        .collect()
}

fn guide() -> Sensitivities {
    let [(expand, expand_losses), (linear, linear_losses)] = &GUIDE;
    table(&[(expand, expand_losses), (linear, linear_losses)])
}

fn assert_ratios(plan: &Plan, expected: &[(&str, f64)]) {
    let keys: Vec<&str> = plan.keys().map(String::as_str).collect();
    let expected_keys: Vec<&str> = expected.iter().map(|&(key, _)| key).collect();
    assert_eq!(keys, expected_keys);
    for &(key, ratio) in expected {
        assert!(
            (plan[key] - ratio).abs() < 1e-12,
            "{key}: got {}, expected {ratio}",
            plan[key]
        );
    }
}

#[test]
fn ratios_by_loss_guide_at_0_02() {
    let plan = ratios_by_loss(&guide(), 0.02).unwrap();
    // expand: from the top, 0.8 (0.1180), 0.7 (0.1239), 0.6 (0.0654), 0.5 (0.0471), 0.4 (0.0306) exceed 0.02;
    // 0.3 (0.014528405644659832) is the first at or under it. 0.2 (0.0183) is under it too but never reached.
    //   0.3 + (0.02 − 0.014528405644659832) × 0.1 / (0.030615754498018757 − 0.014528405644659832)
    //   = 0.3 + 0.005471594355340168 × 0.1 / 0.016087348853358925
    //   = 0.3 + 0.0005471594355340168 / 0.016087348853358925
    //   = 0.3 + 0.0340117840746503 = 0.3340117840746503
    // linear: its smallest loss, 0.0511 at 0.1, exceeds 0.02, so it is not pruned: 0.0.
    assert_ratios(&plan, &[(EXPAND, 0.3340117840746503), (LINEAR, 0.0)]);
}

#[test]
fn ratios_by_loss_guide_at_0_05() {
    let plan = ratios_by_loss(&guide(), 0.05).unwrap();
    // expand: 0.8 (0.1180), 0.7 (0.1239), 0.6 (0.065360088) exceed; 0.5 (0.047105205602406594) qualifies.
    //   0.5 + (0.05 − 0.047105205602406594) × 0.1 / (0.06536008804270439 − 0.047105205602406594)
    //   = 0.5 + 0.002894794397593406 × 0.1 / 0.018254882440297796
    //   = 0.5 + 0.0002894794397593406 / 0.018254882440297796
    //   = 0.5 + 0.01585764469894983 = 0.5158576446989498
    // linear: 0.0511 at 0.1 still exceeds 0.05: 0.0.
    assert_ratios(&plan, &[(EXPAND, 0.5158576446989498), (LINEAR, 0.0)]);
}

#[test]
fn ratios_by_loss_guide_at_0_2() {
    let plan = ratios_by_loss(&guide(), 0.2).unwrap();
    // expand: the largest ratio, 0.8 (0.1180), already qualifies: 0.8, no interpolation.
    // linear: 0.8 (0.7908), 0.7 (0.7272), 0.6 (0.5135), 0.5 (0.3728) exceed; 0.4 (0.1819252083008504)
    // qualifies.
    //   0.4 + (0.2 − 0.1819252083008504) × 0.1 / (0.3728054727792405 − 0.1819252083008504)
    //   = 0.4 + 0.0180747916991496 × 0.1 / 0.1908802644783901
    //   = 0.4 + 0.00180747916991496 / 0.1908802644783901
    //   = 0.4 + 0.009469177836976376 = 0.4094691778369764
    assert_ratios(&plan, &[(EXPAND, 0.8), (LINEAR, 0.4094691778369764)]);
}

#[test]
fn ratios_by_loss_takes_the_first_hit_from_the_top_of_a_non_monotonic_table() {
    let sensitivities = guide();
    // At 0.12 expand's 0.8 (0.11799) qualifies although 0.7 below it (0.12391) does not: 0.8.
    assert_eq!(ratios_by_loss(&sensitivities, 0.12).unwrap()[EXPAND], 0.8);
    // At 0.016 the scan stops at 0.3 (0.014528) although 0.2 above it in the table (0.018277) exceeds:
    //   0.3 + (0.016 − 0.014528405644659832) × 0.1 / 0.016087348853358925
    //   = 0.3 + 0.0001471594355340168 / 0.016087348853358925 = 0.3 + 0.009147525603840625
    let ratio = ratios_by_loss(&sensitivities, 0.016).unwrap()[EXPAND];
    assert!((ratio - 0.3091475256038406).abs() < 1e-12, "{ratio}");
    // Exactly on a tested loss the interpolation adds nothing: linear at its 0.3's loss is 0.3.
    assert_eq!(
        ratios_by_loss(&sensitivities, 0.12096721757739311).unwrap()[LINEAR],
        0.3
    );
}

#[test]
fn ratios_by_loss_with_negative_losses() {
    let sensitivities = table(&[("g", &[(0.1, -0.02), (0.2, -0.01), (0.3, 0.04)])]);
    // At 0: 0.3 (0.04) exceeds, 0.2 (−0.01) qualifies: 0.2 + (0 + 0.01) × 0.1 / (0.04 + 0.01) = 0.2 + 0.02.
    let at_zero = ratios_by_loss(&sensitivities, 0.0).unwrap()["g"];
    assert!((at_zero - 0.22).abs() < 1e-12, "{at_zero}");
    // At −0.015: 0.1 (−0.02) qualifies: 0.1 + (−0.015 + 0.02) × 0.1 / (−0.01 + 0.02) = 0.1 + 0.05.
    let below_zero = ratios_by_loss(&sensitivities, -0.015).unwrap()["g"];
    assert!((below_zero - 0.15).abs() < 1e-12, "{below_zero}");
    // Under every loss: not pruned.
    assert_eq!(ratios_by_loss(&sensitivities, -0.03).unwrap()["g"], 0.0);
}

#[test]
fn ratios_by_loss_keeps_an_empty_group_unpruned() {
    let sensitivities = table(&[("empty", &[]), ("g", &[(0.5, 0.0)])]);
    assert_ratios(
        &ratios_by_loss(&sensitivities, 0.0).unwrap(),
        &[("empty", 0.0), ("g", 0.5)],
    );
}

#[test]
fn ratios_by_loss_refuses_what_would_give_a_nan_ratio() {
    let nan_loss = table(&[("g", &[(0.1, 0.0), (0.2, f64::NAN)])]);
    assert_eq!(
        ratios_by_loss(&nan_loss, 0.1).unwrap_err().to_string(),
        "group 'g', ratio 0.2: loss NaN is not finite"
    );
    assert_eq!(
        ratios_by_loss(&guide(), f64::NAN).unwrap_err().to_string(),
        "loss threshold is NaN"
    );
}

#[test]
fn ratio_is_strictly_between_0_and_1() {
    for bad in [0.0, 1.0, -0.1, f64::NAN] {
        let err = Ratio::new(bad).unwrap_err();
        assert_eq!(err.to_string(), format!("ratio {bad} is outside (0, 1)"));
    }
    assert_eq!(Ratio::new(0.25).unwrap().get(), 0.25);
}

#[test]
fn cut_plan_drops_unpruned_groups() {
    let plan = ratios_by_loss(&guide(), 0.02).unwrap();
    assert_ratios(&cut_plan(&plan), &[(EXPAND, 0.3340117840746503)]);
}

const BASE_FLOPS: u64 = 1_000_000;

/// FLOPs that fall linearly with each group's ratio: 60% of them are in expand, 40% in linear.
fn synthetic_flops(plan: &Plan) -> u64 {
    let share = |key: &str| plan.get(key).copied().unwrap_or(0.0);
    let kept = 1.0 - 0.6 * share(EXPAND) - 0.4 * share(LINEAR);
    (BASE_FLOPS as f64 * kept).round() as u64
}

fn synthetic_reduction(plan: &Plan) -> f64 {
    1.0 - synthetic_flops(plan) as f64 / BASE_FLOPS as f64
}

/// `synthetic_flops`, checking that the planner only hands over plans `Cut::plan` takes, and counting calls.
fn flops_of(calls: &mut usize) -> impl FnMut(&Plan) -> sensgrid_model::Result<u64> + '_ {
    move |plan| {
        *calls += 1;
        assert!(plan.values().all(|&r| r > 0.0 && r < 1.0), "{plan:?}");
        Ok(synthetic_flops(plan))
    }
}

#[test]
fn ratios_by_flops_finds_the_smallest_threshold_meeting_the_target() {
    let sensitivities = guide();
    let mut calls = 0;
    let found = ratios_by_flops(&sensitivities, 0.5, &mut flops_of(&mut calls), BASE_FLOPS).unwrap();

    assert_eq!(found.ratios, ratios_by_loss(&sensitivities, found.threshold).unwrap());
    assert_eq!(found.flops, synthetic_flops(&found.ratios));
    assert_eq!(found.base_flops, BASE_FLOPS);
    assert!(found.reduction() >= 0.5, "{found:?}");
    // Expand alone reaches at most 0.6 × 0.8 = 48%, so linear must be cut too.
    assert!(found.ratios[LINEAR] > 0.0, "{found:?}");
    // One tolerance lower misses the target: the threshold is the smallest that meets it.
    let lower = ratios_by_loss(&sensitivities, found.threshold - THRESHOLD_TOLERANCE).unwrap();
    assert!(synthetic_reduction(&lower) < 0.5, "{lower:?}");
    // Bisection over a loss range of 0.78 to 1e-6 takes 20 halvings, plus both ends.
    assert_eq!(calls, 22);
}

#[test]
fn ratios_by_flops_stops_at_the_smallest_loss_when_it_meets_the_target() {
    let mut calls = 0;
    let found = ratios_by_flops(&guide(), 0.05, &mut flops_of(&mut calls), BASE_FLOPS).unwrap();
    // At expand's 0.1 loss (the table's smallest) expand is cut by 0.1: 6% fewer FLOPs.
    assert_eq!(found.threshold, 0.006509952684312718);
    assert_ratios(&found.ratios, &[(EXPAND, 0.1), (LINEAR, 0.0)]);
    assert_eq!(found.flops, 940_000);
    assert_eq!(calls, 2);
}

#[test]
fn ratios_by_flops_reports_the_best_reachable_reduction() {
    let mut calls = 0;
    let err = ratios_by_flops(&guide(), 0.9, &mut flops_of(&mut calls), BASE_FLOPS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a FLOPs reduction of 90.00% is out of reach: with every group at its largest tested ratio \
         (loss threshold 0.7908166677143281) FLOPs fall by 80.00%, from 1000000 to 200000"
    );
    assert_eq!(calls, 1);
}

#[test]
fn ratios_by_flops_refuses_bad_input_and_passes_on_flops_errors() {
    let sensitivities = guide();
    let mut calls = 0;
    for target in [0.0, 1.0, f64::NAN] {
        let err = ratios_by_flops(&sensitivities, target, &mut flops_of(&mut calls), BASE_FLOPS).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("FLOPs reduction target {target} is outside (0, 1)")
        );
    }
    let err = ratios_by_flops(&sensitivities, 0.5, &mut flops_of(&mut calls), 0).unwrap_err();
    assert_eq!(err.to_string(), "base FLOPs are 0");
    let empty = table(&[("g", &[])]);
    let err = ratios_by_flops(&empty, 0.5, &mut flops_of(&mut calls), BASE_FLOPS).unwrap_err();
    assert_eq!(err.to_string(), "the sensitivity table holds no loss");
    assert_eq!(calls, 0);

    let mut failing = |_: &Plan| Err(ModelError::Invalid("node 'conv10' (Conv): no FLOPs".into()));
    let err = ratios_by_flops(&sensitivities, 0.5, &mut failing, BASE_FLOPS).unwrap_err();
    assert_eq!(err.to_string(), "node 'conv10' (Conv): no FLOPs");
}

#[test]
fn ratios_by_flops_ratios_grow_with_the_target() {
    let sensitivities = guide();
    let mut calls = 0;
    let mut previous: BTreeMap<String, f64> = BTreeMap::new();
    for target in [0.1, 0.3, 0.5, 0.7] {
        let found = ratios_by_flops(&sensitivities, target, &mut flops_of(&mut calls), BASE_FLOPS).unwrap();
        for (key, &ratio) in &found.ratios {
            assert!(
                ratio >= previous.get(key).copied().unwrap_or(0.0),
                "{target}: {found:?}"
            );
        }
        previous = found.ratios;
    }
}
