//! `worker prune`: the structurally pruned model, as ONNX, and the indices it kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sensgrid_model::analysis::{count, groups};
use sensgrid_model::onnx;
use sensgrid_model::prune::structural;
use serde_json::json;
use tch::Device;

use super::{PlanArgs, counting_shape, load};
use crate::exec::Executor;
use crate::pruning;

#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// A JSON object of group key to ratio, e.g. {"conv2d_12.w_0": 0.3}.
    #[arg(long)]
    plan: PathBuf,
    /// The pruned model; the kept indices go next to it, as NAME.kept.json.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    choice: PlanArgs,
    /// The input shape the groups are analysed and FLOPs counted at, e.g. 1,3,640,640; defaults to the
    /// model's own when it is fixed.
    #[arg(long)]
    input_shape: Option<String>,
}

/// `pruned.onnx` -> `pruned.kept.json`.
fn kept_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{stem}.kept.json"))
}

pub fn run(args: &Args) -> Result<()> {
    let graph = load(&args.model)?;
    Executor::new(&graph, Device::Cpu)?;
    let Some(shape) = counting_shape(&graph, args.input_shape.as_deref())? else {
        bail!("the model's input shape is dynamic; pass --input-shape to find its groups");
    };
    let inputs = std::slice::from_ref(&shape);
    let analysis = groups::analyse_at(&graph, inputs)?;
    let cut = pruning::plan_cut(&graph, &analysis, &args.plan, args.choice.criterion)?;
    let pruned = structural::prune(&graph, &analysis, &cut)?;

    // The pruned model must load, and its shapes must still fit every node: inferring them for its FLOPs
    // checks that.
    Executor::new(&pruned.graph, Device::Cpu).context("loading the pruned model")?;
    let flops = (
        count::flops_at(&graph, inputs)?,
        count::flops_at(&pruned.graph, inputs).context("the pruned model")?,
    );
    let params = (count::params(&graph)?, count::params(&pruned.graph)?);

    onnx::write(&pruned.graph, &args.out)?;
    let kept: BTreeMap<&str, Vec<serde_json::Value>> = pruned
        .kept
        .iter()
        .map(|(tensor, axes)| {
            let axes = axes
                .iter()
                .map(|(axis, kept)| json!({"axis": axis, "kept": kept}))
                .collect();
            (tensor.as_str(), axes)
        })
        .collect();
    let kept_file = kept_path(&args.out);
    std::fs::write(&kept_file, serde_json::to_string_pretty(&kept)? + "\n")
        .with_context(|| format!("writing {}", kept_file.display()))?;
    eprintln!(
        "pruned {} groups ({}): params {} -> {}, flops {} -> {} at {shape:?}; wrote {} and {}",
        cut.channels.len(),
        args.choice.criterion,
        params.0,
        params.1,
        flops.0,
        flops.1,
        args.out.display(),
        kept_file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_indices_go_next_to_the_model() {
        assert_eq!(
            kept_path(Path::new("out/pruned.onnx")),
            Path::new("out/pruned.kept.json")
        );
    }
}
