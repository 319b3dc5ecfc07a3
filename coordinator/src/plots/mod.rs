//! The plots of a run's results, drawn with `plotters` next to the tables [`crate::results`] writes:
//!
//! - `sensitivity.png` and `sensitivity.svg`: loss against ratio, one line per analysed group; the most
//!   sensitive groups ([`TOP_GROUPS`], by their largest loss) in colour with a legend, the others thin and light;
//!   the `Prune.max_loss` threshold as a dashed line;
//! - `heatmap.png`: groups (rows, model order) by ratios (columns) coloured by loss, with a colour bar. Cells that
//!   have no loss are never drawn as a loss: skipped ones grey and hatched with an `s`, failed ones dark with an
//!   `x`, pending ones empty ([`SKIPPED_COLOR`], [`FAILED_COLOR`], [`PENDING_COLOR`]);
//! - `pruned.png`, when the run has a plan: each group's channels before and after it;
//! - `tradeoff.png` and `tradeoff.svg`, when the run has done probes: each probe's measured loss against its
//!   reduction, the chosen one ringed ([`tradeoff`], drawn from its own data by [`tradeoff::write`]);
//! - `recover.png`, when the run has a recovery: the eval metric and the distillation loss by step, the
//!   baseline's and the pruned model's metric as dashed lines ([`recover`]).
//!
//! [`Grid`] is the plain data they are drawn from, one module per plot (`sensitivity`, `heatmap`, `pruned`,
//! [`tradeoff`]) with what they share in `labels`. Text needs a TrueType font, found at run time by [`font()`]
//! (`SENSGRID_FONT`, else `fonts/DejaVuSans.ttf` of the repository, else Debian's DejaVu Sans; see `font.rs`):
//! without one, [`draw`] draws nothing and says which paths it tried. Plots are drawn in memory ([`draw`]) and
//! then written through [`sensgrid_client::atomic_file`], so a reader sees the old file or the new one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use sensgrid_client::atomic_file;

mod font;
mod heatmap;
mod labels;
mod pruned;
pub mod recover;
mod sensitivity;
pub mod tradeoff;

pub use font::{FONT_ENV, font, font_candidates};
pub use heatmap::{
    CELL_SIZE, FAILED_COLOR, PENDING_COLOR, SKIPPED_COLOR, SKIPPED_HATCH, ZERO_LOSS_COLOR, heatmap,
    heatmap_cell_center, heatmap_cell_rect, heatmap_size, loss_color,
};
pub use pruned::{pruned, pruned_size};
pub use sensitivity::{SENSITIVITY_SIZE, TOP_GROUPS, most_sensitive, sensitivity};

/// What the plots are drawn from: a run's grid of losses, and its plan when it has one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grid {
    /// The metric the loss is computed on (a title says it).
    pub metric: String,
    /// `Prune.max_loss`, drawn as a threshold when the run plans by loss.
    pub max_loss: Option<f64>,
    /// The ratios tried, ascending: the heatmap's columns.
    pub ratios: Vec<f64>,
    /// The groups in model order: the heatmap's rows.
    pub groups: Vec<Group>,
    /// The plan's groups in model order, when there is a plan.
    pub plan: Option<Vec<PlannedGroup>>,
}

/// One channel group and its cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub key: String,
    pub channels: usize,
    /// Left out of the analysis (`Sensitivity.skip`): every cell is drawn skipped.
    pub skipped: bool,
    /// One cell per ratio of [`Grid::ratios`], in that order.
    pub cells: Vec<Cell>,
}

/// The state of one (group, ratio) cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    /// Done, with its loss.
    Done(f64),
    /// Not computed on purpose.
    Skipped,
    /// Failed or cancelled: it has no loss.
    Failed,
    /// Not done yet (queued or running), or done without a loss to show.
    Pending,
}

/// One group of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedGroup {
    pub key: String,
    /// The ratio the plan prunes it by (0.0 where it stays whole).
    pub ratio: f64,
    pub channels_before: usize,
    pub channels_after: usize,
}

