//! `worker synth det|rec|cls`: a synthetic dataset in PaddleOCR's layout (`label.txt` and `images/`), rendered
//! offline and deterministically by `sensgrid_eval::synth`; this file only maps flags to its options.

use std::path::PathBuf;

use anyhow::Result;
use sensgrid_eval::synth::{self, ImageFormat, Kind, SynthOptions};

use super::write_stdout;

#[derive(clap::Args)]
pub struct Args {
    /// det (pages with boxed lines), rec (line crops and their text) or cls (line crops, half turned 180°).
    kind: Kind,
    /// The dataset directory: label.txt and images/ go there.
    #[arg(long)]
    out: PathBuf,
    /// How many images.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// The same seed, with the same fonts, gives the same bytes on any machine.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write JPEG (quality 90, 4:2:0) instead of PNG.
    #[arg(long)]
    jpeg: bool,
    /// The fonts to draw with: every .ttf, .otf and .ttc there. Default: fonts/ at the repository root, which
    /// `make setup` fills.
    #[arg(long, env = "SENSGRID_FONTS")]
    fonts: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let options = SynthOptions {
        out: args.out.clone(),
        count: args.count,
        seed: args.seed,
        format: if args.jpeg { ImageFormat::Jpeg } else { ImageFormat::Png },
        fonts: args.fonts.clone().unwrap_or_else(synth::repo_fonts_dir),
    };
    let summary = synth::generate(args.kind, &options)?;
    let detail = match args.kind {
        Kind::Det => format!(", {} boxes ({} ###)", summary.boxes, summary.dont_care),
        Kind::Cls => format!(", {} turned 180°", summary.rotated),
        Kind::Rec => String::new(),
    };
    write_stdout(&format!(
        "synth {}: {} images{detail}, labels in {}\n",
        args.kind,
        summary.images,
        summary.label_file.display()
    ))
}
