//! The font every plot's text is drawn in: found on the first draw, registered with `plotters` under one
//! family name, and the text styles that use it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

/// Text of `size` pixels in the plots' font.
pub(super) fn font_of(size: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

pub(super) fn anchored(size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    font_of(size).pos(Pos::new(h, v))
}

/// `style` in `color`.
pub(super) fn colored(style: TextStyle<'static>, color: RGBColor) -> TextStyle<'static> {
    TextStyle {
        color: color.to_backend_color(),
        ..style
    }
}
