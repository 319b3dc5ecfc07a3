//! The entry points of the fuzz targets (`fuzz/`): each takes arbitrary bytes, runs one reader of hostile input
//! and what follows it on a model, and must return without panicking or aborting whatever the bytes. The
//! `fuzz_replay` test runs them on every stored corpus file under stable, so a crash once found stays fixed.

use crate::analysis::{count, groups, shapes};
use crate::ir::Dim;
use crate::{onnx, ops};

/// The side given to a dynamic input dimension: small, so an input's shape costs nothing to infer.
const DYNAMIC_SIDE: usize = 8;

/// `submit`'s path through a model file: the ONNX reader, the op check, shape inference at the declared input
/// shape (dynamic dimensions set to a small size), the FLOPs count and the channel groups.
pub fn onnx_model(bytes: &[u8]) {
    let Ok(graph) = onnx::decode(bytes) else { return };
    if ops::check_supported(&graph).is_err() {
        return;
    }
    let inputs: Vec<Vec<usize>> = graph
        .inputs
        .iter()
        .map(|input| {
            input
                .fact
                .as_ref()
                .and_then(|f| f.shape.as_ref())
                .map(|dims| {
                    dims.iter()
                        .map(|d| match d {
                            Dim::Known(size) => *size,
                            _ => DYNAMIC_SIDE,
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    if shapes::infer(&graph, &inputs).is_err() {
        return;
    }
    let _ = count::flops_at(&graph, &inputs);
    let _ = groups::analyse_at(&graph, &inputs);
}

/// The `sen.pickle` reader of `submit --resume-from`.
pub fn sen_pickle(bytes: &[u8]) {
    let _ = crate::prune::sen_pickle::read(bytes);
}
