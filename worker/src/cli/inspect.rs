//! `worker inspect`: what a model takes and gives, the ops it runs, and its params and FLOPs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Result, bail};
use sensgrid_model::analysis::count;
use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::ir::{Dim, ValueInfo};
use serde_json::{Value, json};
use tch::Device;

use super::{counting_shape, load, write_stdout};
use crate::exec::Executor;

#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model.
    model: PathBuf,
    /// The input shape FLOPs are counted at, e.g. 1,3,640,640; defaults to the model's own when it is fixed.
    #[arg(long)]
    input_shape: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Describe the channel dependency groups instead: key, channels, params, FLOPs and members of each, and
    /// the convs that cannot be pruned, with the reason.
    #[arg(long)]
    groups: bool,
}

fn describe(vi: &ValueInfo) -> Value {
    let (dtype, shape) = match &vi.fact {
        Some(fact) => (
            json!(fact.dtype.name()),
            fact.shape.as_ref().map_or(Value::Null, |dims| {
                dims.iter()
                    .map(|d| match d {
                        Dim::Known(size) => json!(size),
                        other => json!(other.to_string()),
                    })
                    .collect()
            }),
        ),
        None => (Value::Null, Value::Null),
    };
    json!({"name": vi.name, "dtype": dtype, "shape": shape})
}

pub fn run(args: &Args) -> Result<()> {
    let graph = load(&args.model)?;
    // Building the executor refuses unsupported ops and attributes, as every other subcommand would; shapes
    // are inferred statically, nothing runs.
    Executor::new(&graph, Device::Cpu)?;
    let shape = counting_shape(&graph, args.input_shape.as_deref())?;
    if args.groups {
        let Some(shape) = shape else {
            bail!("the model's input shape is dynamic; pass --input-shape to find its groups");
        };
        let analysis = groups::analyse_at(&graph, std::slice::from_ref(&shape))?;
        return print_groups(&analysis, args.json);
    }
    let params = count::params(&graph)?;
    let flops = match &shape {
        Some(shape) => Some(count::flops_at(&graph, std::slice::from_ref(shape))?),
        None => None,
    };
    let histogram = graph.op_histogram();
    let mut out = String::new();
    if args.json {
        let report = json!({
            "model": args.model.display().to_string(),
            "opset": graph.opset,
            "inputs": graph.inputs.iter().map(describe).collect::<Vec<_>>(),
            "outputs": graph.outputs.iter().map(describe).collect::<Vec<_>>(),
            "op_histogram": histogram,
            "constants": graph.constants.len(),
            "params": params,
            "input_shape": shape,
            "flops": flops,
            "conventions": count::CONVENTIONS.iter().copied().collect::<HashMap<_, _>>(),
        });
        writeln!(out, "{report}")?;
        return write_stdout(&out);
    }
    writeln!(out, "model    {} (opset {})", args.model.display(), graph.opset)?;
    for (label, list) in [("input ", &graph.inputs), ("output", &graph.outputs)] {
        for vi in list {
            writeln!(out, "{label}   {}", describe(vi))?;
        }
    }
    let ops: Vec<String> = histogram.iter().map(|(op, n)| format!("{op} {n}")).collect();
    writeln!(out, "ops      {} nodes: {}", graph.nodes.len(), ops.join(", "))?;
    writeln!(out, "params   {params}")?;
    match (flops, shape) {
        (Some(flops), Some(shape)) => writeln!(out, "flops    {flops} multiply-accumulates at {shape:?}")?,
        _ => writeln!(
            out,
            "flops    not counted: the input shape is dynamic; pass --input-shape"
        )?,
    }
    writeln!(
        out,
        "(Constant nodes and constant-only subgraphs are folded at load: {} constants)",
        graph.constants.len()
    )?;
    write_stdout(&out)
}

fn print_groups(analysis: &Analysis, json: bool) -> Result<()> {
    let mut out = String::new();
    if json {
        let groups: Vec<Value> = analysis
            .groups
            .iter()
            .map(|g| {
                let members: Vec<Value> = g
                    .members
                    .iter()
                    .map(|m| json!({"tensor": m.tensor, "node": m.node, "axis": m.axis, "index_map": m.index_map}))
                    .collect();
                json!({"key": g.key, "channels": g.channels, "params": g.params, "flops": g.flops, "members": members})
            })
            .collect();
        let excluded: Vec<Value> = analysis
            .excluded
            .iter()
            .map(|e| json!({"conv": e.conv, "node": e.node, "reason": e.reason}))
            .collect();
        writeln!(out, "{}", json!({"groups": groups, "excluded": excluded}))?;
        return write_stdout(&out);
    }
    writeln!(
        out,
        "{:<32} {:>8} {:>10} {:>14} {:>8}",
        "group", "channels", "params", "flops", "members"
    )?;
    for g in &analysis.groups {
        writeln!(
            out,
            "{:<32} {:>8} {:>10} {:>14} {:>8}",
            g.key,
            g.channels,
            g.params,
            g.flops,
            g.members.len()
        )?;
    }
    writeln!(
        out,
        "{} prunable groups; {} convs excluded:",
        analysis.groups.len(),
        analysis.excluded.len()
    )?;
    for e in &analysis.excluded {
        writeln!(out, "  {} ({}): {}", e.conv, e.node, e.reason)?;
    }
    write_stdout(&out)
}