/// that a plot that cannot be drawn leaves the folder as it was, and a plot that cannot be written is an I/O
/// error like any other file's.
#[derive(Clone, Debug)]
pub struct Drawn {
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

/// Draws every plot of `grid` in memory: `sensitivity.png` and `.svg`, `heatmap.png`, and `pruned.png` when
/// the grid has a plan.
///
/// # Errors
///
/// No font (see [`font()`]), or a plot that cannot be drawn, naming it.
pub fn draw(grid: &Grid) -> Result<Vec<Drawn>> {
    font()?;
    let mut drawn = vec![
        Drawn::png("sensitivity.png", SENSITIVITY_SIZE, |root| sensitivity(root, grid))?,
        Drawn::svg("sensitivity.svg", SENSITIVITY_SIZE, |root| sensitivity(root, grid))?,
        Drawn::png("heatmap.png", heatmap_size(grid), |root| heatmap(root, grid))?,
    ];
    if let Some(plan) = &grid.plan {
        drawn.push(Drawn::png("pruned.png", pruned_size(plan), |root| {
            pruned(root, grid, plan)
        })?);
    }
    Ok(drawn)
}

/// Draws every plot of `grid` (see [`draw`]) and writes each into `out` atomically (see
/// [`sensgrid_client::atomic_file`]). Answers the files written.
///
/// # Errors
///
/// As [`draw`], or a file that cannot be written, naming it.
pub fn write(grid: &Grid, out: &Path) -> Result<Vec<PathBuf>> {
    write_drawn(draw(grid)?, out)
}

/// Writes `drawn` into `out`, each file atomically; answers the files written.
///
/// # Errors
///
/// A file that cannot be written, naming it.
pub fn write_drawn(drawn: Vec<Drawn>, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for plot in drawn {
        let path = out.join(plot.name);
        atomic_file::write(&path, &plot.bytes)?;
        files.push(path);
    }
    Ok(files)
}

impl Drawn {
    /// `name`: a PNG of `size` pixels, as `draw` draws it on a bitmap in memory.
    ///
    /// # Errors
    ///
    /// `draw`'s error, or one of encoding the PNG, naming the file.
    pub fn png(
        name: &'static str,
        size: (u32, u32),
        draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
    ) -> Result<Drawn> {
        let encoded = || -> Result<Vec<u8>> {
            let (width, height) = size;
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            draw(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area())?;
            let mut bytes = Vec::new();
            let mut encoder = png::Encoder::new(&mut bytes, width, height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(&rgb)?;
            writer.finish()?;
            Ok(bytes)
        };
        let bytes = encoded().with_context(|| format!("drawing {name}"))?;
        Ok(Drawn { name, bytes })
    }

    /// `name`: an SVG of `size`, as `draw` draws it.
    ///
    /// # Errors
    ///
    /// `draw`'s error, naming the file.
    pub fn svg(
        name: &'static str,
        size: (u32, u32),
        draw: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
    ) -> Result<Drawn> {
        let mut text = String::new();
        draw(SVGBackend::with_string(&mut text, size).into_drawing_area())
            .with_context(|| format!("drawing {name}"))?;
        Ok(Drawn {
            name,
            bytes: text.into_bytes(),
        })
    }
}

/// The grey note in the middle of a `size` plot that has nothing to draw yet ("no finished cell yet").
fn draw_nothing_yet<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, size: (u32, u32), note: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.draw(&Text::new(
        note,
        (size.0 as i32 / 2, size.1 as i32 / 2),
        font::colored(font::anchored(20, HPos::Center, VPos::Center), RGBColor(120, 120, 120)),
    ))?;
    Ok(())
}

/// The legend of a chart's series, as every plot with one draws it: upper left, on a light box.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(chart: &mut ChartContext<'a, DB, CT>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .margin(12)
        .label_font(font::font_of(15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(170, 170, 170))
        .draw()?;
    Ok(())
}
