//! `worker infer`: one input, every output.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sensgrid_model::analysis::groups;

use super::{ModelRun, PlanArgs};
use crate::exec::parse_device;
use crate::pruning;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: ModelRun,
    /// Where the first output goes; the second goes to OUT.1.npy, and so on.
    #[arg(long)]
    output: PathBuf,
    /// auto (the first GPU when there is one), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Zero the channels this plan (a JSON object of group key to ratio) prunes before running.
    #[arg(long)]
    mask: Option<PathBuf>,
    #[command(flatten)]
    choice: PlanArgs,
}

/// `out.npy` for output 0, `out.1.npy` for output 1, ...
fn output_path(first: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return first.to_owned();
    }
    let stem = first
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    first.with_file_name(format!("{stem}.{index}.npy"))
}

pub fn run(args: &Args) -> Result<()> {
    let device = parse_device(&args.device)?;
    let (mut graph, mut executor, input) = args.run.load(device)?;
    if let Some(plan) = &args.mask {
        let dims = input.size().iter().map(|&d| d as usize).collect();
        let analysis = groups::analyse_at(&graph, &[dims])?;
        let cut = pruning::plan_cut(&graph, &analysis, plan, args.choice.criterion)?;
        // The masked run is all this command does: nothing to restore afterwards.
        let _masked = pruning::mask(&mut executor, &mut graph, &analysis, &cut)?;
        eprintln!("masked {} groups ({})", cut.channels.len(), args.choice.criterion);
    }
    let outputs = executor.run(&[input])?;
    for (index, (name, tensor)) in executor.output_names().zip(&outputs).enumerate() {
        let path = output_path(&args.output, index);
        let tensor = tensor.to_device(tch::Device::Cpu);
        tensor
            .write_npy(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{name}: {:?} -> {}", tensor.size(), path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_outputs_are_numbered() {
        assert_eq!(output_path(Path::new("out/y.npy"), 0), Path::new("out/y.npy"));
        assert_eq!(output_path(Path::new("out/y.npy"), 2), Path::new("out/y.2.npy"));
    }
}
