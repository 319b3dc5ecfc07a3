//! Fused steps: a Conv with the BatchNormalization, the activations and the Adds that consume only its
//! output, run as one convolution and in-place element-wise passes (issue 16). The plan (`plan.rs`, `fuse`)
//! decides where they apply; tapped runs, which must see every node's output, still run the nodes one by one.
//!
//! Why it is exact enough: in inference mode BatchNormalization is `(y - mean) * s + beta` with
//! `s = scale / sqrt(var + epsilon)` per output channel, and `y = conv(x, W) + B` is linear in `W` and `B`, so
//! `conv(x, W * s) + (B - mean) * s + beta` is the same function; only float32 rounding differs (one rounding
//! of the product `W * s` instead of one of each output), far below the end-to-end tolerances. The folded
//! weight is computed from the constants at every run, as the step reads them: masking writes the constants
//! in place between runs, and the step lists all of them as inputs, so `first_reader` finds it. The
//! activation then runs in place on the convolution's output, which nothing else holds: the same formula
//! as the nodes' (HardSwish is Paddle's `x * clip(x + 3, 0, 6) / 6`, libtorch's `hardswish_`). An Add
//! (a residual, or Paddle's conv bias) is added in place too; float addition is commutative, so that one is
//! bit-exact.

use anyhow::{Result, bail};
use tch::{Kind, Tensor};

use super::conv::ConvSpec;
use crate::exec::{BuildCtx, Kernel, required};

/// An activation applied in place to a fused step's output.
#[derive(Clone, Copy)]
pub enum Activation {
    Relu,
    Sigmoid,
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        alpha: f64,
        beta: f64,
    },
    /// `x * max(0, min(6, x + 3)) / 6`: the HardSwish node, or Paddle's Add, Clip, Mul, Div (found by the plan).
    HardSwish,
}

impl Activation {
    /// The activation of an element-wise node the fusion can absorb, or None for any other node.
    pub fn read(ctx: &BuildCtx) -> Result<Option<Self>> {
        Ok(match ctx.node.op_type.as_str() {
            "Relu" => Some(Self::Relu),
            "Sigmoid" => Some(Self::Sigmoid),
            "HardSwish" => Some(Self::HardSwish),
            "HardSigmoid" => Some(Self::HardSigmoid {
                alpha: f64::from(ctx.node.attr_float("alpha")?.unwrap_or(0.2)),
                beta: f64::from(ctx.node.attr_float("beta")?.unwrap_or(0.5)),
            }),
            _ => None,
        })
    }

    /// Applies the activation to `x` in place, returning it.
    fn apply_(self, mut x: Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Relu => x.f_relu_()?,
            Self::Sigmoid => x.f_sigmoid_()?,
            Self::HardSigmoid { alpha, beta } => x.f_mul_scalar_(alpha)?.f_add_scalar_(beta)?.f_clamp_(0.0, 1.0)?,
            Self::HardSwish => x.f_hardswish_()?,
        })
    }
}

/// What a fused step does to the convolution's output, in order.
#[derive(Clone, Copy)]
pub enum Tail {
    Activation(Activation),
    /// Adds input `index` (a residual or a bias), in place when the sum has the output's shape.
    Add(usize),
}

/// Conv, then optionally BatchNormalization (its epsilon) folded into it, then its tails. Inputs: X, W, B;
/// scale, beta, mean and var of the BatchNormalization; from [`FIRST_OPERAND`] on, the Adds' other operands.
/// All but X and W may be absent.
pub struct ConvBnAct {
    pub conv: ConvSpec,
    pub bn_epsilon: Option<f64>,
    pub tails: Vec<Tail>,
}

/// The input index of the first Add's operand in a [`ConvBnAct`] step.
pub const FIRST_OPERAND: usize = 7;

/// Whether `other` broadcasts to `out`'s shape as it is, so `out += other` in place is the Add.
fn adds_in_place(out: &Tensor, other: &Tensor) -> bool {
    let (out_size, other_size) = (out.size(), other.size());
    other.kind() == out.kind()
        && other_size.len() <= out_size.len()
        && other_size
            .iter()
            .rev()
            .zip(out_size.iter().rev())
            .all(|(&o, &d)| o == 1 || o == d)
}

impl Kernel for ConvBnAct {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(inputs, 0)?;
        let weight = required(inputs, 1)?;
        let bias = inputs.get(2).copied().flatten();
        let out = match self.bn_epsilon {
            None => self.conv.apply(x, weight, bias)?,
            Some(epsilon) => {
                let [scale, beta, mean, var] = [3, 4, 5, 6].map(|i| required(inputs, i));
                let (scale, beta, mean, var) = (scale?, beta?, mean?, var?);
                let channels = weight.size()[0];
                if scale.size() != [channels] {
                    bail!(
                        "BatchNormalization has {:?} scales for {channels} channels",
                        scale.size()
                    );
                }
                // Folded in float32 whatever the run's precision: in fp16, `var + epsilon` would lose the
                // epsilon and the product would round twice. In fp32 the conversions are no-ops.
                let float = |t: &Tensor| t.f_to_kind(Kind::Float);
                let s = float(var)?
                    .f_add_scalar(epsilon)?
                    .f_sqrt()?
                    .f_reciprocal()?
                    .f_mul(&float(scale)?)?;
                let mut per_channel = vec![1i64; weight.dim()];
                per_channel[0] = channels;
                let folded_weight = float(weight)?
                    .f_mul(&s.f_reshape(&per_channel)?)?
                    .f_to_kind(weight.kind())?;
                let shifted = match bias {
                    Some(b) => float(b)?.f_sub(&float(mean)?)?,
                    None => float(mean)?.f_neg()?,
                };
                let folded_bias = shifted.f_mul(&s)?.f_add(&float(beta)?)?.f_to_kind(weight.kind())?;
                self.conv.apply(x, &folded_weight, Some(&folded_bias))?
            }
        };
        let mut out = out;
        for tail in &self.tails {
            out = match *tail {
                Tail::Activation(activation) => activation.apply_(out)?,
                Tail::Add(index) => {
                    let other = required(inputs, index)?;
                    if adds_in_place(&out, other) {
                        out.f_add_(other)?
                    } else {
                        out.f_add(other)?
                    }
                }
            };
        }
        Ok(vec![out])
    }
}
