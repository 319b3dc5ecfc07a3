//! Reductions over axes: ReduceMean and Softmax.

use anyhow::Result;
use tch::Tensor;

use super::{ints, shape_err};
use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};
use sensgrid_model::ops::shape::{flatten, normalize_axis};

pub fn register(table: &mut OpTable) {
    table.add("ReduceMean", reduce_mean);
    table.add("Softmax", softmax);
}

fn reduce_mean(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    // From opset 18 the axes are an optional input (and the attribute was refused by `check_supported`).
    let attr_axes = ctx.node.attr_ints("axes")?.map(<[i64]>::to_vec);
    let keepdims = ctx.node.attr_int("keepdims")?.unwrap_or(1) != 0;
    let noop_with_empty_axes = ctx.node.attr_int("noop_with_empty_axes")?.unwrap_or(0) != 0;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let axes = match inputs.get(1).copied().flatten() {
            Some(t) => Some(ints(t)?),
            None => attr_axes.clone(),
        };
        let axes: Vec<i64> = match axes {
            Some(axes) if !axes.is_empty() => axes,
            _ if noop_with_empty_axes => return Ok(vec![x.shallow_clone()]),
            _ => (0..x.dim() as i64).collect(),
        };
        Ok(vec![x.f_mean_dim(axes.as_slice(), keepdims, None)?])
    }))
}

fn softmax(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    // Before opset 13 Softmax flattens the input to 2-D at `axis` (default 1) and normalises each row;
    // from 13 on it normalises along `axis` alone (default -1).
    let legacy = ctx.opset < 13;
    let axis = ctx.node.attr_int("axis")?.unwrap_or(if legacy { 1 } else { -1 });
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let dims: Vec<usize> = x.size().iter().map(|&d| d as usize).collect();
        if legacy {
            let [rows, cols] = flatten(&dims, axis).map_err(shape_err)?;
            let y = x.f_reshape([rows as i64, cols as i64])?.f_softmax(1, None)?;
            Ok(vec![y.f_reshape(x.size())?])
        } else {
            let axis = normalize_axis(axis, dims.len()).map_err(shape_err)?;
            Ok(vec![x.f_softmax(axis as i64, None)?])
        }
    }))
}
