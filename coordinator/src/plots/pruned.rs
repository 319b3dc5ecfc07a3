//! `pruned.png`, when the run has a plan: each group's channels before and after it.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::font::{anchored, colored};
use super::labels::{KEY_CHARS, key_column_width, loss_label_exact, ratio_label, short_key};
use super::{Grid, PlannedGroup};

const PRUNED_TOP: u32 = 84;
const PRUNED_ROW: u32 = 20;
const PRUNED_BARS: u32 = 560;
const PRUNED_RIGHT: u32 = 170;

fn pruned_origin(plan: &[PlannedGroup]) -> (u32, u32) {
    (key_column_width(plan.iter().map(|g| g.key.as_str())), PRUNED_TOP)
}

/// The size of `pruned.png`: it grows with the plan's groups.
pub fn pruned_size(plan: &[PlannedGroup]) -> (u32, u32) {
    let (x0, y0) = pruned_origin(plan);
    (
        x0 + PRUNED_BARS + PRUNED_RIGHT,
        (y0 + PRUNED_ROW * plan.len() as u32 + 30).max(240),
    )
}

/// The colours of the bars before and after the plan.
const BEFORE_COLOR: RGBColor = RGBColor(190, 190, 190);
const AFTER_COLOR: RGBColor = RGBColor(46, 117, 182);

/// Draws each planned group's channels before and after the plan on `root`, of [`pruned_size`].
pub fn pruned<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, grid: &Grid, plan: &[PlannedGroup]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (x0, y0) = pruned_origin(plan);
    let (x0, y0) = (x0 as i32, y0 as i32);
    let bars = PRUNED_BARS as i32 - 20;
    let row = PRUNED_ROW as i32;
    let most = plan.iter().map(|g| g.channels_before).max().unwrap_or(0).max(1);
    let scale = |channels: usize| (channels as f64 / most as f64 * bars as f64).round() as i32;
    let before: usize = plan.iter().map(|g| g.channels_before).sum();
    let after: usize = plan.iter().map(|g| g.channels_after).sum();
    let pruned = plan.iter().filter(|g| g.channels_after < g.channels_before).count();
    let threshold = grid
        .max_loss
        .map(|m| format!(", max_loss {}", loss_label_exact(m)))
        .unwrap_or_default();
    root.draw(&Text::new(
        format!("Channels per group before and after the plan{threshold}"),
        (12, 12),
        anchored(19, HPos::Left, VPos::Top),
    ))?;
    root.draw(&Text::new(
        format!(
            "{pruned} of {} groups pruned; {before} → {after} channels ({:.1}% removed)",
            plan.len(),
            if before > 0 {
                (before - after) as f64 * 100.0 / before as f64
            } else {
                0.0
            }
        ),
        (12, 38),
        colored(anchored(14, HPos::Left, VPos::Top), RGBColor(70, 70, 70)),
    ))?;
    // Legend, then a channel axis with light grid lines.
    let lx = x0 + bars - 180;
    for (i, (color, label)) in [(BEFORE_COLOR, "before"), (AFTER_COLOR, "after")]
        .into_iter()
        .enumerate()
    {
        let x = lx + 95 * i as i32;
        root.draw(&Rectangle::new([(x, 40), (x + 18, 52)], color.filled()))?;
        root.draw(&Text::new(label, (x + 24, 46), anchored(13, HPos::Left, VPos::Center)))?;
    }
    let y_end = y0 + row * plan.len() as i32;
    let step = tick_step(most);
    let mut tick = 0;
    while tick <= most {
        let x = x0 + scale(tick);
        root.draw(&PathElement::new(
            vec![(x, y0 - 4), (x, y_end)],
            RGBColor(232, 232, 232),
        ))?;
        root.draw(&Text::new(
            tick.to_string(),
            (x, y0 - 6),
            anchored(12, HPos::Center, VPos::Bottom),
        ))?;
        tick += step;
    }
    for (i, group) in plan.iter().enumerate() {
        let y = y0 + row * i as i32;
        root.draw(&Text::new(
            short_key(&group.key, KEY_CHARS),
            (x0 - 8, y + row / 2),
            anchored(12, HPos::Right, VPos::Center),
        ))?;
        root.draw(&Rectangle::new(
            [(x0, y + 2), (x0 + scale(group.channels_before), y + 9)],
            BEFORE_COLOR.filled(),
        ))?;
        root.draw(&Rectangle::new(
            [(x0, y + 10), (x0 + scale(group.channels_after), y + 17)],
            AFTER_COLOR.filled(),
        ))?;
        let label = if group.channels_after < group.channels_before {
            format!(
                "{} → {} ({})",
                group.channels_before,
                group.channels_after,
                ratio_label(group.ratio)
            )
        } else {
            format!("{}", group.channels_before)
        };
        root.draw(&Text::new(
            label,
            (x0 + scale(group.channels_before) + 6, y + row / 2),
            colored(anchored(11, HPos::Left, VPos::Center), RGBColor(60, 60, 60)),
        ))?;
    }
    root.draw(&PathElement::new(
        vec![(x0, y0 - 4), (x0, y_end)],
        RGBColor(120, 120, 120),
    ))?;
    root.present()?;
    Ok(())
}

/// A round step giving about 5 ticks up to `most`.
fn tick_step(most: usize) -> usize {
    let raw = (most as f64 / 5.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    step.max(1.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_take_round_steps() {
        assert_eq!(tick_step(64), 20);
        assert_eq!(tick_step(512), 200);
        assert_eq!(tick_step(3), 1);
    }
}
