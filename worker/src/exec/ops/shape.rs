//! Ops that move data or compute shapes: Shape, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat,
//! Split, Slice, Gather, Tile, Expand. The shape arithmetic is `sensgrid_model::ops::shape`, shared with
//! constant folding.

use anyhow::{Result, bail};
use sensgrid_model::ops::required_int;
use sensgrid_model::ops::shape as onnx_shape;
use tch::{Device, Kind, Tensor};

use super::{dims, i64s, ints, on_device_of, shape_err};
use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};

pub fn register(table: &mut OpTable) {
    table.add("Shape", shape);
    table.add("Reshape", reshape);
    table.add("Flatten", flatten);
    table.add("Transpose", transpose);
    table.add("Squeeze", |ctx| squeeze_or_unsqueeze(ctx, false));
    table.add("Unsqueeze", |ctx| squeeze_or_unsqueeze(ctx, true));
    table.add("Concat", concat);
    table.add("Split", split);
    table.add("Slice", slice);
    table.add("Gather", gather);
    table.add("Tile", tile);
    table.add("Expand", expand);
}

/// An integer list that older opsets give as an attribute and newer ones as an input.
enum IntsArg {
    Attr(Option<Vec<i64>>),
    Input(usize),
}

impl IntsArg {
    /// Input `index` from opset `since` on, else the attribute `attr`.
    fn new(ctx: &BuildCtx, attr: &str, index: usize, since: i64) -> Result<Self> {
        Ok(if ctx.opset >= since {
            Self::Input(index)
        } else {
            Self::Attr(ctx.node.attr_ints(attr)?.map(<[i64]>::to_vec))
        })
    }

    fn get(&self, inputs: &[Option<&Tensor>]) -> Result<Option<Vec<i64>>> {
        match self {
            Self::Attr(values) => Ok(values.clone()),
            Self::Input(index) => inputs.get(*index).copied().flatten().map(ints).transpose(),
        }
    }
}

/// A host int64 tensor of `values`.
fn host_ints(values: &[i64]) -> Tensor {
    Tensor::from_slice(values)
}

fn shape(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let start = ctx.node.attr_int("start")?.unwrap_or(0);
    let end = ctx.node.attr_int("end")?;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let size = required(inputs, 0)?.size();
        let rank = size.len() as i64;
        let clamp = |v: i64| if v < 0 { (v + rank).max(0) } else { v.min(rank) } as usize;
        let (s, e) = (clamp(start), clamp(end.unwrap_or(rank)));
        Ok(vec![host_ints(if s < e { &size[s..e] } else { &[] })])
    }))
}

fn reshape(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let allow_zero = ctx.node.attr_int("allowzero")?.unwrap_or(0) != 0;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let target = ints(required(inputs, 1)?)?;
        let out = onnx_shape::reshape(&dims(x), &target, allow_zero).map_err(shape_err)?;
        Ok(vec![x.f_reshape(i64s(&out))?])
    }))
}

fn flatten(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let axis = ctx.node.attr_int("axis")?.unwrap_or(1);
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let [rows, cols] = onnx_shape::flatten(&dims(x), axis).map_err(shape_err)?;
        Ok(vec![x.f_reshape([rows as i64, cols as i64])?])
    }))
}

fn transpose(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let perm = ctx.node.attr_ints("perm")?.map(<[i64]>::to_vec);
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let perm = onnx_shape::transpose_perm(x.dim(), perm.as_deref()).map_err(shape_err)?;
        Ok(vec![x.f_permute(i64s(&perm))?])
    }))
}

fn squeeze_or_unsqueeze(ctx: &BuildCtx, unsqueeze: bool) -> Result<Box<dyn Kernel>> {
    let axes = IntsArg::new(ctx, "axes", 1, 13)?;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let axes = axes.get(inputs)?;
        let out = if unsqueeze {
            let Some(axes) = axes else {
                bail!("Unsqueeze needs axes")
            };
            onnx_shape::unsqueeze(&dims(x), &axes)
        } else {
            onnx_shape::squeeze(&dims(x), axes.as_deref())
        }
        .map_err(shape_err)?;
        Ok(vec![x.f_reshape(i64s(&out))?])
    }))
}

fn concat(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let axis = required_int(ctx.node, "axis")?;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let parts: Vec<&Tensor> = inputs.iter().copied().flatten().collect();
        let Some(first) = parts.first() else {
            bail!("Concat needs inputs")
        };
        let axis = onnx_shape::normalize_axis(axis, first.dim()).map_err(shape_err)?;
        // Shape values live on the host and activations on the device: meet on the device.
        let device = parts
            .iter()
            .map(|t| t.device())
            .find(|&d| d != Device::Cpu)
            .unwrap_or(Device::Cpu);
        let parts: Vec<Tensor> = parts.iter().map(|t| t.to_device(device)).collect();
        Ok(vec![Tensor::f_cat(&parts, axis as i64)?])
    }))
}

