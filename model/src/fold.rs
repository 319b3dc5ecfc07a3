//! Constant evaluation: the values of ops whose inputs are all known. At load, the nodes of ops that move or
//! convert values ([`Fold::AtLoad`] in the op table) whose inputs are all constants are replaced by their
//! results, so weights that Paddle builds through Reshape, Concat and Slice (conv-bias shapes, the LSTM
//! weights of PP-OCRv2 rec) are plain constants in the IR; arithmetic ([`Fold::ValuesOnly`]) stays in the
//! graph and runs in the worker. Static shape inference (`analysis::shapes`) evaluates the run-time shape
//! arithmetic of Paddle's exports (Shape, then Gather, Slice, Concat, Add, ...) with the same [`evaluate`].
//! Which op folds how is its entry's `fold`; the functions here are the evaluations the entries name.

use crate::error::Result;
use crate::ir::{DataType, Graph, Node, TensorData};
use crate::ops::shape::{self, SliceAxis};
use crate::ops::{self, Fold};

/// Folds every node whose op folds at load and whose inputs are all constants, in topological order, so
/// chains fold completely. Nodes of ops outside the op table stay, for `ops::check_supported` to name.
pub(crate) fn fold_constants(graph: &mut Graph) -> Result<()> {
    let nodes = std::mem::take(&mut graph.nodes);
    for node in nodes {
        let at_load = ops::describe(&node)
            .map(|op| op.fold)
            .filter(|fold| matches!(fold, Fold::AtLoad(_)));
        let value = match at_load {
            Some(fold)
                if !node.inputs.is_empty()
                    && node
                        .inputs
                        .iter()
                        .all(|i| i.is_empty() || graph.constants.contains_key(i)) =>
            {
                let inputs: Vec<Option<&TensorData>> = node.inputs.iter().map(|i| graph.constants.get(i)).collect();
                evaluate(fold, &node, graph.opset, &inputs)?
            }
            _ => None,
        };
        match (value, node.outputs.first()) {
            (Some(value), Some(output)) => {
                graph.constants.insert(output.clone(), value);
            }
            _ => graph.nodes.push(node),
        }
    }
    Ok(())
}

/// The output of `node`, whose op's entry says `fold`, from the values of its inputs (`inputs[i]` None where
/// input `i` is absent), or None when the op is not evaluated ([`Fold::Never`], [`Fold::InputShape`]), input
/// 0 is absent, or the element type is not handled.
///
/// # Errors
/// Inputs the op cannot take (shapes that do not fit, integer division by zero, an index out of range),
/// naming the node.
pub(crate) fn evaluate(
    fold: Fold,
    node: &Node,
    opset: i64,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let (Fold::AtLoad(evaluate) | Fold::ValuesOnly(evaluate)) = fold else {
        return Ok(None);
    };
    let Some(data) = inputs.first().copied().flatten() else {
        return Ok(None);
    };
    evaluate(node, opset, data, inputs)
}

/// Input `i`, None when absent.
fn input<'t>(inputs: &[Option<&'t TensorData>], i: usize) -> Option<&'t TensorData> {
    inputs.get(i).copied().flatten()
}

/// The integer values of input `i`, None when absent.
fn ints(node: &Node, inputs: &[Option<&TensorData>], i: usize) -> Result<Option<Vec<i64>>> {
    input(inputs, i)
        .map(|t| {
            t.to_i64s()
                .ok_or_else(|| node.error(format!("input {i} must hold integers, not {}", t.dtype())))
        })
        .transpose()
}

pub(crate) fn identity(_: &Node, _: i64, data: &TensorData, _: &[Option<&TensorData>]) -> Result<Option<TensorData>> {
    Ok(Some(data.clone()))
}

pub(crate) fn reshape(
    node: &Node,
    _: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let target = ints(node, inputs, 1)?.ok_or_else(|| node.error("has no shape input"))?;
    let allow_zero = node.attr_int("allowzero")?.unwrap_or(0) != 0;
    let dims = shape::reshape(data.dims(), &target, allow_zero).map_err(|m| node.error(m))?;
    Ok(Some(data.reshaped(dims).expect("reshape keeps the element count")))
}

