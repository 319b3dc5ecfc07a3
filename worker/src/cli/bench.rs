//! `worker bench`: the median time of the whole forward pass, for bench/engine.

use std::time::Instant;

use anyhow::{Result, ensure};
use tch::Device;

use super::ModelRun;
use crate::exec::parse_device;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: ModelRun,
    /// Timed runs.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// libtorch's intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: &Args) -> Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    tch::set_num_threads(args.threads);
    let device = parse_device(&args.device)?;
    let (_, executor, input) = args.run.load(device)?;
    let input = input.to_device(device);
    let sync = || {
        if let Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    for _ in 0..args.warmup {
        executor.run(std::slice::from_ref(&input))?;
    }
    sync();
    let mut times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let start = Instant::now();
        executor.run(std::slice::from_ref(&input))?;
        sync();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    let report = serde_json::json!({
        "model": args.run.model.display().to_string(),
        "device": format!("{device:?}").to_lowercase(),
        "threads": args.threads,
        "runs": args.runs,
        "median_ms": median,
        "min_ms": times[0],
        "max_ms": times[times.len() - 1],
    });
    println!("{report}");
    Ok(())
}
