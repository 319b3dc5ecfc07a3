//! LSTM on libtorch's fused kernel. ONNX stacks the gates as input, output, forget, cell (iofc); libtorch
//! as input, forget, cell, output (ifgo): the weights are reordered, once at load when they are constants.

use anyhow::{Result, bail};
use sensgrid_model::ops::lstm::{Direction, LstmAttrs};
use tch::Tensor;

use super::ints;
use crate::exec::registry::OpTable;
use crate::exec::{BuildCtx, Kernel, required};

pub fn register(table: &mut OpTable) {
    table.add("LSTM", lstm);
}

/// Reorders the 4 gate blocks along axis `axis` from ONNX's iofc to libtorch's ifgo.
fn iofc_to_ifgo(t: &Tensor, axis: i64) -> Result<Tensor> {
    let gates = t.f_chunk(4, axis)?;
    Ok(Tensor::f_cat(&[&gates[0], &gates[2], &gates[3], &gates[1]], axis)?)
}

/// libtorch's parameter list, [w_ih, w_hh, b_ih, b_hh] per direction, from ONNX's W, R and B.
fn torch_params(w: &Tensor, r: &Tensor, b: Option<&Tensor>, hidden: i64) -> Result<Vec<Tensor>> {
    let directions = w.size()[0];
    let mut params = Vec::with_capacity(4 * directions as usize);
    for d in 0..directions {
        params.push(iofc_to_ifgo(&w.get(d), 0)?);
        params.push(iofc_to_ifgo(&r.get(d), 0)?);
        let bias = match b {
            Some(b) => b.get(d),
            None => Tensor::f_zeros([8 * hidden], (w.kind(), w.device()))?,
        };
        params.push(iofc_to_ifgo(&bias.f_narrow(0, 0, 4 * hidden)?, 0)?);
        params.push(iofc_to_ifgo(&bias.f_narrow(0, 4 * hidden, 4 * hidden)?, 0)?);
    }
    Ok(params)
}

fn lstm(ctx: &BuildCtx) -> Result<Box<dyn Kernel>> {
    let node = ctx.node;
    let LstmAttrs {
        hidden_size: hidden,
        direction,
    } = LstmAttrs::read(node)?;
    let constant_params = match (ctx.constant(1), ctx.constant(2)) {
        (Some(w), Some(r)) if node.input(3).is_none() || ctx.constant(3).is_some() => {
            Some(torch_params(w, r, ctx.constant(3), hidden)?)
        }
        _ => None,
    };
    Ok(Box::new(move |inputs: &[Option<&Tensor>]| {
        let x = required(inputs, 0)?;
        let (seq, batch) = (x.size()[0], x.size()[1]);
        if let Some(lens) = inputs.get(4).copied().flatten()
            && ints(lens)?.iter().any(|&l| l != seq)
        {
            bail!("sequence_lens shorter than the sequence ({seq}) are not supported");
        }
        let params = match &constant_params {
            Some(params) => params.iter().map(Tensor::shallow_clone).collect(),
            None => torch_params(
                required(inputs, 1)?,
                required(inputs, 2)?,
                inputs.get(3).copied().flatten(),
                hidden,
            )?,
        };
        let directions = if direction == Direction::Bidirectional { 2 } else { 1 };
        let initial = |index: usize| -> Result<Tensor> {
            match inputs.get(index).copied().flatten() {
                Some(t) => Ok(t.shallow_clone()),
                None => Ok(Tensor::f_zeros([directions, batch, hidden], (x.kind(), x.device()))?),
            }
        };
        let (h0, c0) = (initial(5)?, initial(6)?);
        // A reverse-only LSTM is a forward one over the reversed sequence.
        let input = if direction == Direction::Reverse {
            x.f_flip([0])?
        } else {
            x.shallow_clone()
        };
        let (y, h, c) = input.f_lstm(
            &[&h0, &c0],
            &params.iter().collect::<Vec<_>>(),
            true,
            1,
            0.0,
            false,
            direction == Direction::Bidirectional,
            false,
        )?;
        let y = if direction == Direction::Reverse {
            y.f_flip([0])?
        } else {
            y
        };
        // libtorch gives [seq, batch, directions * hidden]; ONNX wants [seq, directions, batch, hidden].
        let y = y.f_reshape([seq, batch, directions, hidden])?.f_permute([0, 2, 1, 3])?;
        Ok(vec![y, h, c])
    }))
}
