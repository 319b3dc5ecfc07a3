//! Conv and ConvTranspose (any group count), with symmetric or asymmetric pads.

use anyhow::{Result, bail};
use sensgrid_model::ops::window::conv_group;
use tch::Tensor;

use super::window::{Resolved, Window};
use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};

pub fn register(table: &mut OpTable) {
    table.add("Conv", conv);
    table.add("ConvTranspose", conv_transpose);
}

fn check_kernel(window: &Window, weight: &Tensor) -> Result<Vec<i64>> {
    let kernel = weight.size()[2..].to_vec();
    if let Some(declared) = &window.kernel_shape
        && !declared.iter().map(|&d| d as i64).eq(kernel.iter().copied())
    {
        bail!("kernel_shape {declared:?} does not match the weight's {kernel:?}");
    }
    Ok(kernel)
}

/// X, W and the optional B.
fn operands<'a>(inputs: &[Option<&'a Tensor>]) -> Result<(&'a Tensor, &'a Tensor, Option<&'a Tensor>)> {
    Ok((
        required(inputs, 0)?,
        required(inputs, 1)?,
        inputs.get(2).copied().flatten(),
    ))
}

/// A Conv node's attributes, applied to its operands by [`ConvSpec::apply`]; the fused Conv steps
/// (`fused.rs`) use it too.
pub struct ConvSpec {
    window: Window,
    groups: i64,
}

impl ConvSpec {
    /// Reads the Conv node's attributes.
    pub fn read(ctx: &BuildCtx) -> Result<Self> {
        Ok(Self {
            window: Window::read(ctx.node)?,
            groups: conv_group(ctx.node)?,
        })
    }

    /// The convolution of `x` by `weight`, plus `bias` when given.
    pub fn apply(&self, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let kernel = check_kernel(&self.window, weight)?;
        let w = Resolved::new(&self.window, x, &kernel)?;
        let zeros = vec![0; kernel.len()];
        let groups = self.groups;
        Ok(if w.symmetric() {
            x.f_convolution(weight, bias, &w.strides, &w.begin, &w.dilations, false, &zeros, groups)?
        } else {
            let padded = x.f_constant_pad_nd(w.torch_pad())?;
            padded.f_convolution(weight, bias, &w.strides, &zeros, &w.dilations, false, &zeros, groups)?
        })
    }
}

fn conv(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let spec = ConvSpec::read(ctx)?;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let (x, weight, bias) = operands(inputs)?;
        Ok(vec![spec.apply(x, weight, bias)?])
    }))
}

fn conv_transpose(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let window = Window::read(ctx.node)?;
    let groups = conv_group(ctx.node)?;
    let output_padding = ctx.node.attr_ints("output_padding")?.map(<[i64]>::to_vec);
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let (x, weight, bias) = operands(inputs)?;
        let kernel = check_kernel(&window, weight)?;
        let w = Resolved::new(&window, x, &kernel)?;
        let zeros = vec![0; kernel.len()];
        let output_padding = output_padding.clone().unwrap_or_else(|| zeros.clone());
        if w.symmetric() {
            let out = x.f_convolution(
                weight,
                bias,
                &w.strides,
                &w.begin,
                &w.dilations,
                true,
                &output_padding,
                groups,
            )?;
            return Ok(vec![out]);
        }
        // libtorch pads both sides alike: compute unpadded, then crop each side as ONNX's pads say.
        let mut out = x.f_convolution(
            weight,
            bias,
            &w.strides,
            &zeros,
            &w.dilations,
            true,
            &output_padding,
            groups,
        )?;
        for (axis, (&b, &e)) in w.begin.iter().zip(&w.end).enumerate() {
            let dim = axis as i64 + 2;
            let len = out.size()[dim as usize] - b - e;
            out = out.f_narrow(dim, b, len)?;
        }
        Ok(vec![out])
    }))
}
