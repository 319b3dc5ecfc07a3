//! `heatmap.png`: groups (rows, model order) by ratios (columns) coloured by loss, with a colour bar. Cells that
//! have no loss are never drawn as a loss: skipped ones grey and hatched with an `s`, failed ones dark with an
//! `x`, pending ones empty ([`SKIPPED_COLOR`], [`FAILED_COLOR`], [`PENDING_COLOR`]).

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::font::{anchored, colored};
use super::labels::{KEY_CHARS, key_column_width, loss_label, loss_label_exact, ratio_label, short_key};
use super::{Cell, Grid};

/// The fill of a skipped cell (hatched with [`SKIPPED_HATCH`] and marked `s`).
pub const SKIPPED_COLOR: RGBColor = RGBColor(200, 200, 200);
/// The hatching and mark of a skipped cell.
pub const SKIPPED_HATCH: RGBColor = RGBColor(140, 140, 140);
/// The fill of a failed or cancelled cell (marked `x` in white).
pub const FAILED_COLOR: RGBColor = RGBColor(35, 35, 35);
/// The fill of a pending cell: the background, inside a light outline.
pub const PENDING_COLOR: RGBColor = WHITE;
/// The colour of a zero loss; larger losses go to dark red, negative ones (a better score) to blue.
pub const ZERO_LOSS_COLOR: RGBColor = RGBColor(255, 255, 204);

/// The size of one heatmap cell, in pixels.
pub const CELL_SIZE: (u32, u32) = (58, 18);
/// The heatmap's space above the cells (title and ratio labels).
const HEATMAP_TOP: u32 = 78;
/// The heatmap's panel right of the cells (colour bar and legend).
const HEATMAP_PANEL: u32 = 250;
const HEATMAP_MIN_HEIGHT: u32 = 470;

/// Where the heatmap's cells start (their top-left corner).
fn heatmap_origin(grid: &Grid) -> (u32, u32) {
    let width = key_column_width(grid.groups.iter().map(|g| g.key.as_str()));
    (width, HEATMAP_TOP)
}

/// The size of `heatmap.png`: it grows with the groups (rows) and ratios (columns).
pub fn heatmap_size(grid: &Grid) -> (u32, u32) {
    let (x0, y0) = heatmap_origin(grid);
    let width = x0 + CELL_SIZE.0 * grid.ratios.len().max(1) as u32 + HEATMAP_PANEL;
    let height = y0 + CELL_SIZE.1 * grid.groups.len() as u32 + 40;
    (width.max(640), height.max(HEATMAP_MIN_HEIGHT))
}

/// The pixel rectangle of cell (`row`, `col`): its top-left corner and its bottom-right corner, exclusive.
pub fn heatmap_cell_rect(grid: &Grid, row: usize, col: usize) -> ((u32, u32), (u32, u32)) {
    let (x0, y0) = heatmap_origin(grid);
    let x = x0 + CELL_SIZE.0 * col as u32;
    let y = y0 + CELL_SIZE.1 * row as u32;
    ((x, y), (x + CELL_SIZE.0, y + CELL_SIZE.1))
}

/// The pixel at the centre of cell (`row`, `col`) of `heatmap.png`.
pub fn heatmap_cell_center(grid: &Grid, row: usize, col: usize) -> (u32, u32) {
    let ((x0, y0), (x1, y1)) = heatmap_cell_rect(grid, row, col);
    ((x0 + x1) / 2, (y0 + y1) / 2)
}

/// The loss range the colours span: 0 to the largest loss, down to the smallest when one is negative.
fn loss_range(grid: &Grid) -> (f64, f64) {
    let losses = grid.groups.iter().flat_map(|g| &g.cells).filter_map(|c| match c {
        Cell::Done(loss) if loss.is_finite() => Some(*loss),
        _ => None,
    });
    let (low, high) = losses.fold((0.0f64, 0.0f64), |(lo, hi), l| (lo.min(l), hi.max(l)));
    (low, if high > 0.0 { high } else { 0.01 })
}

