//! `sensitivity.png` and `.svg`: loss against ratio, one line per analysed group; the most sensitive groups
//! ([`TOP_GROUPS`], by their largest loss) in colour with a legend, the others thin and light; the
//! `Prune.max_loss` threshold as a dashed line.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::font::font_of;
use super::labels::{loss_label, loss_label_exact, ratio_label, short_key};
use super::{Cell, Grid, Group, draw_legend, draw_nothing_yet};

/// How many of the most sensitive groups the sensitivity plot names in its legend.
pub const TOP_GROUPS: usize = 6;

/// The size of `sensitivity.png` and `.svg`.
pub const SENSITIVITY_SIZE: (u32, u32) = (1100, 680);

/// Distinct colours (Tableau 10) for the named groups.
pub(super) const PALETTE: [RGBColor; TOP_GROUPS] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
/// The lines of the groups not named.
const OTHER_LINE: RGBColor = RGBColor(200, 200, 200);

/// The done cells of each analysed group as (ratio, loss) points, in model order.
fn curves(grid: &Grid) -> Vec<(&Group, Vec<(f64, f64)>)> {
    grid.groups
        .iter()
        .filter(|g| !g.skipped)
        .map(|g| {
            let points = grid
                .ratios
                .iter()
                .zip(&g.cells)
                .filter_map(|(&ratio, cell)| match cell {
                    Cell::Done(loss) if loss.is_finite() => Some((ratio, *loss)),
                    _ => None,
                })
                .collect();
            (g, points)
        })
        .filter(|(_, points): &(_, Vec<_>)| !points.is_empty())
        .collect()
}

/// The keys of the [`TOP_GROUPS`] groups with the largest losses, most sensitive first (model order between
/// equals): the groups the sensitivity plot names.
pub fn most_sensitive(grid: &Grid) -> Vec<String> {
    let curves = curves(grid);
    top(&curves).into_iter().map(|i| curves[i].0.key.clone()).collect()
}

/// The indices into `curves` of the most sensitive groups.
fn top(curves: &[(&Group, Vec<(f64, f64)>)]) -> Vec<usize> {
    let peak = |points: &[(f64, f64)]| points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let mut order: Vec<usize> = (0..curves.len()).collect();
    order.sort_by(|&a, &b| peak(&curves[b].1).total_cmp(&peak(&curves[a].1)).then(a.cmp(&b)));
    order.truncate(TOP_GROUPS);
    order
}

/// Draws the sensitivity curves on `root` (any backend: the PNG and the SVG).
pub fn sensitivity<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, grid: &Grid) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let curves = curves(grid);
    let top = top(&curves);
    let losses = curves.iter().flat_map(|(_, points)| points.iter().map(|p| p.1));
    let (low, high) = losses
        .chain(grid.max_loss)
        .fold((0.0f64, 0.0f64), |(lo, hi), l| (lo.min(l), hi.max(l)));
    let span = if high - low > 1e-9 { high - low } else { 0.01 };
    let (low, high) = (low - span * 0.06, high + span * 0.1);
    let x_max = grid.ratios.iter().copied().fold(0.0, f64::max).max(0.1) + 0.05;

    let title = format!("Sensitivity: loss on {} by pruning ratio", grid.metric);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, font_of(24))
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(78)
        .build_cartesian_2d(0.0..x_max, low..high)?;
    chart
        .configure_mesh()
        .x_desc("pruning ratio (share of filters removed)")
        .y_desc("loss = (baseline - pruned) / baseline")
        .x_label_formatter(&|x| ratio_label(*x))
        .y_label_formatter(&|y| loss_label(*y))
        .label_style(font_of(15))
        .axis_desc_style(font_of(17))
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(RGBColor(245, 245, 245))
        .draw()?;

    // The zero loss, then the unnamed groups under the named ones.
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 0.0), (x_max, 0.0)],
        RGBColor(150, 150, 150).stroke_width(1),
    )))?;
    let others = curves.len() - top.len();
    let mut labelled = false;
    for (i, (_, points)) in curves.iter().enumerate() {
        if top.contains(&i) {
            continue;
        }
        let series = chart.draw_series(LineSeries::new(points.clone(), OTHER_LINE.stroke_width(1)))?;
        // One legend entry for them all.
        if !std::mem::replace(&mut labelled, true) {
            series
                .label(format!("{others} other groups"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], OTHER_LINE.stroke_width(2)));
        }
    }
    for (rank, &i) in top.iter().enumerate() {
        let (group, points) = &curves[i];
        let color = PALETTE[rank];
        let peak = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
            .label(format!("{} (max {})", short_key(&group.key, 60), loss_label(peak)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    if let Some(max_loss) = grid.max_loss {
        let style = BLACK.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, max_loss), (x_max, max_loss)],
                10,
                6,
                style,
            ))?
            .label(format!("max_loss {}", loss_label_exact(max_loss)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y), (x + 14, y), (x + 24, y)], style));
    }
    if curves.is_empty() {
        draw_nothing_yet(&root, SENSITIVITY_SIZE, "no finished cell yet")?;
    } else {
        draw_legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}