/// Squeeze's or Unsqueeze's axes: an attribute before opset 13, an input from 13 on.
fn squeeze_axes(node: &Node, opset: i64, inputs: &[Option<&TensorData>]) -> Result<Option<Vec<i64>>> {
    if opset < 13 {
        Ok(node.attr_ints("axes")?.map(<[i64]>::to_vec))
    } else {
        ints(node, inputs, 1)
    }
}

pub(crate) fn squeeze(
    node: &Node,
    opset: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let axes = squeeze_axes(node, opset, inputs)?;
    let dims = shape::squeeze(data.dims(), axes.as_deref()).map_err(|m| node.error(m))?;
    Ok(Some(data.reshaped(dims).expect("squeezing keeps the element count")))
}

pub(crate) fn unsqueeze(
    node: &Node,
    opset: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let axes = squeeze_axes(node, opset, inputs)?.ok_or_else(|| node.error("has no axes"))?;
    let dims = shape::unsqueeze(data.dims(), &axes).map_err(|m| node.error(m))?;
    Ok(Some(data.reshaped(dims).expect("unsqueezing keeps the element count")))
}

pub(crate) fn concat(
    node: &Node,
    _: i64,
    _: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let axis = node
        .attr_int("axis")?
        .ok_or_else(|| node.attr_error("axis", "is required"))?;
    let parts: Vec<&TensorData> = (0..node.inputs.len()).filter_map(|i| input(inputs, i)).collect();
    concat_parts(&parts, axis).map(Some).map_err(|m| node.error(m))
}

pub(crate) fn slice(
    node: &Node,
    opset: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let (starts, ends, axes, steps) = if opset < 10 {
        let attr = |name| node.attr_ints(name).map(|v| v.map(<[i64]>::to_vec));
        (attr("starts")?, attr("ends")?, attr("axes")?, None)
    } else {
        let ints = |i| ints(node, inputs, i);
        (ints(1)?, ints(2)?, ints(3)?, ints(4)?)
    };
    let (starts, ends) = starts.zip(ends).ok_or_else(|| node.error("needs starts and ends"))?;
    let axes =
        shape::slice(data.dims(), &starts, &ends, axes.as_deref(), steps.as_deref()).map_err(|m| node.error(m))?;
    Ok(Some(gather_strided(data, &axes, None)))
}

pub(crate) fn transpose(
    node: &Node,
    _: i64,
    data: &TensorData,
    _: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let perm = shape::transpose_perm(data.dims().len(), node.attr_ints("perm")?).map_err(|m| node.error(m))?;
    let axes: Vec<SliceAxis> = data.dims().iter().map(|&d| SliceAxis::whole(d)).collect();
    Ok(Some(gather_strided(data, &axes, Some(&perm))))
}

pub(crate) fn cast(node: &Node, _: i64, data: &TensorData, _: &[Option<&TensorData>]) -> Result<Option<TensorData>> {
    let to = node
        .attr_int("to")?
        .ok_or_else(|| node.attr_error("to", "is required"))?;
    let to = DataType::from_onnx(to as i32)
        .ok_or_else(|| node.attr_error("to", format!("element type {to} is not supported")))?;
    Ok(cast_to(data, to))
}

pub(crate) fn gather(
    node: &Node,
    _: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let indices = input(inputs, 1).ok_or_else(|| node.error("has no indices"))?;
    let axis = node.attr_int("axis")?.unwrap_or(0);
    gather_along(data, indices, axis).map(Some).map_err(|m| node.error(m))
}

pub(crate) fn add(
    node: &Node,
    _: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    binary(node, Arithmetic::Add, data, inputs)
}

pub(crate) fn sub(
    node: &Node,
    _: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    binary(node, Arithmetic::Sub, data, inputs)
}

