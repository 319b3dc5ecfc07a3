//! The worker's side of pruning: the shapes a run records (the engine's, which the static shapes of
//! `sensgrid_model::analysis::shapes` are checked against), plans read from JSON, and masks applied to (and
//! lifted from) a loaded executor.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sensgrid_model::analysis::groups::Analysis;
use sensgrid_model::ir::Graph;
use sensgrid_model::prune::{self, Criterion, Cut, Masked, Plan};
use tch::Tensor;

use crate::exec::Executor;

/// The shape of every tensor a run on `input` reads or produces, graph inputs included.
///
/// # Errors
/// A node that fails on `input`.
pub fn record_shapes(graph: &Graph, executor: &Executor, input: &Tensor) -> Result<HashMap<String, Vec<usize>>> {
    let dims = |t: &Tensor| t.size().iter().map(|&d| d as usize).collect::<Vec<_>>();
    let mut shapes = HashMap::new();
    if let Some(first) = graph.inputs.first() {
        shapes.insert(first.name.clone(), dims(input));
    }
    executor
        .run_tapped(std::slice::from_ref(input), &mut |name, tensor| {
            shapes.insert(name.to_owned(), dims(&tensor));
            tensor
        })
        .with_context(|| format!("running the model on an input of shape {:?}", input.size()))?;
    Ok(shapes)
}

/// Reads a plan: a JSON object of group key to ratio.
///
/// # Errors
/// An unreadable file, or anything but an object of numbers, with the path.
pub fn read_plan(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading plan {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
    let Some(object) = value.as_object() else {
        bail!("{}: a plan is a JSON object of group key to ratio", path.display());
    };
    object
        .iter()
        .map(|(key, ratio)| match ratio.as_f64() {
            Some(ratio) => Ok((key.clone(), ratio)),
            None => bail!("{}: group '{key}': the ratio {ratio} is not a number", path.display()),
        })
        .collect()
}

/// The cut a plan file asks for.
///
/// # Errors
/// As [`read_plan`] and [`Cut::plan`], with the plan's path.
pub fn plan_cut(graph: &Graph, analysis: &Analysis, plan: &Path, criterion: Criterion) -> Result<Cut> {
    let ratios = read_plan(plan)?;
    Cut::plan(graph, analysis, &ratios, criterion).with_context(|| format!("plan {}", plan.display()))
}

/// Zeroes the channels of `cut` in `graph` and in the executor loaded from it.
///
/// # Errors
/// A constant the executor cannot take (it was not loaded from `graph`).
pub fn mask(executor: &mut Executor, graph: &mut Graph, analysis: &Analysis, cut: &Cut) -> Result<Masked> {
    let masked = prune::mask(graph, &cut.removed(analysis));
    upload(executor, graph, masked.tensors())?;
    Ok(masked)
}

/// Puts back what [`mask`] zeroed, bit for bit, in `graph` and the executor.
///
/// # Errors
/// As [`mask`].
pub fn unmask(executor: &mut Executor, graph: &mut Graph, masked: Masked) -> Result<()> {
    let names: Vec<String> = masked.tensors().map(str::to_owned).collect();
    prune::restore(graph, masked);
    upload(executor, graph, names.iter().map(String::as_str))
}

/// Copies the named constants of `graph` into the executor.
fn upload<'a>(executor: &mut Executor, graph: &Graph, names: impl Iterator<Item = &'a str>) -> Result<()> {
    for name in names {
        executor.set_constant(name, &graph.constants[name])?;
    }
    Ok(())
}
