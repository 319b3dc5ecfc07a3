//! The sliding-window attributes of Conv, ConvTranspose, MaxPool and AveragePool on libtorch. The model crate
//! reads them, refuses what the executor does not run and resolves the pads (`sensgrid_model::ops::window`),
//! the same code shape inference uses, so the executor and the analysis cannot disagree on SAME padding; this
//! module turns a resolved window into the i64 lists tch takes.

use anyhow::Result;
pub use sensgrid_model::ops::window::Window;
use tch::Tensor;

/// The window of one call in tch's terms, every list one entry per spatial axis.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    pub begin: Vec<i64>,
    pub end: Vec<i64>,
    /// Whether libtorch's pooling kernels take these pads as they are.
    fits_torch_pool: bool,
}

impl Resolved {
    /// Resolves `window` for `x` (N, C, spatial...) under a kernel of `kernel`.
    pub fn new(window: &Window, x: &Tensor, kernel: &[i64]) -> Result<Self> {
        // Tensor sizes are never negative, so the casts keep every value.
        let spatial: Vec<usize> = x.size()[2..].iter().map(|&s| s as usize).collect();
        let kernel: Vec<usize> = kernel.iter().map(|&k| k as usize).collect();
        let w = window.resolve(&spatial, &kernel).map_err(anyhow::Error::msg)?;
        let ints = |v: &[usize]| v.iter().map(|&v| v as i64).collect();
        Ok(Self {
            strides: ints(&w.strides),
            dilations: ints(&w.dilations),
            begin: ints(&w.begin),
            end: ints(&w.end),
            fits_torch_pool: w.fits_torch_pool(&kernel),
        })
    }

    /// Whether each axis is padded the same on both sides (libtorch's kernels take only that).
    pub fn symmetric(&self) -> bool {
        self.begin == self.end
    }

    /// Whether libtorch's pooling kernels take these pads: symmetric, and at most half the kernel.
    pub fn fits_torch_pool(&self) -> bool {
        self.fits_torch_pool
    }

    /// libtorch's `constant_pad_nd` list for these pads: last axis first, begin then end.
    pub fn torch_pad(&self) -> Vec<i64> {
        self.begin
            .iter()
            .zip(&self.end)
            .rev()
            .flat_map(|(&b, &e)| [b, e])
            .collect()
    }
}
