//! The sliding-window attributes shared by Conv, ConvTranspose, MaxPool and AveragePool: kernel_shape,
//! strides, dilations, pads and auto_pad.

use anyhow::{Result, bail};
use tch::Tensor;

use crate::exec::BuildCtx;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

/// The parsed window attributes of one node.
#[derive(Debug, Clone)]
pub struct Window {
    pub kernel: Option<Vec<i64>>,
    strides: Option<Vec<i64>>,
    dilations: Option<Vec<i64>>,
    pads: Option<Vec<i64>>,
    auto_pad: AutoPad,
}

/// The window of one call, every list one entry per spatial axis.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    pub begin: Vec<i64>,
    pub end: Vec<i64>,
}

impl Resolved {
    /// Whether each axis is padded the same on both sides (libtorch's kernels take only that).
    pub fn symmetric(&self) -> bool {
        self.begin == self.end
    }

    /// Whether libtorch's pooling kernels take these pads: symmetric, and at most half the kernel.
    pub fn fits_torch_pool(&self, kernel: &[i64]) -> bool {
        self.symmetric() && self.begin.iter().zip(kernel).all(|(&p, &k)| 2 * p <= k)
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

impl Window {
    /// Reads the attributes; `same_allowed` is false for ops where SAME_* padding is refused.
    pub fn parse(ctx: &BuildCtx, same_allowed: bool) -> Result<Self> {
        let node = ctx.node;
        let auto_pad = match node.attr_string("auto_pad")?.unwrap_or("NOTSET") {
            "NOTSET" => AutoPad::NotSet,
            "VALID" => AutoPad::Valid,
            "SAME_UPPER" if same_allowed => AutoPad::SameUpper,
            "SAME_LOWER" if same_allowed => AutoPad::SameLower,
            other => bail!(node.attr_error("auto_pad", format!("{other} is not supported"))),
        };
        let list = |name: &str| node.attr_ints(name).map(|v| v.map(<[i64]>::to_vec));
        let window = Self {
            kernel: list("kernel_shape")?,
            strides: list("strides")?,
            dilations: list("dilations")?,
            pads: list("pads")?,
            auto_pad,
        };
        if let (Some(kernel), Some(pads)) = (&window.kernel, &window.pads)
            && pads.len() != 2 * kernel.len()
        {
            bail!(node.attr_error("pads", format!("expected {} values, got {pads:?}", 2 * kernel.len())));
        }
        Ok(window)
    }

    /// Resolves strides, dilations and pads for an input whose spatial sizes are `spatial`.
    pub fn resolve(&self, spatial: &[i64], kernel: &[i64]) -> Result<Resolved> {
        let n = spatial.len();
        let ones = vec![1; n];
        let strides = self.strides.clone().unwrap_or_else(|| ones.clone());
        let dilations = self.dilations.clone().unwrap_or(ones);
        if strides.len() != n || dilations.len() != n || kernel.len() != n {
            bail!("window attributes do not match the input's {n} spatial axes");
        }
        let (begin, end) = match self.auto_pad {
            AutoPad::NotSet => match &self.pads {
                Some(pads) => (pads[..n].to_vec(), pads[n..].to_vec()),
                None => (vec![0; n], vec![0; n]),
            },
            AutoPad::Valid => (vec![0; n], vec![0; n]),
            AutoPad::SameUpper | AutoPad::SameLower => {
                let mut begin = Vec::with_capacity(n);
                let mut end = Vec::with_capacity(n);
                for i in 0..n {
                    let out = (spatial[i] + strides[i] - 1) / strides[i];
                    let total = ((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i]).max(0);
                    let small = total / 2;
                    let (b, e) = if self.auto_pad == AutoPad::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    begin.push(b);
                    end.push(e);
                }
                (begin, end)
            }
        };
        Ok(Resolved {
            strides,
            dilations,
            begin,
            end,
        })
    }
}

/// The spatial sizes of an N, C, spatial... tensor.
pub fn spatial(x: &Tensor) -> Vec<i64> {
    x.size()[2..].to_vec()
}
