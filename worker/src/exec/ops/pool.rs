//! Pooling: GlobalAveragePool, MaxPool and AveragePool over 1 to 3 spatial axes.

use anyhow::{Result, bail};
use tch::Tensor;

use super::i64s;
use super::window::{Resolved, Window};
use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};

pub fn register(table: &mut OpTable) {
    table.add("GlobalAveragePool", global_average_pool);
    table.add("MaxPool", max_pool);
    table.add("AveragePool", average_pool);
}

fn global_average_pool(_: &BuildCtx) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(|inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let axes: Vec<i64> = (2..x.dim() as i64).collect();
        Ok(vec![x.f_mean_dim(axes.as_slice(), true, None)?])
    }))
}

/// The pooling window of the node and its kernel as tch takes it.
fn pool_window(ctx: &BuildCtx) -> Result<(Window, Vec<i64>)> {
    let window = Window::read(ctx.node)?;
    let kernel = i64s(window.pool_kernel(ctx.node)?);
    Ok((window, kernel))
}

fn max_pool(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let (window, kernel) = pool_window(ctx)?;
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
    let (window, kernel) = pool_window(ctx)?;
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
