//! `tradeoff.png` and `tradeoff.svg`, for a run with a measured target: the measured loss of every done probe
//! against the reduction it reached, each point labelled with its step on the chain, the chosen probe ringed,
//! and the target's bounds as dashed lines (`max_model_loss` across, the reduction target upright).

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::font::{anchored, colored, font, font_of};
use super::labels::{loss_label, loss_label_exact};
use super::sensitivity::PALETTE;
use super::{Drawn, draw_legend, draw_nothing_yet, write_drawn};

/// What the trade-off plot is drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct Tradeoff {
    /// Names the run in the title: its name and id.
    pub run: String,
    /// The metric the loss is computed on.
    pub metric: String,
    /// The reduction on the x axis.
    pub axis: Axis,
    /// The done probes that have a loss and a reduction, in step order.
    pub points: Vec<Point>,
    /// `Prune.max_model_loss`, drawn across.
    pub max_model_loss: Option<f64>,
    /// The target's reduction (of [`Tradeoff::axis`]), drawn upright.
    pub reduction_target: Option<f64>,
}

/// Which measured reduction the x axis shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    Flops,
    /// When the target is `latency_reduction`: the reduction the search aimed at.
    Latency,
}

impl Axis {
    /// The target's key, as the legend names its line.
    pub fn key(self) -> &'static str {
        match self {
            Axis::Flops => "flops_reduction",
            Axis::Latency => "latency_reduction",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Axis::Flops => "FLOPs reduction (%), counted on the pruned graph",
            Axis::Latency => "latency reduction (%), measured on the probe's device",
        }
    }
}

/// One done probe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Its place on the chain (1 = the smallest cut).
    pub step: u32,
    /// The reduction of [`Tradeoff::axis`], a share (0.25 for 25%).
    pub reduction: f64,
    pub loss: f64,
    /// Its plan is the run's plan.
    pub chosen: bool,
}

/// The size of `tradeoff.png` and `.svg`.
pub const SIZE: (u32, u32) = (1100, 680);
/// The probes' points.
pub const PROBE_COLOR: RGBColor = PALETTE[0];
/// The ring around the chosen probe.
pub const CHOSEN_COLOR: RGBColor = PALETTE[3];

/// Draws `tradeoff.png` and `tradeoff.svg` in memory.
///
/// # Errors
///
/// No font (see [`font`]), or a plot that cannot be drawn, naming it.
pub fn render(tradeoff: &Tradeoff) -> Result<Vec<Drawn>> {
    font()?;
    Ok(vec![
        Drawn::png("tradeoff.png", SIZE, |root| draw(root, tradeoff))?,
        Drawn::svg("tradeoff.svg", SIZE, |root| draw(root, tradeoff))?,
    ])
}

/// Draws `tradeoff.png` and `tradeoff.svg` (see [`render`]) and writes them into `out` atomically; answers the
/// files written.
///
/// # Errors
///
/// As [`render`], or a file that cannot be written, naming it.
pub fn write(tradeoff: &Tradeoff, out: &Path) -> Result<Vec<PathBuf>> {
    write_drawn(render(tradeoff)?, out)
}

/// Draws the trade-off on `root` (any backend: the PNG and the SVG).
pub fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, tradeoff: &Tradeoff) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    // The x axis is in percent; the points keep shares.
    let percent = |share: f64| share * 100.0;
    let xs = tradeoff.points.iter().map(|p| percent(p.reduction));
    let (x_low, x_high) = xs
        .chain(tradeoff.reduction_target.map(percent))
        .fold((0.0f64, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let x_span = if x_high - x_low > 1e-9 { x_high - x_low } else { 10.0 };
    let (x_low, x_high) = (x_low - x_span * 0.04, x_high + x_span * 0.08);
    let losses = tradeoff.points.iter().map(|p| p.loss);
    let (low, high) = losses
        .chain(tradeoff.max_model_loss)
        .fold((0.0f64, 0.0f64), |(lo, hi), l| (lo.min(l), hi.max(l)));
    let span = if high - low > 1e-9 { high - low } else { 0.01 };
    let (low, high) = (low - span * 0.08, high + span * 0.14);

    let title = format!(
        "Trade-off of {}: loss on {} by {} reduction",
        tradeoff.run,
        tradeoff.metric,
        match tradeoff.axis {
            Axis::Flops => "FLOPs",
            Axis::Latency => "latency",
        }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, font_of(22))
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(78)
        .build_cartesian_2d(x_low..x_high, low..high)?;
    chart
        .configure_mesh()
        .x_desc(tradeoff.axis.description())
        .y_desc("loss = (baseline - pruned) / baseline")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| loss_label(*y))
        .label_style(font_of(15))
        .axis_desc_style(font_of(17))
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(RGBColor(245, 245, 245))
        .draw()?;

    chart.draw_series(std::iter::once(PathElement::new(
        vec![(x_low, 0.0), (x_high, 0.0)],
        RGBColor(150, 150, 150).stroke_width(1),
    )))?;
    let threshold = BLACK.stroke_width(2);
    let dashed_legend = move |(x, y): (i32, i32)| {
        EmptyElement::at((x, y))
            + PathElement::new(vec![(0, 0), (9, 0)], threshold)
            + PathElement::new(vec![(15, 0), (24, 0)], threshold)
    };
    if let Some(max_model_loss) = tradeoff.max_model_loss {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x_low, max_model_loss), (x_high, max_model_loss)],
                10,
                6,
                threshold,
            ))?
            .label(format!("max_model_loss {}", loss_label_exact(max_model_loss)))
            .legend(dashed_legend);
    }
    if let Some(target) = tradeoff.reduction_target {
        let upright = RGBColor(110, 110, 110).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(percent(target), low), (percent(target), high)],
                10,
                6,
                upright,
            ))?
            .label(format!("{} {}", tradeoff.axis.key(), loss_label_exact(target)))
            .legend(move |(x, y)| {
                EmptyElement::at((x + 12, y))
                    + PathElement::new(vec![(0, -8), (0, -2)], upright)
                    + PathElement::new(vec![(0, 3), (0, 8)], upright)
            });
    }

    let at = |p: &Point| (percent(p.reduction), p.loss);
    chart
        .draw_series(
            tradeoff
                .points
                .iter()
                .map(|p| Circle::new(at(p), 5, PROBE_COLOR.filled())),
        )?
        .label(format!("probe (step on the chain), {} done", tradeoff.points.len()))
        .legend(|(x, y)| Circle::new((x + 12, y), 5, PROBE_COLOR.filled()));
    chart.draw_series(tradeoff.points.iter().map(|p| {
        EmptyElement::at(at(p))
            + Text::new(
                p.step.to_string(),
                (7, -7),
                colored(anchored(13, HPos::Left, VPos::Bottom), RGBColor(60, 60, 60)),
            )
    }))?;
    let chosen: Vec<&Point> = tradeoff.points.iter().filter(|p| p.chosen).collect();
    if !chosen.is_empty() {
        let ring = CHOSEN_COLOR.stroke_width(3);
        let steps: Vec<String> = chosen.iter().map(|p| p.step.to_string()).collect();
        chart
            .draw_series(chosen.iter().map(|p| Circle::new(at(p), 11, ring)))?
            .label(format!("chosen (step {})", steps.join(", ")))
            .legend(move |(x, y)| Circle::new((x + 12, y), 7, ring));
    }

    if tradeoff.points.is_empty() {
        draw_nothing_yet(&root, SIZE, "no finished probe yet")?;
    }
    draw_legend(&mut chart)?;
    root.present()?;
    Ok(())
}
