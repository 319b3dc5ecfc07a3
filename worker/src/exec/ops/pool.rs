//! Pooling: GlobalAveragePool, MaxPool and AveragePool over 1 to 3 spatial axes.

use anyhow::{Result, bail};
use tch::Tensor;

use super::window::{self, Resolved, Window};
use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};

pub fn register(table: &mut OpTable) {
    table.add("GlobalAveragePool", global_average_pool);
    table.add("MaxPool", max_pool);
    table.add("AveragePool", average_pool);
}

fn global_average_pool(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    ctx.allow_attrs(&[])?;
    Ok(Box::new(|inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let axes: Vec<i64> = (2..x.dim() as i64).collect();
        Ok(vec![x.f_mean_dim(axes.as_slice(), true, None)?])
    }))
}

fn kernel_of(ctx: &BuildCtx, window: &Window) -> Result<Vec<i64>> {
    match &window.kernel_shape {
        Some(kernel) if !kernel.is_empty() && kernel.len() <= 3 => Ok(kernel.iter().map(|&k| k as i64).collect()),
        Some(kernel) => bail!(
            ctx.node
                .attr_error("kernel_shape", format!("{kernel:?}: 1 to 3 axes are supported"))
        ),
        None => bail!(ctx.node.attr_error("kernel_shape", "is required")),
    }
}

fn max_pool(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    ctx.allow_attrs(&[
        "auto_pad",
        "ceil_mode",
        "dilations",
        "kernel_shape",
        "pads",
        "storage_order",
        "strides",
    ])?;
    if ctx.node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
        bail!(ctx.node.error("the Indices output is not supported"));
    }
    let window = window::read(ctx, true)?;
    let kernel = kernel_of(ctx, &window)?;
    let ceil_mode = ctx.node.attr_int("ceil_mode")?.unwrap_or(0) != 0;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let w = Resolved::new(&window, x, &kernel)?;
        // Pads libtorch cannot take are added explicitly, as -inf.
        let (x, padding) = if w.fits_torch_pool() {
            (x.shallow_clone(), w.begin.clone())
        } else {
            (
                x.f_pad(w.torch_pad(), "constant", f64::NEG_INFINITY)?,
                vec![0; kernel.len()],
            )
        };
        let out = match kernel.len() {
            1 => x.f_max_pool1d(&kernel, &w.strides, &padding, &w.dilations, ceil_mode)?,
            2 => x.f_max_pool2d(&kernel, &w.strides, &padding, &w.dilations, ceil_mode)?,
            _ => x.f_max_pool3d(&kernel, &w.strides, &padding, &w.dilations, ceil_mode)?,
        };
        Ok(vec![out])
    }))
}

fn average_pool(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    ctx.allow_attrs(&[
        "auto_pad",
        "ceil_mode",
        "count_include_pad",
        "kernel_shape",
        "pads",
        "strides",
    ])?;
    let window = window::read(ctx, true)?;
    let kernel = kernel_of(ctx, &window)?;
    let ceil_mode = ctx.node.attr_int("ceil_mode")?.unwrap_or(0) != 0;
    let count_include_pad = ctx.node.attr_int("count_include_pad")?.unwrap_or(0) != 0;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let w = Resolved::new(&window, x, &kernel)?;
        let (x, padding) = if w.fits_torch_pool() {
            (x.shallow_clone(), w.begin.clone())
        } else if count_include_pad {
            // Padded zeros count toward the divisor, so explicit zero padding is the same computation.
            (x.f_constant_pad_nd(w.torch_pad())?, vec![0; kernel.len()])
        } else {
            bail!(
                "asymmetric pads {:?}/{:?} with count_include_pad=0 are not supported",
                w.begin,
                w.end
            );
        };
        let out = match kernel.len() {
            1 => x.f_avg_pool1d(&kernel, &w.strides, &padding, ceil_mode, count_include_pad)?,
            2 => x.f_avg_pool2d(&kernel, &w.strides, &padding, ceil_mode, count_include_pad, None)?,
            _ => x.f_avg_pool3d(&kernel, &w.strides, &padding, ceil_mode, count_include_pad, None)?,
        };
        Ok(vec![out])
    }))
}