/// The colour of `loss` on a scale spanning `range`: light yellow at 0, to dark red at the largest loss, and to
/// blue for negative losses (a better score) at the same magnitude; square-root spaced, so the many small
/// losses stay apart.
pub fn loss_color(loss: f64, (low, high): (f64, f64)) -> RGBColor {
    const HOT: [RGBColor; 5] = [
        ZERO_LOSS_COLOR,
        RGBColor(254, 217, 118),
        RGBColor(253, 141, 60),
        RGBColor(227, 26, 28),
        RGBColor(128, 0, 38),
    ];
    const COLD: [RGBColor; 4] = [
        ZERO_LOSS_COLOR,
        RGBColor(161, 218, 180),
        RGBColor(65, 182, 196),
        RGBColor(34, 94, 168),
    ];
    let (stops, t): (&[RGBColor], f64) = if loss >= 0.0 {
        (&HOT, (loss / high).clamp(0.0, 1.0).sqrt())
    } else {
        // On the same scale as the losses: a tiny gain stays pale next to large losses.
        (&COLD, (-loss / high.max(-low)).clamp(0.0, 1.0).sqrt())
    };
    let at = t * (stops.len() - 1) as f64;
    let i = (at.floor() as usize).min(stops.len() - 2);
    let f = at - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (stops[i], stops[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Black or white, whichever reads on `fill`.
fn text_on(fill: RGBColor) -> RGBColor {
    let luma = 0.299 * fill.0 as f64 + 0.587 * fill.1 as f64 + 0.114 * fill.2 as f64;
    if luma < 120.0 { WHITE } else { BLACK }
}

/// Draws `cell` into the rectangle from `(x0, y0)` to `(x1, y1)` (inclusive).
fn draw_cell<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    cell: Cell,
    range: (f64, f64),
    max_loss: Option<f64>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let center = ((x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2);
    let mark = |text: &str, color: RGBColor| {
        Text::new(
            text.to_owned(),
            center,
            colored(anchored(12, HPos::Center, VPos::Center), color),
        )
    };
    match cell {
        Cell::Done(loss) => {
            let fill = loss_color(loss, range);
            area.draw(&Rectangle::new([(x0, y0), (x1, y1)], fill.filled()))?;
            if max_loss.is_some_and(|m| loss > m) {
                area.draw(&Rectangle::new(
                    [(x0 + 1, y0 + 1), (x1 - 1, y1 - 1)],
                    BLACK.stroke_width(2),
                ))?;
            }
            let text = Text::new(
                loss_label(loss),
                center,
                colored(anchored(11, HPos::Center, VPos::Center), text_on(fill)),
            );
            area.draw(&text)?;
        }
        Cell::Skipped => {
            area.draw(&Rectangle::new([(x0, y0), (x1, y1)], SKIPPED_COLOR.filled()))?;
            hatch(area, (x0, y0), (x1, y1), SKIPPED_HATCH)?;
            area.draw(&mark("s", RGBColor(60, 60, 60)))?;
        }
        Cell::Failed => {
            area.draw(&Rectangle::new([(x0, y0), (x1, y1)], FAILED_COLOR.filled()))?;
            area.draw(&mark("x", WHITE))?;
        }
        Cell::Pending => {
            area.draw(&Rectangle::new([(x0, y0), (x1, y1)], PENDING_COLOR.filled()))?;
            area.draw(&Rectangle::new(
                [(x0, y0), (x1, y1)],
                RGBColor(215, 215, 215).stroke_width(1),
            ))?;
        }
    }
    Ok(())
}

/// Diagonal lines (`/`, 7 px apart) across the rectangle from `(x0, y0)` to `(x1, y1)`.
fn hatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    color: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // Each line is x + y = c, clipped to the rectangle.
    for c in (x0 + y0..=x1 + y1).step_by(7) {
        let (lo, hi) = ((c - y1).max(x0), (c - y0).min(x1));
        if lo <= hi {
            area.draw(&PathElement::new(
                vec![(lo, c - lo), (hi, c - hi)],
                color.stroke_width(1),
            ))?;
        }
    }
    Ok(())
}

/// Draws the heatmap on `root`, of [`heatmap_size`].
pub fn heatmap<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, grid: &Grid) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (x0, y0) = heatmap_origin(grid);
    let (x0, y0) = (x0 as i32, y0 as i32);
    let (cw, ch) = (CELL_SIZE.0 as i32, CELL_SIZE.1 as i32);
    let x_end = x0 + cw * grid.ratios.len() as i32;
    let y_end = y0 + ch * grid.groups.len() as i32;
    let range = loss_range(grid);

    let skipped = grid.groups.iter().filter(|g| g.skipped).count();
    let title = format!(
        "Loss on {} per group and ratio ({} groups{})",
        grid.metric,
        grid.groups.len(),
        if skipped > 0 {
            format!(", {skipped} skipped")
        } else {
            String::new()
        }
    );
    root.draw(&Text::new(title, (12, 12), anchored(19, HPos::Left, VPos::Top)))?;
    root.draw(&Text::new(
        "pruning ratio",
        ((x0 + x_end) / 2, y0 - 30),
        anchored(14, HPos::Center, VPos::Bottom),
    ))?;
    root.draw(&Text::new(
        "group (model order)",
        (x0 - 10, y0 - 10),
        anchored(14, HPos::Right, VPos::Bottom),
    ))?;
    for (col, &ratio) in grid.ratios.iter().enumerate() {
        let x = x0 + cw * col as i32 + cw / 2;
        root.draw(&Text::new(
            ratio_label(ratio),
            (x, y0 - 8),
            anchored(13, HPos::Center, VPos::Bottom),
        ))?;
    }
    for (row, group) in grid.groups.iter().enumerate() {
        let y = y0 + ch * row as i32;
        let color = if group.skipped { RGBColor(130, 130, 130) } else { BLACK };
        root.draw(&Text::new(
            short_key(&group.key, KEY_CHARS),
            (x0 - 8, y + ch / 2),
            colored(anchored(12, HPos::Right, VPos::Center), color),
        ))?;
        for col in 0..grid.ratios.len() {
            let cell = if group.skipped {
                Cell::Skipped
            } else {
                group.cells.get(col).copied().unwrap_or(Cell::Pending)
            };
            let x = x0 + cw * col as i32;
            draw_cell(
                &root,
                (x + 1, y + 1),
                (x + cw - 1, y + ch - 1),
                cell,
                range,
                grid.max_loss,
            )?;
        }
    }
    root.draw(&Rectangle::new(
        [(x0, y0), (x_end, y_end)],
        RGBColor(160, 160, 160).stroke_width(1),
    ))?;

    // The colour bar, linear in loss, and what each mark means.
    let bar_x = x_end + 34;
    let bar_top = y0 + 22;
    let bar_height = 200;
    root.draw(&Text::new("loss", (bar_x, y0), anchored(14, HPos::Left, VPos::Top)))?;
    let (low, high) = range;
    let value_at = |i: i32| high - (high - low) * i as f64 / (bar_height - 1) as f64;
    for i in 0..bar_height {
        let y = bar_top + i;
        root.draw(&PathElement::new(
            vec![(bar_x, y), (bar_x + 22, y)],
            loss_color(value_at(i), range),
        ))?;
    }
    root.draw(&Rectangle::new(
        [(bar_x, bar_top), (bar_x + 22, bar_top + bar_height - 1)],
        RGBColor(120, 120, 120).stroke_width(1),
    ))?;
    let ticks = 5;
    for t in 0..ticks {
        let i = (bar_height - 1) * t / (ticks - 1);
        let y = bar_top + i;
        root.draw(&PathElement::new(vec![(bar_x + 22, y), (bar_x + 27, y)], BLACK))?;
        root.draw(&Text::new(
            loss_label(value_at(i)),
            (bar_x + 31, y),
            anchored(12, HPos::Left, VPos::Center),
        ))?;
    }
    let mut y = bar_top + bar_height + 24;
    let marks = [
        (Cell::Skipped, "skipped (s)"),
        (Cell::Failed, "failed or cancelled (x)"),
        (Cell::Pending, "pending (empty)"),
    ];
    for (cell, label) in marks {
        draw_cell(&root, (bar_x, y), (bar_x + cw - 2, y + ch - 2), cell, range, None)?;
        root.draw(&Text::new(
            label,
            (bar_x + cw + 6, y + ch / 2 - 1),
            anchored(12, HPos::Left, VPos::Center),
        ))?;
        y += ch + 8;
    }
    if let Some(max_loss) = grid.max_loss {
        // Outlined like a cell over the threshold, on the darkest colour, without a number.
        let (x1, y1) = (bar_x + cw - 2, y + ch - 2);
        root.draw(&Rectangle::new(
            [(bar_x, y), (x1, y1)],
            loss_color(range.1, range).filled(),
        ))?;
        root.draw(&Rectangle::new(
            [(bar_x + 1, y + 1), (x1 - 1, y1 - 1)],
            BLACK.stroke_width(2),
        ))?;
        let label = format!("loss > max_loss {}", loss_label_exact(max_loss));
        root.draw(&Text::new(
            label,
            (bar_x + cw + 6, y + ch / 2 - 1),
            anchored(12, HPos::Left, VPos::Center),
        ))?;
        y += ch + 8;
    }
    root.draw(&Text::new(
        "numbers: the loss of each done cell",
        (bar_x, y + 4),
        colored(anchored(11, HPos::Left, VPos::Top), RGBColor(90, 90, 90)),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_colours_never_meet_the_marks() {
        let range = (-0.1, 0.5);
        for i in 0..=100 {
            let loss = -0.1 + 0.6 * i as f64 / 100.0;
            let color = loss_color(loss, range);
            assert_ne!(color, SKIPPED_COLOR, "{loss}");
            assert_ne!(color, FAILED_COLOR, "{loss}");
            assert_ne!(color, PENDING_COLOR, "{loss}");
        }
        assert_eq!(loss_color(0.0, range), ZERO_LOSS_COLOR);
        assert_eq!(loss_color(0.5, range), RGBColor(128, 0, 38));
    }
}
