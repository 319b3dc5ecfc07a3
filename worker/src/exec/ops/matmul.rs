//! MatMul (numpy semantics) and Gemm.

use anyhow::Result;
use tch::Tensor;

use super::common_device;
use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};

pub fn register(table: &mut OpTable) {
    table.add("MatMul", matmul);
    table.add("Gemm", gemm);
}

fn matmul(_: &BuildCtx) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(|inputs: &[Option<&Tensor>]| {
        let (a, b) = (required(inputs, 0)?, required(inputs, 1)?);
        let device = common_device(a, b);
        Ok(vec![a.to_device(device).f_matmul(&b.to_device(device))?])
    }))
}

/// Y = alpha * A' B' + beta * C, with A' and B' optionally transposed and C broadcast.
fn gemm(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let alpha = f64::from(ctx.node.attr_float("alpha")?.unwrap_or(1.0));
    let beta = f64::from(ctx.node.attr_float("beta")?.unwrap_or(1.0));
    let trans_a = ctx.node.attr_int("transA")?.unwrap_or(0) != 0;
    let trans_b = ctx.node.attr_int("transB")?.unwrap_or(0) != 0;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let (a, b) = (required(inputs, 0)?, required(inputs, 1)?);
        let a = if trans_a {
            a.f_transpose(0, 1)?
        } else {
            a.shallow_clone()
        };
        let b = if trans_b {
            b.f_transpose(0, 1)?
        } else {
            b.shallow_clone()
        };
        let mut y = a.f_matmul(&b)?;
        if alpha != 1.0 {
            y = y.f_mul_scalar(alpha)?;
        }
        if let Some(c) = inputs.get(2).copied().flatten() {
            let c = if beta != 1.0 {
                c.f_mul_scalar(beta)?
            } else {
                c.shallow_clone()
            };
            y = y.f_add(&c)?;
        }
        Ok(vec![y])
    }))
}
