//! `worker bench`: the median time of the whole forward pass, for bench/engine.

use anyhow::{Result, ensure};

use super::{ModelRun, write_stdout};
use crate::exec::parse_device;
use crate::latency;

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
    if device.is_cuda() {
        // As a worker's session runs it: cuDNN picks its fastest convolution for the one input shape.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let (_, executor, input) = args.run.load(device)?;
    let input = input.to_device(device);
    let latency = latency::measure(&executor, &input, device, args.warmup, args.runs)?;
    let report = serde_json::json!({
        "model": args.run.model.display().to_string(),
        "device": format!("{device:?}").to_lowercase(),
        "precision": args.run.precision.as_str(),
        "threads": args.threads,
        "runs": args.runs,
        "median_ms": latency.median_ms,
        "min_ms": latency.min_ms,
        "max_ms": latency.max_ms,
    });
    write_stdout(&format!("{report}\n"))
}
