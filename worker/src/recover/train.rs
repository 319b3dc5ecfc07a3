//! The student's trainable weights, the distillation loss and Adam.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, Result, bail};
use sensgrid_model::ir::{DataType, Graph, TensorData};
use tch::{Kind, Reduction, Tensor};

use super::Distillation;
use crate::exec::Executor;

/// Adam's decay rates of the first and second moments, and its epsilon: the usual values.
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;
/// Probabilities are kept this far from 0 before a logarithm.
const PROBABILITY_FLOOR: f64 = 1e-8;
/// DB's binarization threshold (`PostProcess.thresh` in PP-OCR's det configs): the part of the teacher's
/// probability map above it is the text its post-processing turns into boxes.
const TEXT_THRESHOLD: f64 = 0.3;
/// Added to the Dice coefficient's denominator, so that a batch without text has a defined loss.
const DICE_SMOOTHING: f64 = 1.0;

/// The float32 constants of `graph` that recovery trains, sorted by name: the weights and biases of Conv,
/// ConvTranspose and Gemm, MatMul's constant operand, the constant operand of an Add that follows a Conv
/// (Paddle exports conv biases so), and BatchNormalization's scale and shift (its running mean and variance
/// stay frozen: see the module doc).
pub fn trainable_names(graph: &Graph) -> Vec<String> {
    let producer: HashMap<&str, &str> = graph
        .nodes
        .iter()
        .flat_map(|node| node.outputs.iter().map(|o| (o.as_str(), node.op_type.as_str())))
        .collect();
    let is_float_constant = |name: &str| {
        graph
            .constants
            .get(name)
            .is_some_and(|data| data.dtype() == DataType::Float)
    };
    let mut names = BTreeSet::new();
    for node in &graph.nodes {
        let positions: &[usize] = match node.op_type.as_str() {
            "Conv" | "ConvTranspose" | "Gemm" | "BatchNormalization" => &[1, 2],
            "MatMul" => &[1],
            "Add" if node.inputs.iter().any(|i| producer.get(i.as_str()) == Some(&"Conv")) => &[0, 1],
            _ => &[],
        };
        for &position in positions {
            if let Some(name) = node.input(position).filter(|name| is_float_constant(name)) {
                names.insert(name.to_owned());
            }
        }
    }
    names.into_iter().collect()
}

/// The distillation loss of the student's first output against the teacher's on `batch`; the teacher runs
/// under `no_grad`, the student with autograd recording.
///
/// det: the binary cross-entropy of the probability maps plus the [`dice_loss`] of the student's map against
/// the teacher's text (its map above [`TEXT_THRESHOLD`]). The cross-entropy alone is a mean over pixels that
/// are mostly background: on bench/recover it kept falling while the hmean peaked early and then fell by a
/// third, the text regions DB's boxes come from drifting. The Dice term weighs the text by its extent
/// whatever its share of the pixels, and with it the hmean rose and stayed up (bench/recover/README.md).
///
/// # Errors
/// A failing node, or outputs of different shapes.
pub fn distillation_loss(
    teacher: &Executor,
    student: &Executor,
    distillation: Distillation,
    batch: &Tensor,
) -> Result<Tensor> {
    let target = first(teacher.run(std::slice::from_ref(batch))?)?;
    let output = first(student.run_differentiable(std::slice::from_ref(batch))?)?;
    if output.size() != target.size() {
        bail!(
            "the student's output is {:?}, the teacher's {:?}",
            output.size(),
            target.size()
        );
    }
    Ok(match distillation {
        Distillation::ProbabilityMap => {
            let probability = output.clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR);
            let text = target.ge(TEXT_THRESHOLD).to_kind(Kind::Float);
            probability.binary_cross_entropy(&target, None::<Tensor>, Reduction::Mean) + dice_loss(&probability, &text)
        }
        Distillation::ClassDistribution => {
            let log_ratio = target.clamp_min(PROBABILITY_FLOOR).log() - output.clamp_min(PROBABILITY_FLOOR).log();
            (target * log_ratio)
                .sum_dim_intlist(-1, false, Kind::Float)
                .mean(Kind::Float)
        }
    })
}

/// One minus the Dice coefficient of `probability` and the 0/1 map `text`, over the whole batch as DB's own
/// training loss computes it: 0 where the student's map covers exactly the teacher's text, 1 where it misses
/// all of it.
fn dice_loss(probability: &Tensor, text: &Tensor) -> Tensor {
    let overlap = (probability * text).sum(Kind::Float);
    1.0 - overlap * 2.0 / (probability.sum(Kind::Float) + text.sum(Kind::Float) + DICE_SMOOTHING)
}

fn first(outputs: Vec<Tensor>) -> Result<Tensor> {
    outputs.into_iter().next().context("the model has no output")
}

/// The student's trainable weights (sharing the executor's storage) and Adam's state for them.
pub struct Trainer {
    names: Vec<String>,
    params: Vec<Tensor>,
    first_moments: Vec<Tensor>,
    second_moments: Vec<Tensor>,
    /// Adam updates so far: its bias correction depends on it.
    updates: i64,
}

