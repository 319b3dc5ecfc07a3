//! Constant folding at load: data-movement and cast nodes whose inputs are all constants are evaluated
//! here and replaced by their results, so weights that Paddle builds through Reshape, Concat and Slice
//! (conv-bias shapes, the LSTM weights of PP-OCRv2 rec) are plain constants in the IR.
//!
//! Only ops that move or convert values are folded; arithmetic stays in the graph and runs in the worker.

use crate::error::Result;
use crate::ir::{DataType, Graph, Node, TensorData};
use crate::ops::shape::{self, SliceAxis};

/// Folds every foldable node, in topological order, so chains fold completely.
pub(crate) fn fold_constants(graph: &mut Graph) -> Result<()> {
    let nodes = std::mem::take(&mut graph.nodes);
    for node in nodes {
        let foldable = node.domain.is_empty()
            && node
                .inputs
                .iter()
                .all(|i| i.is_empty() || graph.constants.contains_key(i))
            && !node.inputs.is_empty();
        let outputs = if foldable { fold_node(&node, graph)? } else { None };
        match outputs {
            Some(values) => graph.constants.extend(node.outputs.iter().cloned().zip(values)),
            None => graph.nodes.push(node),
        }
    }
    Ok(())
}

/// The outputs of `node` from constant inputs, or None when the op is not folded here.
fn fold_node(node: &Node, graph: &Graph) -> Result<Option<Vec<TensorData>>> {
    let input = |i: usize| node.input(i).map(|name| &graph.constants[name]);
    let ints = |i: usize| -> Result<Option<Vec<i64>>> {
        input(i)
            .map(|t| {
                t.to_i64s()
                    .ok_or_else(|| node.error(format!("input {i} must hold integers, not {}", t.dtype())))
            })
            .transpose()
    };
    let Some(data) = input(0) else { return Ok(None) };
    let bad = |message: String| node.error(message);
    let folded = match node.op_type.as_str() {
        "Identity" => data.clone(),
        "Reshape" => {
            let target = ints(1)?.ok_or_else(|| node.error("has no shape input"))?;
            let allow_zero = node.attr_int("allowzero")?.unwrap_or(0) != 0;
            let dims = shape::reshape(data.dims(), &target, allow_zero).map_err(bad)?;
            data.reshaped(dims).expect("reshape keeps the element count")
        }
        "Unsqueeze" | "Squeeze" => {
            let axes = if graph.opset < 13 {
                node.attr_ints("axes")?.map(<[i64]>::to_vec)
            } else {
                ints(1)?
            };
            let dims = if node.op_type == "Unsqueeze" {
                let axes = axes.ok_or_else(|| node.error("has no axes"))?;
                shape::unsqueeze(data.dims(), &axes)
            } else {
                shape::squeeze(data.dims(), axes.as_deref())
            }
            .map_err(bad)?;
            data.reshaped(dims).expect("squeezing keeps the element count")
        }
        "Concat" => {
            let axis = node
                .attr_int("axis")?
                .ok_or_else(|| node.attr_error("axis", "is required"))?;
            let parts: Vec<&TensorData> = (0..node.inputs.len()).filter_map(input).collect();
            concat(&parts, axis).map_err(bad)?
        }
        "Slice" => {
            let (starts, ends, axes, steps) = if graph.opset < 10 {
                let attr = |name| node.attr_ints(name).map(|v| v.map(<[i64]>::to_vec));
                (attr("starts")?, attr("ends")?, attr("axes")?, None)
            } else {
                (ints(1)?, ints(2)?, ints(3)?, ints(4)?)
            };
            let (starts, ends) = starts.zip(ends).ok_or_else(|| node.error("needs starts and ends"))?;
            let axes = shape::slice(data.dims(), &starts, &ends, axes.as_deref(), steps.as_deref()).map_err(bad)?;
            gather_strided(data, &axes, None)
        }
        "Transpose" => {
            let perm = shape::transpose_perm(data.dims().len(), node.attr_ints("perm")?).map_err(bad)?;
            let axes: Vec<SliceAxis> = data.dims().iter().map(|&d| SliceAxis::whole(d)).collect();
            gather_strided(data, &axes, Some(&perm))
        }
        "Cast" => {
            let to = node
                .attr_int("to")?
                .ok_or_else(|| node.attr_error("to", "is required"))?;
            let to = DataType::from_onnx(to as i32)
                .ok_or_else(|| node.attr_error("to", format!("element type {to} is not supported")))?;
            match cast(data, to) {
                Some(t) => t,
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(vec![folded]))
}

fn concat(parts: &[&TensorData], axis: i64) -> Result<TensorData, String> {
    let first = parts.first().ok_or("no inputs")?;
    let rank = first.dims().len();
    let axis = shape::normalize_axis(axis, rank)?;
    let mut dims = first.dims().to_vec();
    dims[axis] = 0;
    for part in parts {
        let same_rest = part.dims().len() == rank
            && part.dtype() == first.dtype()
            && (0..rank).all(|i| i == axis || part.dims()[i] == first.dims()[i]);
        if !same_rest {
            return Err(format!(
                "cannot concatenate {:?} with {:?} on axis {axis}",
                first.dims(),
                part.dims()
            ));
        }
        dims[axis] += part.dims()[axis];
    }
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product::<usize>() * first.dtype().size();
    let mut bytes = Vec::with_capacity(dims.iter().product::<usize>() * first.dtype().size());
    for o in 0..outer {
        for part in parts {
            let block = part.dims()[axis] * inner;
            bytes.extend_from_slice(&part.bytes()[o * block..(o + 1) * block]);
        }
    }
    Ok(TensorData::from_bytes(first.dtype(), dims, bytes).expect("concatenated sizes add up"))
}

/// Copies the elements selected by `axes` (one per input axis), with output axes permuted by `perm`.
fn gather_strided(data: &TensorData, axes: &[SliceAxis], perm: Option<&[usize]>) -> TensorData {
    let rank = axes.len();
    let width = data.dtype().size();
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * data.dims()[i + 1];
    }
    let order: Vec<usize> = perm.map_or_else(|| (0..rank).collect(), <[usize]>::to_vec);
    let out_dims: Vec<usize> = order.iter().map(|&a| axes[a].len).collect();
    let count: usize = out_dims.iter().product();
    let mut bytes = Vec::with_capacity(count * width);
    let mut index = vec![0usize; rank];
    for _ in 0..count {
        let offset: i64 = order
            .iter()
            .zip(&index)
            .map(|(&a, &i)| (axes[a].start + axes[a].step * i as i64) * strides[a] as i64)
            .sum();
        let offset = offset as usize * width;
        bytes.extend_from_slice(&data.bytes()[offset..offset + width]);
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < out_dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    TensorData::from_bytes(data.dtype(), out_dims, bytes).expect("gathered sizes add up")
}

/// Casts between float, double, the integer types and bool as ONNX does (float to int truncates toward
/// zero); None for other pairs, which then stay in the graph.
fn cast(data: &TensorData, to: DataType) -> Option<TensorData> {
    let values: Vec<f64> = match data.dtype() {
        DataType::Float => data.values::<f32>()?.into_iter().map(f64::from).collect(),
        DataType::Double => data.values::<f64>()?,
        _ => data.to_i64s()?.into_iter().map(|v| v as f64).collect(),
    };
    let dims = data.dims().to_vec();
    match to {
        DataType::Float => TensorData::from_values(dims, &values.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        DataType::Double => TensorData::from_values(dims, &values),
        DataType::Int64 => TensorData::from_values(dims, &values.iter().map(|&v| v.trunc() as i64).collect::<Vec<_>>()),
        DataType::Int32 => TensorData::from_values(dims, &values.iter().map(|&v| v.trunc() as i32).collect::<Vec<_>>()),
        DataType::Bool => TensorData::from_bytes(
            DataType::Bool,
            dims,
            values.iter().map(|&v| u8::from(v != 0.0)).collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(dims: Vec<usize>) -> TensorData {
        let n: usize = dims.iter().product();
        TensorData::from_values(dims, &(0..n as i64).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn concat_interleaves_blocks_along_the_axis() {
        let a = ramp(vec![2, 2]);
        let b = TensorData::from_values(vec![2, 1], &[10i64, 11]).unwrap();
        let c = concat(&[&a, &b], -1).unwrap();
        assert_eq!(c.dims(), [2, 3]);
        assert_eq!(c.values::<i64>().unwrap(), [0, 1, 10, 2, 3, 11]);
    }

    #[test]
    fn strided_gather_slices_and_transposes() {
        let t = ramp(vec![3, 4]);
        let axes = shape::slice(t.dims(), &[1, -1], &[3, 0], None, Some(&[1, -2])).unwrap();
        let s = gather_strided(&t, &axes, None);
        assert_eq!(s.dims(), [2, 2]);
        assert_eq!(s.values::<i64>().unwrap(), [7, 5, 11, 9]);
        let full: Vec<SliceAxis> = t.dims().iter().map(|&d| SliceAxis::whole(d)).collect();
        let tr = gather_strided(&t, &full, Some(&[1, 0]));
        assert_eq!(tr.dims(), [4, 3]);
        assert_eq!(tr.values::<i64>().unwrap()[..4], [0, 4, 8, 1]);
    }

    #[test]
    fn cast_truncates_toward_zero() {
        let t = TensorData::from_values(vec![3], &[-1.7f32, 2.9, 0.2]).unwrap();
        assert_eq!(cast(&t, DataType::Int64).unwrap().values::<i64>().unwrap(), [-1, 2, 0]);
    }
}