fn split(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let axis = ctx.node.attr_int("axis")?.unwrap_or(0);
    let sizes = IntsArg::new(ctx, "split", 1, 13)?;
    let outputs = ctx.node.outputs.len() as i64;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let axis = onnx_shape::normalize_axis(axis, x.dim()).map_err(shape_err)?;
        let len = x.size()[axis];
        let sizes = match sizes.get(inputs)? {
            Some(sizes) => sizes,
            // Equal parts, the last one smaller when the axis does not divide (opset 18's num_outputs).
            None => {
                let part = (len + outputs - 1) / outputs;
                (0..outputs).map(|i| part.min(len - i * part).max(0)).collect()
            }
        };
        if sizes.iter().sum::<i64>() != len || sizes.len() as i64 != outputs {
            bail!("split sizes {sizes:?} do not divide axis {axis} of length {len} into {outputs} outputs");
        }
        Ok(x.f_split_with_sizes(sizes.as_slice(), axis as i64)?)
    }))
}

fn slice(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let [starts, ends, axes] =
        [("starts", 1), ("ends", 2), ("axes", 3)].map(|(name, i)| IntsArg::new(ctx, name, i, 10));
    let (starts, ends, axes) = (starts?, ends?, axes?);
    let steps = IntsArg::new(ctx, "steps", 4, 10)?;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let (Some(s), Some(e)) = (starts.get(inputs)?, ends.get(inputs)?) else {
            bail!("Slice needs starts and ends")
        };
        let plan = onnx_shape::slice(
            &dims(x),
            &s,
            &e,
            axes.get(inputs)?.as_deref(),
            steps.get(inputs)?.as_deref(),
        )
        .map_err(shape_err)?;
        let mut out = x.shallow_clone();
        for (axis, cut) in plan.iter().enumerate() {
            let axis_i = axis as i64;
            if cut.len == 0 {
                out = out.f_narrow(axis_i, 0, 0)?;
            } else if cut.step > 0 {
                let end = cut.start + cut.step * (cut.len as i64 - 1) + 1;
                if !(cut.start == 0 && cut.step == 1 && end == x.size()[axis]) {
                    out = out.f_slice(axis_i, cut.start, end, cut.step)?;
                }
            } else {
                // libtorch slices forward only: take the same elements ascending, then flip them.
                let low = cut.start + cut.step * (cut.len as i64 - 1);
                out = out.f_slice(axis_i, low, cut.start + 1, -cut.step)?.f_flip([axis_i])?;
            }
        }
        Ok(vec![out])
    }))
}

fn gather(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let axis = ctx.node.attr_int("axis")?.unwrap_or(0);
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let (x, indices) = (required(inputs, 0)?, required(inputs, 1)?);
        let axis = onnx_shape::normalize_axis(axis, x.dim()).map_err(shape_err)?;
        let len = x.size()[axis];
        let flat = on_device_of(&indices.f_to_kind(Kind::Int64)?.f_flatten(0, -1)?, x);
        // Negative indices count from the end; indices past it are left for index_select to refuse.
        let flat = flat.f_where_self(&flat.f_ge(0)?, &flat.f_add_scalar(len)?)?;
        let picked = x.f_index_select(axis as i64, &flat)?;
        let mut out_shape = x.size()[..axis].to_vec();
        out_shape.extend(indices.size());
        out_shape.extend(&x.size()[axis + 1..]);
        Ok(vec![picked.f_reshape(out_shape)?])
    }))
}

fn tile(_: &BuildCtx) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(|inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let repeats = ints(required(inputs, 1)?)?;
        if repeats.len() != x.dim() {
            bail!("repeats {repeats:?} do not match rank {}", x.dim());
        }
        Ok(vec![x.f_repeat(repeats.as_slice())?])
    }))
}

fn expand(_: &BuildCtx) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(|inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let target: Vec<usize> = ints(required(inputs, 1)?)?
            .into_iter()
            .map(|d| usize::try_from(d).map_err(|_| anyhow::anyhow!("negative size {d} in Expand's shape")))
            .collect::<Result<_>>()?;
        let out = onnx_shape::broadcast(&dims(x), &target).map_err(shape_err)?;
        Ok(vec![x.f_expand(i64s(&out), false)?])
    }))
}
