//! `worker eval-bench`: times DB post-processing plus `DetMetric` on det outputs saved by
//! `scripts/oracle/eval_reference.py --dump-outputs DIR`, for `bench/eval/run`, which times the Python
//! baseline on the same files. Prints one JSON line: `ms_per_image` (the median over the timed runs) and the
//! metrics, which the bench checks against the reference.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sensgrid_eval::det::{BoxType, DbPostProcess, DetMetric, GtPolygon, ProbMap, ScoreMode, ShapeInfo};
use serde_json::{Value, json};

use super::write_stdout;

#[derive(clap::Args)]
pub struct Args {
    /// The dump directory: index.json and the NNNNN.output.npy files it names.
    #[arg(long)]
    dump: PathBuf,
    /// Timed passes over the set.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Untimed passes first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

/// One saved image: its probability map and what the metric needs.
struct Image {
    map: Vec<f32>,
    height: usize,
    width: usize,
    shape: ShapeInfo,
    gt: Vec<GtPolygon>,
}

pub fn run(args: &Args) -> Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let index_path = args.dump.join("index.json");
    let index: Value = serde_json::from_slice(
        &std::fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?,
    )
    .with_context(|| format!("{}: not valid JSON", index_path.display()))?;
    let config = &index["config"];
    if config["kind"] != "det" {
        bail!(
            "{}: eval-bench times det dumps, got kind {}",
            index_path.display(),
            config["kind"]
        );
    }
    let post = db_options(&config["db"]).with_context(|| format!("{}: config.db", index_path.display()))?;
    let images = read_images(&args.dump, &index).with_context(|| format!("reading {}", index_path.display()))?;
    anyhow::ensure!(!images.is_empty(), "{}: no images", index_path.display());

    let mut times = Vec::with_capacity(args.runs);
    let mut metric = DetMetric::new();
    for pass in 0..args.warmup + args.runs {
        let started = Instant::now();
        metric = DetMetric::new();
        for image in &images {
            let map = ProbMap::new(&image.map, image.height, image.width)?;
            let boxes = post.boxes(map, image.shape)?;
            let detections: Vec<Vec<[f64; 2]>> = boxes
                .iter()
                .map(|b| b.points.iter().map(|&[x, y]| [f64::from(x), f64::from(y)]).collect())
                .collect();
            metric.accumulate(&image.gt, &detections);
        }
        if pass >= args.warmup {
            times.push(started.elapsed().as_secs_f64() * 1e3 / images.len() as f64);
        }
    }
    times.sort_by(f64::total_cmp);
    let scores = metric.finalize();
    let report = json!({
        "ms_per_image": times[times.len() / 2],
        "images": images.len(),
        "runs": args.runs,
        "precision": scores.precision,
        "recall": scores.recall,
        "hmean": scores.hmean,
    });
    write_stdout(&format!("{report}\n"))
}

fn db_options(db: &Value) -> Result<DbPostProcess> {
    let number = |key: &str| db[key].as_f64().with_context(|| format!("{key}: expected a number"));
    Ok(DbPostProcess {
        thresh: number("thresh")?,
        box_thresh: number("box_thresh")?,
        max_candidates: number("max_candidates")? as usize,
        unclip_ratio: number("unclip_ratio")?,
        use_dilation: db["use_dilation"]
            .as_bool()
            .context("use_dilation: expected a boolean")?,
        score_mode: match db["score_mode"].as_str() {
            Some("fast") => ScoreMode::Fast,
            Some("slow") => ScoreMode::Slow,
            other => bail!("score_mode: expected fast or slow, got {other:?}"),
        },
        box_type: match db["box_type"].as_str() {
            Some("quad") => BoxType::Quad,
            Some("poly") => BoxType::Poly,
            other => bail!("box_type: expected quad or poly, got {other:?}"),
        },
    })
}

/// Every image of every batch, with its slice of the batch's `[N, 1, H, W]` output.
fn read_images(dump: &Path, index: &Value) -> Result<Vec<Image>> {
    let mut images = Vec::new();
    for batch in index["batches"].as_array().context("batches: expected a list")? {
        let file = batch["output"].as_str().context("batch without output")?;
        let path = dump.join(file);
        let tensor =
            tch::Tensor::read_npy(&path).with_context(|| format!("{}: not a readable .npy file", path.display()))?;
        let dims: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
        let &[n, 1, height, width] = dims.as_slice() else {
            bail!("{}: expected [N, 1, H, W], got {dims:?}", path.display());
        };
        let values = Vec::<f32>::try_from(&tensor.to_kind(tch::Kind::Float).flatten(0, -1))?;
        let samples = batch["samples"].as_array().context("batch without samples")?;
        anyhow::ensure!(
            samples.len() == n,
            "{}: {n} maps for {} samples",
            path.display(),
            samples.len()
        );
        for (i, sample) in samples.iter().enumerate() {
            let shape: Vec<f64> = serde_json::from_value(sample["shape"].clone()).context("sample shape")?;
            let &[src_h, src_w, ratio_h, ratio_w] = shape.as_slice() else {
                bail!("sample shape: expected 4 numbers, got {shape:?}");
            };
            let gt = sample["gt"]
                .as_array()
                .context("sample without gt")?
                .iter()
                .map(|g| {
                    Ok(GtPolygon {
                        points: serde_json::from_value(g["points"].clone()).context("gt points")?,
                        ignore: g["ignore"].as_bool().context("gt ignore")?,
                    })
                })
                .collect::<Result<_>>()?;
            images.push(Image {
                map: values[i * height * width..(i + 1) * height * width].to_vec(),
                height,
                width,
                shape: ShapeInfo::from([src_h, src_w, ratio_h, ratio_w]),
                gt,
            });
        }
    }
    Ok(images)
}
