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
//!   reduction, the chosen one ringed ([`tradeoff`], drawn from its own data by [`tradeoff::write`]).
//!
//! [`Grid`] is the plain data they are drawn from. Text needs a TrueType font, found at run time by [`font`]
//! (`SENSGRID_FONT`, else `fonts/DejaVuSans.ttf` of the repository, else Debian's DejaVu Sans): without one,
//! [`draw`] draws nothing and says which paths it tried. Plots are drawn in memory ([`draw`]) and then written
//! through [`crate::atomic_file`], so a reader sees the old file or the new one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::atomic_file;

pub mod tradeoff;

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

/// How many of the most sensitive groups the sensitivity plot names in its legend.
pub const TOP_GROUPS: usize = 6;

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

/// The font family every text is drawn in (the font [`font`] registers under it).
const FAMILY: &str = "sans-serif";
/// The environment variable naming a `.ttf` file to draw text with.
pub const FONT_ENV: &str = "SENSGRID_FONT";
/// Where setup puts DejaVu Sans, relative to the repository root.
const REPO_FONT: &str = "fonts/DejaVuSans.ttf";
/// Debian's DejaVu Sans (package fonts-dejavu-core).
const SYSTEM_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The font registered for the plots, once found.
static FONT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The font the plots draw text with, found and registered on the first call: `$SENSGRID_FONT`, then
/// `fonts/DejaVuSans.ttf` in the current directory and in each ancestor of the executable's directory (a
/// binary in `target/release` finds the repository's), then Debian's DejaVu Sans. A file that does not parse
/// as a font is passed over.
///
/// # Errors
///
/// No usable font: the message names every path tried and `SENSGRID_FONT`.
pub fn font() -> Result<PathBuf> {
    let mut registered = FONT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = registered.as_ref() {
        return Ok(path.clone());
    }
    let mut tried = Vec::new();
    for path in font_candidates() {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                tried.push(format!("{} ({error})", path.display()));
                continue;
            }
        };
        // plotters keeps fonts for the life of the process: the bytes are leaked once, here.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_err() {
            tried.push(format!("{} (not a TrueType font)", path.display()));
            continue;
        }
        *registered = Some(path.clone());
        return Ok(path);
    }
    Err(anyhow!(
        "no font to draw the plots' text with; tried: {}. Run setup (scripts/setup-fonts.sh) or set {FONT_ENV} to \
         a .ttf file",
        tried.join(", ")
    ))
}

/// The paths [`font`] tries, in order.
pub fn font_candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(path) = std::env::var_os(FONT_ENV).filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(path));
    }
    if let Ok(dir) = std::env::current_dir() {
        paths.push(dir.join(REPO_FONT));
    }
    if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent) {
        paths.extend(dir.ancestors().map(|d| d.join(REPO_FONT)));
    }
    paths.push(PathBuf::from(SYSTEM_FONT));
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    paths
}

/// A plot drawn in memory: its file name and its bytes. Plots are drawn whole before any file is touched, so
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
/// No font (see [`font`]), or a plot that cannot be drawn, naming it.
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
/// [`crate::atomic_file`]). Answers the files written.
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

fn font_of(size: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

fn anchored(size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    font_of(size).pos(Pos::new(h, v))
}

/// `style` in `color`.
fn colored(style: TextStyle<'static>, color: RGBColor) -> TextStyle<'static> {
    TextStyle {
        color: color.to_backend_color(),
        ..style
    }
}

/// `ratio` as a short label: 0.1, 0.25.
fn ratio_label(ratio: f64) -> String {
    format!("{}", (ratio * 1000.0).round() / 1000.0)
}

/// A loss as a short label: 0.052, -0.004.
fn loss_label(loss: f64) -> String {
    if loss.abs() >= 10.0 {
        format!("{loss:.1}")
    } else {
        format!("{loss:.3}")
    }
}

/// A group key cut to `max` characters, keeping both ends.
fn short_key(key: &str, max: usize) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= max {
        return key.to_owned();
    }
    let tail = max / 2;
    let head = max - tail - 1;
    let mut short: String = chars[..head].iter().collect();
    short.push('…');
    short.extend(&chars[chars.len() - tail..]);
    short
}

/// The longest key drawn in full on the heatmap and the plan plot.
const KEY_CHARS: usize = 48;

/// The width of the group-key column, from the longest key (12 px DejaVu Sans: about 7 px a character).
fn key_column_width<'a>(keys: impl Iterator<Item = &'a str>) -> u32 {
    let chars = keys.map(|k| k.chars().count().min(KEY_CHARS)).max().unwrap_or(0);
    (chars as u32 * 7 + 24).clamp(90, 420)
}

// ---- sensitivity.png / .svg ----

/// The size of `sensitivity.png` and `.svg`.
pub const SENSITIVITY_SIZE: (u32, u32) = (1100, 680);

/// Distinct colours (Tableau 10) for the named groups.
const PALETTE: [RGBColor; TOP_GROUPS] = [
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
        root.draw(&Text::new(
            "no finished cell yet",
            (SENSITIVITY_SIZE.0 as i32 / 2, SENSITIVITY_SIZE.1 as i32 / 2),
            colored(anchored(20, HPos::Center, VPos::Center), RGBColor(120, 120, 120)),
        ))?;
    } else {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .margin(12)
            .label_font(font_of(15))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(170, 170, 170))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// A threshold as given (0.05, not 0.050).
fn loss_label_exact(loss: f64) -> String {
    format!("{loss}")
}

// ---- heatmap.png ----

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

// ---- pruned.png ----

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

    #[test]
    fn long_keys_keep_both_ends() {
        assert_eq!(short_key("conv2d_1.w_0", 48), "conv2d_1.w_0");
        let short = short_key("backbone.stages.3.blocks.11.mixer.qkv.weight_long_name", 20);
        assert_eq!(short.chars().count(), 20);
        assert!(
            short.starts_with("backbone") && short.ends_with("_long_name"),
            "{short}"
        );
        assert_eq!(tick_step(64), 20);
        assert_eq!(tick_step(512), 200);
        assert_eq!(tick_step(3), 1);
    }
}
