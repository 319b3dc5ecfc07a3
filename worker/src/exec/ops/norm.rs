//! BatchNormalization in inference mode.

use anyhow::Result;
use tch::Tensor;

use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};

pub fn register(table: &mut OpTable) {
    table.add("BatchNormalization", batch_norm);
}

fn batch_norm(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let epsilon = epsilon(ctx)?;
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| required(inputs, i));
        Ok(vec![x.f_batch_norm(
            Some(scale?),
            Some(bias?),
            Some(mean?),
            Some(var?),
            false,
            0.0,
            epsilon,
            true,
        )?])
    }))
}

/// The node's epsilon (default 1e-5).
pub fn epsilon(ctx: &BuildCtx) -> Result<f64> {
    Ok(f64::from(ctx.node.attr_float("epsilon")?.unwrap_or(1e-5)))
}