impl Trainer {
    /// Makes the [`trainable_names`] of `graph` trainable in `student` (loaded from `graph`).
    ///
    /// # Errors
    /// An executor that was not loaded from `graph`, or loaded in fp16.
    pub fn new(student: &Executor, graph: &Graph) -> Result<Self> {
        let names = trainable_names(graph);
        if names.is_empty() {
            bail!("the student has no weights to train (no Conv, Gemm, MatMul or BatchNormalization constants)");
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let params = student.trainable(&refs)?;
        let zeros = || params.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
        Ok(Trainer {
            first_moments: zeros(),
            second_moments: zeros(),
            names,
            params,
            updates: 0,
        })
    }

    /// The trained constants' names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The device the weights are on.
    pub fn device(&self) -> tch::Device {
        self.params[0].device()
    }

    /// One Adam step at `learning_rate` on the distillation loss of `batch`; returns the loss before it.
    ///
    /// # Errors
    /// As [`distillation_loss`]; a loss that is not finite (the weights are left as they were).
    pub fn step(
        &mut self,
        teacher: &Executor,
        student: &Executor,
        distillation: Distillation,
        batch: &Tensor,
        learning_rate: f64,
    ) -> Result<f64> {
        let loss = distillation_loss(teacher, student, distillation, batch)?;
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            bail!("the distillation loss is {value}: lower the learning rate");
        }
        loss.backward();
        let _guard = tch::no_grad_guard();
        self.updates += 1;
        let t = self.updates as i32;
        let (correction1, correction2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for ((param, m), v) in self
            .params
            .iter_mut()
            .zip(&mut self.first_moments)
            .zip(&mut self.second_moments)
        {
            let grad = param.grad();
            // A weight the output does not depend on (a branch the first output does not read) has none.
            if !grad.defined() {
                continue;
            }
            let _ = m.f_mul_scalar_(BETA1)?.f_add_(&(&grad * (1.0 - BETA1)))?;
            let _ = v.f_mul_scalar_(BETA2)?.f_add_(&(grad.square() * (1.0 - BETA2)))?;
            let denominator = (&*v / correction2).sqrt() + EPSILON;
            let _ = param.f_sub_(&(&*m / denominator * (learning_rate / correction1)))?;
            param.zero_grad();
        }
        Ok(value)
    }

    /// Copies of the current weights, in [`names`](Self::names) order.
    pub fn snapshot(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.detach().copy()).collect()
    }

    /// Writes `weights` (from [`snapshot`](Self::snapshot)) into the student.
    ///
    /// # Errors
    /// Weights of another student.
    pub fn restore(&mut self, weights: &[Tensor]) -> Result<()> {
        copy_into(&mut self.params, weights, "weights")
    }

    /// Adam's state and the weights, by name, as a checkpoint stores them.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let named = |prefix: &str, tensors: &[Tensor]| {
            self.names
                .iter()
                .zip(tensors)
                .map(|(name, t)| (format!("{prefix}/{name}"), t.detach()))
                .collect::<Vec<_>>()
        };
        let mut state = named("weight", &self.params);
        state.extend(named("adam_m", &self.first_moments));
        state.extend(named("adam_v", &self.second_moments));
        state.push(("adam_updates".to_owned(), Tensor::from(self.updates)));
        state
    }

    /// Sets the weights and Adam's state from what [`state`](Self::state) gave.
    ///
    /// # Errors
    /// State of another student: a name missing or a shape that differs.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let take = |prefix: &str| -> Result<Vec<Tensor>> {
            self.names
                .iter()
                .map(|name| {
                    state
                        .get(&format!("{prefix}/{name}"))
                        .map(Tensor::shallow_clone)
                        .with_context(|| format!("the checkpoint has no {prefix} of '{name}'"))
                })
                .collect()
        };
        let (weights, m, v) = (take("weight")?, take("adam_m")?, take("adam_v")?);
        copy_into(&mut self.params, &weights, "weights")?;
        copy_into(&mut self.first_moments, &m, "Adam's first moments")?;
        copy_into(&mut self.second_moments, &v, "Adam's second moments")?;
        self.updates = state
            .get("adam_updates")
            .context("the checkpoint has no adam_updates")?
            .int64_value(&[]);
        Ok(())
    }

    /// The student's graph with the current weights in place of the pruned ones: same nodes, inputs and
    /// outputs.
    ///
    /// # Errors
    /// A weight that does not convert back (it always does for the float32 weights trained here).
    pub fn export(&self, graph: &Graph) -> Result<Graph> {
        let mut graph = graph.clone();
        for (name, param) in self.names.iter().zip(&self.params) {
            let host = param.detach().to_device(tch::Device::Cpu).contiguous();
            let values = Vec::<f32>::try_from(&host.flatten(0, -1)).context("reading a trained weight")?;
            let dims = graph.constants[name].dims().to_vec();
            let data = TensorData::from_values(dims, &values).with_context(|| format!("weight '{name}'"))?;
            graph.constants.insert(name.clone(), data);
        }
        Ok(graph)
    }
}

/// Copies `from` into `into` in place (no autograd), tensor by tensor, checking the shapes.
fn copy_into(into: &mut [Tensor], from: &[Tensor], what: &str) -> Result<()> {
    if into.len() != from.len() {
        bail!("{} {what} for {} tensors", from.len(), into.len());
    }
    let _guard = tch::no_grad_guard();
    for (target, source) in into.iter_mut().zip(from) {
        if target.size() != source.size() {
            bail!("{what}: {:?} cannot take {:?}", target.size(), source.size());
        }
        target.f_copy_(source)?;
    }
    Ok(())
}
