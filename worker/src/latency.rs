//! Timing a model: `worker bench` and the export job's latency before and after pruning measure alike.

use std::time::Instant;

use anyhow::Result;
use tch::{Device, Tensor};

use crate::exec::Executor;

/// Milliseconds per forward pass over timed runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

/// Runs `executor` on `input` (already on `device`) `warmup` times untimed, then `runs` (at least 1) times,
/// each timed until the device has finished (CUDA runs asynchronously).
///
/// # Errors
/// A failing run.
pub fn measure(executor: &Executor, input: &Tensor, device: Device, warmup: usize, runs: usize) -> Result<Latency> {
    let sync = || {
        if let Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    for _ in 0..warmup {
        executor.run(std::slice::from_ref(input))?;
    }
    sync();
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        executor.run(std::slice::from_ref(input))?;
        sync();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let middle = times.len() / 2;
    let median_ms = if times.len() % 2 == 1 {
        times[middle]
    } else {
        (times[middle - 1] + times[middle]) / 2.0
    };
    Ok(Latency {
        median_ms,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
    })
}
