//! `worker inspect`: what a model takes and gives, the ops it runs, and its params and FLOPs.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use sensgrid_model::analysis::count;
use sensgrid_model::ir::{Dim, Graph, ValueInfo};
use serde_json::{Value, json};
use tch::{Device, Kind, Tensor};

use super::load;
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
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .with_context(|| format!("--input-shape {text}: '{part}' is not a size"))
        })
        .collect()
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

/// The shape to count FLOPs at: the one given, or the model's declared one when every size is fixed.
fn counting_shape(graph: &Graph, given: Option<&str>) -> Result<Option<Vec<usize>>> {
    if graph.inputs.len() != 1 {
        bail!(
            "the model has {} inputs; inspect counts FLOPs of single-input models",
            graph.inputs.len()
        );
    }
    if let Some(text) = given {
        return parse_shape(text).map(Some);
    }
    let declared = graph.inputs[0].fact.as_ref().and_then(|f| f.shape.as_ref());
    Ok(declared.and_then(|dims| {
        dims.iter()
            .map(|d| if let Dim::Known(s) = d { Some(*s) } else { None })
            .collect()
    }))
}

/// Runs the model once on zeros of `shape` and records the shape of every tensor it produces.
fn runtime_shapes(executor: &Executor, shape: &[usize]) -> Result<HashMap<String, Vec<usize>>> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let input = Tensor::zeros(&dims, (Kind::Float, Device::Cpu));
    let mut shapes = HashMap::new();
    executor
        .run_tapped(&[input], &mut |name, tensor| {
            shapes.insert(name.to_owned(), tensor.size().iter().map(|&d| d as usize).collect());
            tensor
        })
        .with_context(|| format!("running the model at input shape {shape:?} to count FLOPs"))?;
    Ok(shapes)
}

pub fn run(args: &Args) -> Result<()> {
    let graph = load(&args.model)?;
    // Building the executor refuses unsupported ops, as every other subcommand would.
    let executor = Executor::new(&graph, Device::Cpu)?;
    let params = count::params(&graph);
    let shape = counting_shape(&graph, args.input_shape.as_deref())?;
    let flops = match &shape {
        Some(shape) => {
            let shapes = runtime_shapes(&executor, shape)?;
            Some(count::flops(&graph, &|name| shapes.get(name).cloned())?)
        }
        None => None,
    };
    let histogram = graph.op_histogram();
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
        println!("{report}");
        return Ok(());
    }
    println!("model    {} (opset {})", args.model.display(), graph.opset);
    for (label, list) in [("input ", &graph.inputs), ("output", &graph.outputs)] {
        for vi in list {
            println!("{label}   {}", describe(vi));
        }
    }
    let ops: Vec<String> = histogram.iter().map(|(op, n)| format!("{op} {n}")).collect();
    println!("ops      {} nodes: {}", graph.nodes.len(), ops.join(", "));
    println!("params   {params}");
    match (flops, shape) {
        (Some(flops), Some(shape)) => println!("flops    {flops} multiply-accumulates at {shape:?}"),
        _ => println!("flops    not counted: the input shape is dynamic; pass --input-shape"),
    }
    println!(
        "(Constant nodes and constant-only subgraphs are folded at load: {} constants)",
        graph.constants.len()
    );
    Ok(())
}
