//! `recover.png`, for a run with a recovery (issue 25): above, the student's eval metric at each evaluated step,
//! with the baseline's (the unpruned model) and the pruned model's metric as dashed lines across; below, the
//! distillation loss of every step. Drawn from `recover_report.json` ([`Recovery::from_report`]), whose history
//! holds every step from the first, those of attempts killed before the one that finished included.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use super::font::{font, font_of};
use super::labels::loss_label;
use super::sensitivity::PALETTE;
use super::{Drawn, draw_legend, draw_nothing_yet};

/// What the recovery plot is drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    /// Names the run in the title: its name and id.
    pub run: String,
    /// The metric's main indicator (hmean, acc).
    pub metric: String,
    /// The unpruned model's metric.
    pub baseline: f64,
    /// The pruned model's metric before recovery.
    pub pruned: f64,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub step: u64,
    pub loss: f64,
    /// Where the step was evaluated.
    pub metric: Option<f64>,
}

impl Recovery {
    /// The recovery `recover_report.json` describes; `None` for a report without its metric, baseline or pruned
    /// metric.
    pub fn from_report(run: String, report: &Value) -> Option<Recovery> {
        let steps = report["history"]
            .as_array()
            .map(|history| {
                history
                    .iter()
                    .filter_map(|h| {
                        Some(Step {
                            step: h["step"].as_u64()?,
                            loss: h["loss"].as_f64()?,
                            metric: h["metric"].as_f64(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Recovery {
            run,
            metric: report["metric"].as_str()?.to_owned(),
            baseline: report["baseline"].as_f64()?,
            pruned: report["pruned"].as_f64()?,
            steps,
        })
    }
}

/// The size of `recover.png`.
pub const SIZE: (u32, u32) = (1100, 820);
/// The student's metric and loss.
const STUDENT_COLOR: RGBColor = PALETTE[0];
/// The pruned model's metric.
const PRUNED_COLOR: RGBColor = PALETTE[3];

/// Draws `recover.png` in memory.
///
/// # Errors
///
/// No font (see [`font`]), or a plot that cannot be drawn.
pub fn render(recovery: &Recovery) -> Result<Vec<Drawn>> {
    font()?;
    Ok(vec![Drawn::png("recover.png", SIZE, |root| draw(root, recovery))?])
}

/// Draws the recovery on `root`.
pub fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, recovery: &Recovery) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    if recovery.steps.is_empty() {
        draw_nothing_yet(&root, SIZE, "no recovery step yet")?;
        root.present()?;
        return Ok(());
    }
    let first = recovery.steps[0].step.saturating_sub(1) as f64;
    let last = (recovery.steps[recovery.steps.len() - 1].step as f64).max(first + 1.0);
    let (upper, lower) = root.split_vertically(SIZE.1 * 11 / 20);

    let evaluated: Vec<(f64, f64)> = recovery
        .steps
        .iter()
        .filter_map(|s| Some((s.step as f64, s.metric?)))
        .collect();
    let (low, high) = evaluated
        .iter()
        .map(|&(_, m)| m)
        .chain([recovery.baseline, recovery.pruned])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), m| (lo.min(m), hi.max(m)));
    let span = if high - low > 1e-9 { high - low } else { 0.01 };
    let mut metric_chart = ChartBuilder::on(&upper)
        .caption(
            format!(
                "Recovery of {}: {} and distillation loss by step",
                recovery.run, recovery.metric
            ),
            font_of(22),
        )
        .margin(18)
        .x_label_area_size(40)
        .y_label_area_size(78)
        .build_cartesian_2d(first..last, (low - span * 0.1)..(high + span * 0.25))?;
    metric_chart
        .configure_mesh()
        .y_desc(format!("{} on the eval set", recovery.metric))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .label_style(font_of(15))
        .axis_desc_style(font_of(17))
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(RGBColor(245, 245, 245))
        .draw()?;
    for (value, name, color) in [
        (recovery.baseline, "baseline (unpruned)", BLACK),
        (recovery.pruned, "pruned, before recovery", PRUNED_COLOR),
    ] {
        let style = color.stroke_width(2);
        metric_chart
            .draw_series(DashedLineSeries::new(vec![(first, value), (last, value)], 10, 6, style))?
            .label(format!("{name} {value:.4}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    metric_chart
        .draw_series(LineSeries::new(
            evaluated.iter().copied(),
            STUDENT_COLOR.stroke_width(2),
        ))?
        .label("recovering student")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], STUDENT_COLOR.stroke_width(2)));
    metric_chart.draw_series(
        evaluated
            .iter()
            .map(|&point| Circle::new(point, 4, STUDENT_COLOR.filled())),
    )?;
    draw_legend(&mut metric_chart)?;

    let losses = recovery.steps.iter().map(|s| s.loss);
    let (low, high) = losses
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), l| (lo.min(l), hi.max(l)));
    let span = if high - low > 1e-12 {
        high - low
    } else {
        high.abs().max(1e-3)
    };
    let mut loss_chart = ChartBuilder::on(&lower)
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(78)
        .build_cartesian_2d(first..last, (low - span * 0.1).max(0.0)..(high + span * 0.1))?;
    loss_chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("distillation loss")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| loss_label(*y))
        .label_style(font_of(15))
        .axis_desc_style(font_of(17))
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(RGBColor(245, 245, 245))
        .draw()?;
    loss_chart.draw_series(LineSeries::new(
        recovery.steps.iter().map(|s| (s.step as f64, s.loss)),
        STUDENT_COLOR.stroke_width(1),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_report_gives_its_steps_and_the_two_reference_metrics() {
        let report = json!({
            "metric": "hmean", "baseline": 0.8, "pruned": 0.5,
            "history": [{"step": 3, "loss": 0.2, "metric": null}, {"step": 4, "loss": 0.1, "metric": 0.6}],
        });
        let recovery = Recovery::from_report("det (run 1)".into(), &report).unwrap();
        assert_eq!((recovery.baseline, recovery.pruned), (0.8, 0.5));
        assert_eq!(
            recovery.steps,
            [
                Step {
                    step: 3,
                    loss: 0.2,
                    metric: None
                },
                Step {
                    step: 4,
                    loss: 0.1,
                    metric: Some(0.6)
                }
            ]
        );
        assert!(Recovery::from_report("x".into(), &json!({"metric": "hmean"})).is_none());
    }
}
