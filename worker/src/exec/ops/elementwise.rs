//! Element-wise ops: activations, Clip, the broadcasting arithmetic, Cast and Identity.

use anyhow::Result;
use sensgrid_model::ops::cast_target;
use tch::{Kind, Tensor};

use super::{common_device, floats, is_float, on_device_of};
use crate::exec::plan::kind_of;
use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};

pub fn register(table: &mut OpTable) {
    table.add("Relu", |_| unary(|x| Ok(x.f_relu()?)));
    table.add("Sigmoid", |_| unary(|x| Ok(x.f_sigmoid()?)));
    table.add("Tanh", |_| unary(|x| Ok(x.f_tanh()?)));
    table.add("Erf", |_| unary(|x| Ok(x.f_erf()?)));
    table.add("Sqrt", |_| unary(|x| Ok(x.f_sqrt()?)));
    table.add("Identity", |_| unary(|x| Ok(x.shallow_clone())));
    table.add("LeakyRelu", leaky_relu);
    table.add("HardSigmoid", hard_sigmoid);
    table.add("HardSwish", |_| {
        unary(|x| Ok(x.f_mul(&hard_sigmoid_of(x, 1.0 / 6.0, 0.5)?)?))
    });
    table.add("Clip", clip);
    table.add("Add", |_| binary(|a, b| Ok(a.f_add(b)?)));
    table.add("Sub", |_| binary(|a, b| Ok(a.f_sub(b)?)));
    table.add("Mul", |_| binary(|a, b| Ok(a.f_mul(b)?)));
    table.add("Div", |_| binary(div));
    table.add("Pow", |_| binary(|a, b| Ok(a.f_pow(b)?.f_to_kind(a.kind())?)));
    table.add("Cast", cast);
}

fn unary(f: fn(&Tensor) -> Result<Tensor>) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        Ok(vec![f(required(inputs, 0)?)?])
    }))
}

fn binary(f: fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let (a, b) = (required(inputs, 0)?, required(inputs, 1)?);
        let device = common_device(a, b);
        Ok(vec![f(&a.to_device(device), &b.to_device(device))?])
    }))
}

/// ONNX Div: true division for floats, truncation toward zero for integers (shape arithmetic relies on it).
fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if is_float(a.kind()) {
        Ok(a.f_div(b)?)
    } else {
        Ok(a.f_div_tensor_mode(b, "trunc")?.f_to_kind(a.kind())?)
    }
}

/// max(0, min(1, alpha * x + beta)), in the order ONNX defines it.
fn hard_sigmoid_of(x: &Tensor, alpha: f64, beta: f64) -> Result<Tensor> {
    Ok(x.f_mul_scalar(alpha)?.f_add_scalar(beta)?.f_clamp(0.0, 1.0)?)
}

fn hard_sigmoid(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let alpha = f64::from(ctx.node.attr_float("alpha")?.unwrap_or(0.2));
    let beta = f64::from(ctx.node.attr_float("beta")?.unwrap_or(0.5));
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        Ok(vec![hard_sigmoid_of(required(inputs, 0)?, alpha, beta)?])
    }))
}

fn leaky_relu(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let alpha = f64::from(ctx.node.attr_float("alpha")?.unwrap_or(0.01));
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        Ok(vec![x.f_where_self(&x.f_ge(0.0)?, &x.f_mul_scalar(alpha)?)?])
    }))
}

fn clip(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    // Before opset 11 the bounds are attributes; from 11 on they are optional inputs (and the attributes
    // were refused by `check_supported`, so both read None).
    let (attr_min, attr_max) = (
        ctx.node.attr_float("min")?.map(f64::from),
        ctx.node.attr_float("max")?.map(f64::from),
    );
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let bound = |index: usize, attr: Option<f64>| -> Result<Option<f64>> {
            match inputs.get(index).copied().flatten() {
                Some(t) => Ok(floats(t)?.first().copied()),
                None => Ok(attr),
            }
        };
        let out = match (bound(1, attr_min)?, bound(2, attr_max)?) {
            (Some(lo), Some(hi)) => x.f_clamp(lo, hi)?,
            (Some(lo), None) => x.f_clamp_min(lo)?,
            (None, Some(hi)) => x.f_clamp_max(hi)?,
            (None, None) => x.shallow_clone(),
        };
        Ok(vec![out])
    }))
}

fn cast(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let kind: Kind = kind_of(cast_target(ctx.node)?)?;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        // Float to integer truncates toward zero in both ONNX and libtorch.
        Ok(vec![on_device_of(&x.f_to_kind(kind)?, x)])
    }))
}