pub(crate) fn mul(
    node: &Node,
    _: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    binary(node, Arithmetic::Mul, data, inputs)
}

pub(crate) fn div(
    node: &Node,
    _: i64,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    binary(node, Arithmetic::Div, data, inputs)
}

fn binary(
    node: &Node,
    op: Arithmetic,
    data: &TensorData,
    inputs: &[Option<&TensorData>],
) -> Result<Option<TensorData>> {
    let other = input(inputs, 1).ok_or_else(|| node.error("input 1 is required"))?;
    arithmetic(op, data, other).map_err(|m| node.error(m))
}

/// ONNX Gather: the slices of `data` along `axis` at `indices` (negative ones count from the end), in the
/// shape `data[..axis] + indices + data[axis + 1..]`.
fn gather_along(data: &TensorData, indices: &TensorData, axis: i64) -> Result<TensorData, String> {
    let axis = shape::normalize_axis(axis, data.dims().len())?;
    let len = data.dims()[axis];
    let picked = indices
        .to_i64s()
        .ok_or_else(|| format!("indices must be integers, not {}", indices.dtype()))?
        .into_iter()
        .map(|i| {
            let at = if i < 0 { i + len as i64 } else { i };
            usize::try_from(at)
                .ok()
                .filter(|&at| at < len)
                .ok_or_else(|| format!("index {i} is out of range for axis {axis} of length {len}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut dims = data.dims()[..axis].to_vec();
    dims.extend_from_slice(indices.dims());
    dims.extend_from_slice(&data.dims()[axis + 1..]);
    Ok(data
        .select_along(axis, &picked)
        .reshaped(dims)
        .expect("gathering keeps the element count"))
}

/// For each element of a tensor of `out` dims, the flat index of the element of a tensor of `dims` that
/// numpy broadcasting reads for it.
fn broadcast_index(dims: &[usize], out: &[usize]) -> Vec<usize> {
    let offset = out.len() - dims.len();
    let mut strides = vec![0usize; out.len()];
    let mut stride = 1;
    for i in (0..dims.len()).rev() {
        strides[offset + i] = if dims[i] == 1 { 0 } else { stride };
        stride *= dims[i];
    }
    let count: usize = out.iter().product();
    let mut index = vec![0usize; out.len()];
    let mut flat = Vec::with_capacity(count);
    for _ in 0..count {
        flat.push(index.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for d in (0..out.len()).rev() {
            index[d] += 1;
            if index[d] < out[d] {
                break;
            }
            index[d] = 0;
        }
    }
    flat
}

/// The arithmetic [`arithmetic`] evaluates.
#[derive(Debug, Clone, Copy)]
enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

/// Add, Sub, Mul or Div of two tensors of one element type with numpy broadcasting, as the worker's kernels
/// compute them (integer division truncates toward zero); None for element types other than int32, int64,
/// float and double.
fn arithmetic(op: Arithmetic, a: &TensorData, b: &TensorData) -> Result<Option<TensorData>, String> {
    if a.dtype() != b.dtype() {
        return Err(format!("operands of types {} and {}", a.dtype(), b.dtype()));
    }
    let dims = shape::broadcast(a.dims(), b.dims())?;
    let pairs = broadcast_index(a.dims(), &dims)
        .into_iter()
        .zip(broadcast_index(b.dims(), &dims));
    if let (Some(x), Some(y)) = (a.to_i64s(), b.to_i64s()) {
        let values = pairs
            .map(|(i, j)| {
                let (x, y) = (x[i], y[j]);
                Ok(match op {
                    Arithmetic::Add => x.wrapping_add(y),
                    Arithmetic::Sub => x.wrapping_sub(y),
                    Arithmetic::Mul => x.wrapping_mul(y),
                    Arithmetic::Div if y == 0 => return Err("integer division by zero".to_owned()),
                    Arithmetic::Div => x.wrapping_div(y),
                })
            })
            .collect::<Result<Vec<i64>, _>>()?;
        return Ok(match a.dtype() {
            DataType::Int64 => TensorData::from_values(dims, &values),
            DataType::Int32 => TensorData::from_values(dims, &values.iter().map(|&v| v as i32).collect::<Vec<_>>()),
            _ => None,
        });
    }
    // In double: rounding a double sum, difference, product or quotient of two floats to float gives the
    // correctly rounded float result, so float tensors come out as float arithmetic gives them.
    let (Some(x), Some(y)) = (floats(a), floats(b)) else {
        return Ok(None);
    };
    let values: Vec<f64> = pairs
        .map(|(i, j)| match op {
            Arithmetic::Add => x[i] + y[j],
            Arithmetic::Sub => x[i] - y[j],
            Arithmetic::Mul => x[i] * y[j],
            Arithmetic::Div => x[i] / y[j],
        })
        .collect();
    Ok(match a.dtype() {
        DataType::Float => TensorData::from_values(dims, &values.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        _ => TensorData::from_values(dims, &values),
    })
}

/// Float or double values as f64; None for other types.
pub(crate) fn floats(t: &TensorData) -> Option<Vec<f64>> {
    match t.dtype() {
        DataType::Float => t.values::<f32>().map(|v| v.into_iter().map(f64::from).collect()),
        DataType::Double => t.values::<f64>(),
        _ => None,
    }
}

fn concat_parts(parts: &[&TensorData], axis: i64) -> Result<TensorData, String> {
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
fn cast_to(data: &TensorData, to: DataType) -> Option<TensorData> {
    let values: Vec<f64> = match floats(data) {
        Some(values) => values,
        None => data.to_i64s()?.into_iter().map(|v| v as f64).collect(),
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
        let c = concat_parts(&[&a, &b], -1).unwrap();
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
        assert_eq!(
            cast_to(&t, DataType::Int64).unwrap().values::<i64>().unwrap(),
            [-1, 2, 0]
        );
    }

    #[test]
    fn arithmetic_broadcasts_and_integer_division_truncates() {
        let a = TensorData::from_values(vec![2, 2], &[7i64, -7, 9, 4]).unwrap();
        let b = TensorData::from_values(vec![2], &[2i64, 3]).unwrap();
        let q = arithmetic(Arithmetic::Div, &a, &b).unwrap().unwrap();
        assert_eq!(
            (q.dims(), q.values::<i64>().unwrap()),
            (&[2usize, 2][..], vec![3, -2, 4, 1])
        );
        let zero = TensorData::from_values(vec![1], &[0i64]).unwrap();
        assert!(arithmetic(Arithmetic::Div, &a, &zero).is_err());
        let x = TensorData::from_values(vec![2, 1], &[1.5f32, 0.1]).unwrap();
        let y = TensorData::from_values(vec![3], &[0.2f32, 2.0, -1.0]).unwrap();
        let p = arithmetic(Arithmetic::Mul, &x, &y).unwrap().unwrap();
        assert_eq!(p.dims(), [2, 3]);
        assert_eq!(
            p.values::<f32>().unwrap(),
            [1.5f32 * 0.2, 3.0, -1.5, 0.1f32 * 0.2, 0.2, -0.1]
        );
    }

    #[test]
    fn gather_counts_negative_indices_from_the_end() {
        let shape = TensorData::from_values(vec![4], &[1i64, 3, 32, 100]).unwrap();
        let last = TensorData::from_values(vec![], &[-1i64]).unwrap();
        let g = gather_along(&shape, &last, 0).unwrap();
        assert_eq!((g.dims(), g.values::<i64>().unwrap()), (&[][..], vec![100]));
        let pair = TensorData::from_values(vec![2], &[2i64, 0]).unwrap();
        assert_eq!(
            gather_along(&shape, &pair, 0).unwrap().values::<i64>().unwrap(),
            [32, 1]
        );
        let out = TensorData::from_values(vec![1], &[4i64]).unwrap();
        assert!(gather_along(&shape, &out, 0).is_err());
    }
}
