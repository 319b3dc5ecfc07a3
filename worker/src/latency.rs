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

impl Latency {
    fn of(mut times: Vec<f64>) -> Latency {
        times.sort_by(f64::total_cmp);
        Latency {
            median_ms: median(&times),
            min_ms: times[0],
            max_ms: times[times.len() - 1],
        }
    }
}

/// The median of sorted, non-empty `values`.
fn median(values: &[f64]) -> f64 {
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// One timed forward pass, until the device has finished (CUDA runs asynchronously).
fn timed_ms(executor: &Executor, input: &Tensor, device: Device) -> Result<f64> {
    let start = Instant::now();
    executor.run(std::slice::from_ref(input))?;
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// Runs `executor` on `input` (already on `device`) `warmup` times untimed, then `runs` (at least 1) times,
/// each timed until the device has finished.
///
/// # Errors
/// A failing run.
pub fn measure(executor: &Executor, input: &Tensor, device: Device, warmup: usize, runs: usize) -> Result<Latency> {
    for _ in 0..warmup {
        timed_ms(executor, input, device)?;
    }
    let times = (0..runs.max(1))
        .map(|_| timed_ms(executor, input, device))
        .collect::<Result<Vec<_>>>()?;
    Ok(Latency::of(times))
}

/// Two models timed in alternation on the same input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    pub before: Latency,
    pub after: Latency,
    /// The median over the runs of after / before, each pair timed back to back: a load or clock change that
    /// lasts longer than a pair slows both sides alike and cancels, where two separate medians would not.
    pub ratio: f64,
    /// The upper quartile of those ratios: a pessimistic estimate, which a reduction target is judged by so
    /// that a later measurement of the same models (the export's) reaches it too.
    pub ratio_high: f64,
}

/// Times `before` and `after` on `input` in alternation: `warmup` untimed pairs, then `runs` (at least 1) timed
/// pairs.
///
/// # Errors
/// A failing run.
pub fn compare(
    before: &Executor,
    after: &Executor,
    input: &Tensor,
    device: Device,
    warmup: usize,
    runs: usize,
) -> Result<Comparison> {
    for _ in 0..warmup {
        timed_ms(before, input, device)?;
        timed_ms(after, input, device)?;
    }
    let mut pairs = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        pairs.push((timed_ms(before, input, device)?, timed_ms(after, input, device)?));
    }
    let mut ratios: Vec<f64> = pairs.iter().map(|(b, a)| a / b).collect();
    ratios.sort_by(f64::total_cmp);
    Ok(Comparison {
        before: Latency::of(pairs.iter().map(|p| p.0).collect()),
        after: Latency::of(pairs.iter().map(|p| p.1).collect()),
        ratio: median(&ratios),
        ratio_high: ratios[(ratios.len() * 3 / 4).min(ratios.len() - 1)],
    })
}
