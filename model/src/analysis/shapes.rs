//! Static shape inference: the shape of every non-constant tensor of a graph at given input shapes, without
//! running it, so groups, params and FLOPs can be computed where there is no libtorch (the coordinator).
//!
//! Each op of [`ops::OPS`] names its rule (`shape`), which maps its input shapes (and the attributes, as the
//! worker's kernels read them) to its output shapes. Paddle's exports compute shapes at run time
//! (Shape, then Gather, Slice, Cast, Unsqueeze, Concat and arithmetic, into Reshape, Resize, Expand or
//! Tile), so the *values* of small tensors are propagated too: a Shape's output is known from its input's
//! shape, and the ops that constant folding evaluates ([`fold::evaluate`]) carry known values on.

use std::collections::HashMap;

use crate::error::{ModelError, Result};
use crate::fold;
use crate::ir::{Dim, Graph, Node, TensorData, ValueInfo};
use crate::ops::window::{self, Window};
use crate::ops::{self, Fold, shape};

/// Values are propagated for tensors of at most this many elements: shape arithmetic, not activations.
const MAX_VALUE_LEN: usize = 1024;

/// The shape of every non-constant tensor of `graph` (graph inputs included), by name, when its inputs
/// have the shapes `inputs` (one per graph input, in order).
///
/// # Errors
/// An unsupported op; input shapes that do not fit the graph's inputs as declared; a node whose output
/// shape cannot be determined (a shape input whose value depends on the data) or whose input shapes do not
/// fit it, named with its op.
pub fn infer(graph: &Graph, inputs: &[Vec<usize>]) -> Result<HashMap<String, Vec<usize>>> {
    ops::check_supported(graph)?;
    if inputs.len() != graph.inputs.len() {
        return Err(ModelError::Invalid(format!(
            "the model takes {} input(s), got {} input shape(s)",
            graph.inputs.len(),
            inputs.len()
        )));
    }
    let mut known = Known {
        graph,
        tensors: HashMap::new(),
    };
    for (info, dims) in graph.inputs.iter().zip(inputs) {
        check_declared(info, dims)?;
        known.tensors.insert(
            info.name.clone(),
            Tensor {
                dims: dims.clone(),
                value: None,
            },
        );
    }
    for node in &graph.nodes {
        let shapes = (ops::op_of(node)?.shape)(&known, node)?;
        if let Some((i, name)) = node
            .outputs
            .iter()
            .enumerate()
            .skip(shapes.len())
            .find(|(_, name)| !name.is_empty())
        {
            return Err(node.error(format!("output {i} ('{name}') is not supported")));
        }
        let value = known.value(node, &shapes)?;
        for (name, dims) in node.outputs.iter().zip(shapes) {
            if !name.is_empty() {
                known.tensors.insert(name.clone(), Tensor { dims, value: None });
            }
        }
        // An unnamed output (ONNX's way to leave an optional output out) is read by no one: its value goes too.
        if let Some(value) = value
            && let Some(first) = node.outputs.first().and_then(|name| known.tensors.get_mut(name))
        {
            first.value = Some(value);
        }
    }
    Ok(known.tensors.into_iter().map(|(name, t)| (name, t.dims)).collect())
}

/// Refuses input shapes that contradict what the file declares: another rank, or another size where the
/// size is fixed.
fn check_declared(info: &ValueInfo, dims: &[usize]) -> Result<()> {
    let Some(declared) = info.fact.as_ref().and_then(|f| f.shape.as_ref()) else {
        return Ok(());
    };
    let fits = declared.len() == dims.len()
        && declared
            .iter()
            .zip(dims)
            .all(|(d, &size)| !matches!(d, Dim::Known(k) if *k != size));
    if fits {
        return Ok(());
    }
    let declared: Vec<String> = declared.iter().map(Dim::to_string).collect();
    Err(ModelError::Tensor {
        tensor: info.name.clone(),
        message: format!(
            "the input shape {dims:?} does not fit the declared [{}]",
            declared.join(", ")
        ),
    })
}

/// What is known of one non-constant tensor.
struct Tensor {
    dims: Vec<usize>,
    /// The values, when they follow from the input shapes alone.
    value: Option<TensorData>,
}

/// The tensors inferred so far.
pub(crate) struct Known<'a> {
    graph: &'a Graph,
    tensors: HashMap<String, Tensor>,
}

impl Known<'_> {
    /// The shape of input `index` of `node`, None when the input is absent.
    fn optional_dims(&self, node: &Node, index: usize) -> Result<Option<&[usize]>> {
        let Some(name) = node.input(index) else { return Ok(None) };
        if let Some(c) = self.graph.constants.get(name) {
            return Ok(Some(c.dims()));
        }
        match self.tensors.get(name) {
            Some(t) => Ok(Some(&t.dims)),
            None => Err(node.error(format!("input {index} ('{name}') is produced by no earlier node"))),
        }
    }

    /// The shape of input `index` of `node`.
    fn dims(&self, node: &Node, index: usize) -> Result<&[usize]> {
        self.optional_dims(node, index)?
            .ok_or_else(|| node.error(format!("input {index} is required")))
    }

    /// The value of the tensor `name`, when known.
    fn value_of(&self, name: &str) -> Option<&TensorData> {
        self.graph
            .constants
            .get(name)
            .or_else(|| self.tensors.get(name).and_then(|t| t.value.as_ref()))
    }

    /// The value of input `index`, None when the input is absent.
    fn optional_value(&self, node: &Node, index: usize) -> Result<Option<&TensorData>> {
        let Some(name) = node.input(index) else { return Ok(None) };
        self.value_of(name).map(Some).ok_or_else(|| {
            node.error(format!(
                "input {index} ('{name}') decides the output shape, and its value is not known before running"
            ))
        })
    }

    /// The integer values of input `index`, None when the input is absent.
    fn ints(&self, node: &Node, index: usize) -> Result<Option<Vec<i64>>> {
        self.optional_value(node, index)?
            .map(|t| {
                t.to_i64s()
                    .ok_or_else(|| node.error(format!("input {index} must hold integers, not {}", t.dtype())))
            })
            .transpose()
    }

    /// The integer values of input `index`, which must be present.
    fn required_ints(&self, node: &Node, index: usize) -> Result<Vec<i64>> {
        self.ints(node, index)?
            .ok_or_else(|| node.error(format!("input {index} is required")))
    }

    /// The integers of input `index` from opset `since` on, else of the attribute `attr`.
    fn ints_arg(&self, node: &Node, attr: &str, index: usize, since: i64) -> Result<Option<Vec<i64>>> {
        if self.graph.opset >= since {
            self.ints(node, index)
        } else {
            Ok(node.attr_ints(attr)?.map(<[i64]>::to_vec))
        }
    }

    /// The value of `node`'s single output, when it follows from known values and is small.
    fn value(&self, node: &Node, shapes: &[Vec<usize>]) -> Result<Option<TensorData>> {
        let [dims] = shapes else { return Ok(None) };
        if dims.iter().product::<usize>() > MAX_VALUE_LEN {
            return Ok(None);
        }
        let fold = ops::op_of(node)?.fold;
        if let Fold::InputShape = fold {
            let input = self.dims(node, 0)?;
            let sizes: Vec<i64> = input[shape_range(node, input.len())?]
                .iter()
                .map(|&d| d as i64)
                .collect();
            return Ok(TensorData::from_values(vec![sizes.len()], &sizes));
        }
        let values: Vec<Option<&TensorData>> = node
            .inputs
            .iter()
            .map(|name| (!name.is_empty()).then(|| self.value_of(name)).flatten())
            .collect();
        let all_known = node
            .inputs
            .iter()
            .zip(&values)
            .all(|(name, value)| name.is_empty() || value.is_some());
        if !all_known {
            return Ok(None);
        }
        let Some(value) = fold::evaluate(fold, node, self.graph.opset, &values)? else {
            return Ok(None);
        };
        if value.dims() != dims.as_slice() {
            return Err(node.error(format!(
                "the shape rule gives {dims:?} but the values come out {:?}",
                value.dims()
            )));
        }
        Ok(Some(value))
    }
}

/// The output shapes of one node: each op's entry in the op table names its rule ([`ops::Op`]).
pub(crate) type Rule = fn(&Known, &Node) -> Result<Vec<Vec<usize>>>;

pub(crate) fn same_shape(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    Ok(vec![k.dims(node, 0)?.to_vec()])
}

pub(crate) fn broadcast(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let out = shape::broadcast(k.dims(node, 0)?, k.dims(node, 1)?).map_err(|e| node.error(e))?;
    Ok(vec![out])
}

/// An N, C, spatial... input: its shape and spatial sizes.
fn image<'k>(k: &'k Known, node: &Node) -> Result<(&'k [usize], &'k [usize])> {
    let x = k.dims(node, 0)?;
    if x.len() < 3 {
        return Err(node.error(format!("input {x:?} has no spatial axes")));
    }
    Ok((x, &x[2..]))
}

pub(crate) fn pool(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let (x, spatial) = image(k, node)?;
    let window = Window::read(node)?;
    let kernel = window
        .kernel_shape
        .clone()
        .ok_or_else(|| node.attr_error("kernel_shape", "is required"))?;
    let ceil_mode = node.attr_int("ceil_mode")?.unwrap_or(0) != 0;
    let resolved = window.resolve(spatial, &kernel).map_err(|e| node.error(e))?;
    let out = window::pool_output(spatial, &kernel, &resolved, ceil_mode).map_err(|e| node.error(e))?;
    Ok(vec![[&x[..2], &out[..]].concat()])
}

pub(crate) fn global_average_pool(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let (x, spatial) = image(k, node)?;
    Ok(vec![[&x[..2], &vec![1; spatial.len()][..]].concat()])
}

/// Conv's or ConvTranspose's input and weight shapes and group count, checked against each other.
struct ConvOperands<'k> {
    x: &'k [usize],
    w: &'k [usize],
    group: usize,
}

impl<'k> ConvOperands<'k> {
    fn read(k: &'k Known, node: &Node) -> Result<Self> {
        let (x, _) = image(k, node)?;
        let w = k.dims(node, 1)?;
        if w.len() != x.len() {
            return Err(node.error(format!("the weight {w:?} does not fit the input {x:?}")));
        }
        let group = match node.attr_int("group")?.unwrap_or(1) {
            g if g > 0 => g as usize,
            g => return Err(node.attr_error("group", format!("expected > 0, got {g}"))),
        };
        if let Some(declared) = node.attr_ints("kernel_shape")?
            && !declared.iter().map(|&d| d as usize).eq(w[2..].iter().copied())
        {
            return Err(node.attr_error(
                "kernel_shape",
                format!("{declared:?} does not match the weight's {:?}", &w[2..]),
            ));
        }
        Ok(Self { x, w, group })
    }
}

pub(crate) fn conv(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let ConvOperands { x, w, group } = ConvOperands::read(k, node)?;
    if x[1] != w[1] * group {
        return Err(node.error(format!(
            "the input has {} channels, the weight {w:?} in {group} group(s) takes {}",
            x[1],
            w[1] * group
        )));
    }
    let kernel = &w[2..];
    let resolved = Window::read(node)?
        .resolve(&x[2..], kernel)
        .map_err(|e| node.error(e))?;
    let spatial = window::conv_output(&x[2..], kernel, &resolved).map_err(|e| node.error(e))?;
    Ok(vec![[&[x[0], w[0]][..], &spatial].concat()])
}

pub(crate) fn conv_transpose(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let ConvOperands { x, w, group } = ConvOperands::read(k, node)?;
    let kernel = &w[2..];
    if x[1] != w[0] {
        return Err(node.error(format!(
            "the input has {} channels, the weight {w:?} takes {}",
            x[1], w[0]
        )));
    }
    let n = kernel.len();
    let spatial = if let Some(output_shape) = node.attr_ints("output_shape")? {
        if output_shape.len() < n || output_shape.iter().any(|&d| d < 1) {
            return Err(node.attr_error("output_shape", format!("{output_shape:?} for {n} spatial axes")));
        }
        output_shape[output_shape.len() - n..]
            .iter()
            .map(|&d| d as usize)
            .collect()
    } else {
        let window = Window::read(node)?;
        let resolved = window.resolve(&x[2..], kernel).map_err(|e| node.error(e))?;
        let output_padding: Vec<usize> = match node.attr_ints("output_padding")? {
            Some(p) if p.len() == n && p.iter().all(|&v| v >= 0) => p.iter().map(|&v| v as usize).collect(),
            Some(p) => return Err(node.attr_error("output_padding", format!("{p:?} for {n} spatial axes"))),
            None => vec![0; n],
        };
        window::conv_transpose_output(&x[2..], kernel, &resolved, &output_padding, window.is_same())
            .map_err(|e| node.error(e))?
    };
    Ok(vec![[&[x[0], w[1] * group][..], &spatial].concat()])
}

pub(crate) fn gemm(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let (a, b) = (k.dims(node, 0)?, k.dims(node, 1)?);
    let [a0, a1] = a else {
        return Err(node.error(format!("A {a:?} is not a matrix")));
    };
    let [b0, b1] = b else {
        return Err(node.error(format!("B {b:?} is not a matrix")));
    };
    let (m, ka) = if node.attr_int("transA")?.unwrap_or(0) != 0 {
        (*a1, *a0)
    } else {
        (*a0, *a1)
    };
    let (kb, n) = if node.attr_int("transB")?.unwrap_or(0) != 0 {
        (*b1, *b0)
    } else {
        (*b0, *b1)
    };
    if ka != kb {
        return Err(node.error(format!("A {a:?} and B {b:?} do not multiply")));
    }
    if let Some(c) = k.optional_dims(node, 2)?
        && shape::broadcast(c, &[m, n]).ok().as_deref() != Some(&[m, n][..])
    {
        return Err(node.error(format!("C {c:?} does not broadcast to [{m}, {n}]")));
    }
    Ok(vec![vec![m, n]])
}

/// numpy's matmul: 1-D operands gain an axis that the result drops again, the batch axes broadcast.
pub(crate) fn matmul(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let (a, b) = (k.dims(node, 0)?, k.dims(node, 1)?);
    if a.is_empty() || b.is_empty() {
        return Err(node.error("a scalar operand"));
    }
    let a2 = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2 = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, ka) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if ka != kb {
        return Err(node.error(format!("{a:?} and {b:?} do not multiply")));
    }
    let mut out = shape::broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2]).map_err(|e| node.error(e))?;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(vec![out])
}

pub(crate) fn reduce_mean(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let x = k.dims(node, 0)?;
    // From opset 18 the axes are an optional input; the worker reads the input whenever it is there.
    let axes = match k.ints(node, 1)? {
        Some(axes) => Some(axes),
        None if k.graph.opset < 18 => node.attr_ints("axes")?.map(<[i64]>::to_vec),
        None => None,
    };
    let keepdims = node.attr_int("keepdims")?.unwrap_or(1) != 0;
    let axes: Vec<usize> = match axes {
        Some(axes) if !axes.is_empty() => axes
            .iter()
            .map(|&a| shape::normalize_axis(a, x.len()))
            .collect::<Result<_, _>>()
            .map_err(|e| node.error(e))?,
        _ if node.attr_int("noop_with_empty_axes")?.unwrap_or(0) != 0 => return Ok(vec![x.to_vec()]),
        _ => (0..x.len()).collect(),
    };
    let out = x
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| match axes.contains(&i) {
            false => Some(d),
            true if keepdims => Some(1),
            true => None,
        })
        .collect();
    Ok(vec![out])
}

pub(crate) fn reshape(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let target = k.required_ints(node, 1)?;
    let allow_zero = node.attr_int("allowzero")?.unwrap_or(0) != 0;
    let out = shape::reshape(k.dims(node, 0)?, &target, allow_zero).map_err(|e| node.error(e))?;
    Ok(vec![out])
}

pub(crate) fn flatten(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let axis = node.attr_int("axis")?.unwrap_or(1);
    let out = shape::flatten(k.dims(node, 0)?, axis).map_err(|e| node.error(e))?;
    Ok(vec![out.to_vec()])
}

pub(crate) fn transpose(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let x = k.dims(node, 0)?;
    let perm = shape::transpose_perm(x.len(), node.attr_ints("perm")?).map_err(|e| node.error(e))?;
    Ok(vec![perm.iter().map(|&p| x[p]).collect()])
}

pub(crate) fn squeeze(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let axes = k.ints_arg(node, "axes", 1, 13)?;
    let out = shape::squeeze(k.dims(node, 0)?, axes.as_deref()).map_err(|e| node.error(e))?;
    Ok(vec![out])
}

pub(crate) fn unsqueeze(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let axes = k
        .ints_arg(node, "axes", 1, 13)?
        .ok_or_else(|| node.error("has no axes"))?;
    let out = shape::unsqueeze(k.dims(node, 0)?, &axes).map_err(|e| node.error(e))?;
    Ok(vec![out])
}

pub(crate) fn concat(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let axis = node
        .attr_int("axis")?
        .ok_or_else(|| node.attr_error("axis", "is required"))?;
    let parts = (0..node.inputs.len())
        .filter_map(|i| k.optional_dims(node, i).transpose())
        .collect::<Result<Vec<_>>>()?;
    let first = *parts.first().ok_or_else(|| node.error("has no inputs"))?;
    let axis = shape::normalize_axis(axis, first.len()).map_err(|e| node.error(e))?;
    let mut out = first.to_vec();
    out[axis] = 0;
    for part in &parts {
        let fits = part.len() == first.len() && (0..first.len()).all(|i| i == axis || part[i] == first[i]);
        if !fits {
            return Err(node.error(format!("cannot concatenate {first:?} with {part:?} on axis {axis}")));
        }
        out[axis] += part[axis];
    }
    Ok(vec![out])
}

pub(crate) fn split(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let x = k.dims(node, 0)?;
    let axis = shape::normalize_axis(node.attr_int("axis")?.unwrap_or(0), x.len()).map_err(|e| node.error(e))?;
    let (len, outputs) = (x[axis], node.outputs.len());
    let sizes: Vec<usize> = match k.ints_arg(node, "split", 1, 13)? {
        Some(sizes) if sizes.iter().all(|&s| s >= 0) => sizes.iter().map(|&s| s as usize).collect(),
        Some(sizes) => return Err(node.error(format!("negative split sizes {sizes:?}"))),
        // Equal parts, the last one smaller when the axis does not divide (opset 18's num_outputs).
        None => {
            let part = len.div_ceil(outputs.max(1));
            (0..outputs).map(|i| part.min(len.saturating_sub(i * part))).collect()
        }
    };
    if sizes.iter().sum::<usize>() != len || sizes.len() != outputs {
        return Err(node.error(format!(
            "split sizes {sizes:?} do not divide axis {axis} of length {len} into {outputs} outputs"
        )));
    }
    Ok(sizes
        .into_iter()
        .map(|size| {
            let mut out = x.to_vec();
            out[axis] = size;
            out
        })
        .collect())
}

pub(crate) fn slice(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let x = k.dims(node, 0)?;
    let [starts, ends, axes] = [("starts", 1), ("ends", 2), ("axes", 3)].map(|(name, i)| k.ints_arg(node, name, i, 10));
    let steps = if k.graph.opset >= 10 { k.ints(node, 4)? } else { None };
    let (Some(starts), Some(ends)) = (starts?, ends?) else {
        return Err(node.error("needs starts and ends"));
    };
    let cuts = shape::slice(x, &starts, &ends, axes?.as_deref(), steps.as_deref()).map_err(|e| node.error(e))?;
    Ok(vec![cuts.iter().map(|c| c.len).collect()])
}

pub(crate) fn gather(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let (x, indices) = (k.dims(node, 0)?, k.dims(node, 1)?);
    let axis = shape::normalize_axis(node.attr_int("axis")?.unwrap_or(0), x.len()).map_err(|e| node.error(e))?;
    Ok(vec![[&x[..axis], indices, &x[axis + 1..]].concat()])
}

pub(crate) fn tile(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let x = k.dims(node, 0)?;
    let repeats = k.required_ints(node, 1)?;
    if repeats.len() != x.len() || repeats.iter().any(|&r| r < 0) {
        return Err(node.error(format!("repeats {repeats:?} do not fit rank {}", x.len())));
    }
    Ok(vec![x.iter().zip(&repeats).map(|(&d, &r)| d * r as usize).collect()])
}

pub(crate) fn expand(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let target = k.required_ints(node, 1)?;
    let target: Vec<usize> = target
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| node.error(format!("negative size {d} in the shape {target:?}"))))
        .collect::<Result<_>>()?;
    let out = shape::broadcast(k.dims(node, 0)?, &target).map_err(|e| node.error(e))?;
    Ok(vec![out])
}

/// The axes Shape reports: `start..end`, clamped to the rank as the worker does.
fn shape_range(node: &Node, rank: usize) -> Result<std::ops::Range<usize>> {
    let rank_i = rank as i64;
    let clamp = |v: i64| if v < 0 { (v + rank_i).max(0) } else { v.min(rank_i) } as usize;
    let start = clamp(node.attr_int("start")?.unwrap_or(0));
    let end = clamp(node.attr_int("end")?.unwrap_or(rank_i));
    Ok(start..end.max(start))
}

pub(crate) fn shape_of(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let rank = k.dims(node, 0)?.len();
    Ok(vec![vec![shape_range(node, rank)?.len()]])
}

/// Output sizes from `scales` (each size floored) or `sizes`, whichever is given and not empty.
pub(crate) fn resize(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let x = k.dims(node, 0)?;
    // Resize-10 takes its scales as input 1; from opset 11 the inputs are X, roi, scales, sizes.
    let (scales_input, sizes_input) = if k.graph.opset < 11 { (1, None) } else { (2, Some(3)) };
    let given = |index: usize| -> Result<Option<&TensorData>> {
        match k.optional_dims(node, index)? {
            Some(dims) if dims.iter().product::<usize>() > 0 => k.optional_value(node, index),
            _ => Ok(None),
        }
    };
    let scales = given(scales_input)?
        .map(|t| fold::floats(t).ok_or_else(|| node.error(format!("scales must be floats, not {}", t.dtype()))))
        .transpose()?;
    let sizes = match sizes_input {
        Some(index) if given(index)?.is_some() => k.ints(node, index)?,
        _ => None,
    };
    let out = match (scales, sizes) {
        (Some(scales), None) if scales.len() == x.len() => x
            .iter()
            .zip(&scales)
            .map(|(&d, &s)| (d as f64 * s).floor().max(0.0) as usize)
            .collect(),
        (None, Some(sizes)) if sizes.len() == x.len() && sizes.iter().all(|&s| s >= 0) => {
            sizes.iter().map(|&s| s as usize).collect()
        }
        _ => {
            return Err(node.error(format!(
                "needs scales or sizes (not both), one per axis of rank {}",
                x.len()
            )));
        }
    };
    Ok(vec![out])
}

/// Y, Y_h and Y_c of an LSTM over X of [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1).
pub(crate) fn lstm(k: &Known, node: &Node) -> Result<Vec<Vec<usize>>> {
    let x = k.dims(node, 0)?;
    let [a, b, _] = x else {
        return Err(node.error(format!("X {x:?} is not [seq, batch, input]")));
    };
    let hidden = node
        .attr_int("hidden_size")?
        .filter(|&h| h > 0)
        .ok_or_else(|| node.attr_error("hidden_size", "a positive value is required"))? as usize;
    let directions = match node.attr_string("direction")?.unwrap_or("forward") {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        other => return Err(node.attr_error("direction", format!("unknown direction {other}"))),
    };
    Ok(if node.attr_int("layout")?.unwrap_or(0) == 0 {
        let (seq, batch) = (*a, *b);
        let state = vec![directions, batch, hidden];
        vec![vec![seq, directions, batch, hidden], state.clone(), state]
    } else {
        let (batch, seq) = (*a, *b);
        let state = vec![batch, directions, hidden];
        vec![vec![batch, seq, directions, hidden], state.clone(), state]
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ir::{Attr, DataType, TensorFact};

    fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<(&str, Attr)>) -> Node {
        Node {
            name: name.into(),
            op_type: op_type.into(),
            domain: String::new(),
            inputs: inputs.iter().map(|&i| i.to_owned()).collect(),
            outputs: outputs.iter().map(|&o| o.to_owned()).collect(),
            attributes: attrs.into_iter().map(|(n, a)| (n.to_owned(), a)).collect(),
        }
    }

    fn ints(values: &[i64]) -> TensorData {
        TensorData::from_values(vec![values.len()], values).unwrap()
    }

    fn zeros(dims: &[usize]) -> TensorData {
        TensorData::from_values(dims.to_vec(), &vec![0f32; dims.iter().product()]).unwrap()
    }

    /// A graph of opset 13 with one float input `x` declared as `declared`.
    fn graph(declared: Vec<Dim>, constants: Vec<(&str, TensorData)>, nodes: Vec<Node>) -> Graph {
        Graph {
            name: "g".into(),
            ir_version: 8,
            opset: 13,
            other_opsets: vec![],
            producer_name: String::new(),
            producer_version: String::new(),
            metadata: vec![],
            inputs: vec![ValueInfo {
                name: "x".into(),
                fact: Some(TensorFact {
                    dtype: DataType::Float,
                    shape: Some(declared),
                }),
            }],
            outputs: vec![],
            constants: constants.into_iter().map(|(n, t)| (n.to_owned(), t)).collect(),
            nodes,
            value_info: BTreeMap::new(),
        }
    }

    fn dynamic(rank: usize) -> Vec<Dim> {
        vec![Dim::Unknown; rank]
    }

    fn shape_of(shapes: &HashMap<String, Vec<usize>>, name: &str) -> Vec<usize> {
        shapes
            .get(name)
            .unwrap_or_else(|| panic!("no shape for {name}"))
            .clone()
    }

    #[test]
    fn a_known_value_on_an_unnamed_output_is_dropped_not_a_panic() {
        // A Shape whose one output has an empty name: its value is known, and nothing can read it.
        let g = graph(dynamic(4), vec![], vec![node("Shape", "s", &["x"], &[""], vec![])]);
        let shapes = infer(&g, &[vec![1, 3, 8, 8]]).unwrap();
        assert!(!shapes.contains_key(""), "{shapes:?}");
        assert_eq!(shape_of(&shapes, "x"), [1, 3, 8, 8]);
    }

    #[test]
    fn convs_pad_as_auto_pad_says_and_pools_round_as_ceil_mode_says() {
        let g = graph(
            dynamic(4),
            vec![
                ("w", zeros(&[8, 3, 3, 3])),
                ("dw", zeros(&[8, 1, 3, 3])),
                ("t", zeros(&[8, 4, 2, 2])),
            ],
            vec![
                node(
                    "Conv",
                    "same",
                    &["x", "w"],
                    &["a"],
                    vec![
                        ("auto_pad", Attr::String("SAME_UPPER".into())),
                        ("strides", Attr::Ints(vec![2, 2])),
                    ],
                ),
                node(
                    "Conv",
                    "depthwise",
                    &["a", "dw"],
                    &["b"],
                    vec![("group", Attr::Int(8)), ("pads", Attr::Ints(vec![0, 1, 2, 1]))],
                ),
                node(
                    "MaxPool",
                    "ceil",
                    &["b", ""],
                    &["c"],
                    vec![
                        ("kernel_shape", Attr::Ints(vec![2, 2])),
                        ("strides", Attr::Ints(vec![2, 2])),
                        ("ceil_mode", Attr::Int(1)),
                    ],
                ),
                node(
                    "AveragePool",
                    "floor",
                    &["b"],
                    &["d"],
                    vec![
                        ("kernel_shape", Attr::Ints(vec![3, 3])),
                        ("strides", Attr::Ints(vec![2, 2])),
                        ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                    ],
                ),
                node(
                    "ConvTranspose",
                    "up",
                    &["c", "t"],
                    &["e"],
                    vec![
                        ("strides", Attr::Ints(vec![2, 2])),
                        ("pads", Attr::Ints(vec![0, 0, 1, 0])),
                        ("output_padding", Attr::Ints(vec![1, 0])),
                        ("group", Attr::Int(2)),
                    ],
                ),
                node("GlobalAveragePool", "gap", &["e"], &["f"], vec![]),
            ],
        );
        let shapes = infer(&g, &[vec![2, 3, 15, 20]]).unwrap();
        // ceil(15 / 2) = 8, ceil(20 / 2) = 10.
        assert_eq!(shape_of(&shapes, "a"), [2, 8, 8, 10]);
        // (8 + 2 - 3) + 1 = 8, (10 + 2 - 3) + 1 = 10.
        assert_eq!(shape_of(&shapes, "b"), [2, 8, 8, 10]);
        // ceil((8 - 2) / 2) + 1 = 4, ceil((10 - 2) / 2) + 1 = 5.
        assert_eq!(shape_of(&shapes, "c"), [2, 8, 4, 5]);
        // (8 + 2 - 3) / 2 + 1 = 4, (10 + 2 - 3) / 2 + 1 = 5.
        assert_eq!(shape_of(&shapes, "d"), [2, 8, 4, 5]);
        // 2 * 3 + 1 + 2 - 1 = 8, 2 * 4 + 0 + 2 - 0 = 10; 4 * 2 groups = 8 channels.
        assert_eq!(shape_of(&shapes, "e"), [2, 8, 8, 10]);
        assert_eq!(shape_of(&shapes, "f"), [2, 8, 1, 1]);
        assert_eq!(shape_of(&shapes, "x"), [2, 3, 15, 20]);

        let err = infer(&g, &[vec![2, 4, 15, 20]]).unwrap_err().to_string();
        assert_eq!(
            err,
            "node 'same' (Conv): the input has 4 channels, the weight [8, 3, 3, 3] in 1 group(s) takes 3"
        );
    }

    #[test]
    fn resize_takes_scales_or_sizes_computed_from_the_input_shape() {
        let g = graph(
            dynamic(4),
            vec![
                ("roi", TensorData::from_values::<f32>(vec![0], &[]).unwrap()),
                ("none", TensorData::from_values::<f32>(vec![0], &[]).unwrap()),
                (
                    "scales",
                    TensorData::from_values(vec![4], &[1f32, 1.0, 2.0, 1.5]).unwrap(),
                ),
                ("from", ints(&[0])),
                ("to", ints(&[2])),
                ("hw", ints(&[9, 7])),
            ],
            vec![
                node("Resize", "by_scales", &["x", "roi", "scales"], &["a"], vec![]),
                node("Shape", "shape", &["a"], &["s"], vec![]),
                node("Slice", "nc", &["s", "from", "to"], &["nc"], vec![]),
                node(
                    "Concat",
                    "sizes",
                    &["nc", "hw"],
                    &["sizes"],
                    vec![("axis", Attr::Int(0))],
                ),
                node("Resize", "by_sizes", &["a", "roi", "none", "sizes"], &["b"], vec![]),
            ],
        );
        let shapes = infer(&g, &[vec![1, 4, 5, 5]]).unwrap();
        // 5 * 1.5 = 7.5 floors to 7.
        assert_eq!(shape_of(&shapes, "a"), [1, 4, 10, 7]);
        assert_eq!(shape_of(&shapes, "sizes"), [4]);
        assert_eq!(shape_of(&shapes, "b"), [1, 4, 9, 7]);
    }

    #[test]
    fn slices_clamp_large_and_negative_bounds_and_step_backwards() {
        let g = graph(
            dynamic(3),
            vec![
                ("starts", ints(&[-3, i64::MAX, 1])),
                ("ends", ints(&[i64::MAX, i64::MIN, -1])),
                ("axes", ints(&[2, 0, -2])),
                ("steps", ints(&[1, -2, 3])),
            ],
            vec![node(
                "Slice",
                "cut",
                &["x", "starts", "ends", "axes", "steps"],
                &["y"],
                vec![],
            )],
        );
        let shapes = infer(&g, &[vec![5, 10, 4]]).unwrap();
        // Axis 0 backwards from the end by 2: 4, 2, 0; axis 1 from 1 to 9 by 3: 1, 4, 7; axis 2 the last 3.
        assert_eq!(shape_of(&shapes, "y"), [3, 3, 3]);
    }

    #[test]
    fn reshape_targets_built_from_the_input_shape_are_evaluated() {
        // Paddle's flatten: [N, C * H * W] from Shape -> Gather -> Unsqueeze -> Concat, with arithmetic.
        let g = graph(
            vec![Dim::Symbolic("batch".into()), Dim::Known(2), Dim::Unknown, Dim::Unknown],
            vec![
                ("zero", TensorData::from_values(vec![], &[0i64]).unwrap()),
                ("hw", ints(&[2, 3])),
                ("two", TensorData::from_values(vec![], &[2i64]).unwrap()),
                ("minus_one", ints(&[-1])),
                ("axes", ints(&[0])),
            ],
            vec![
                node("Shape", "shape", &["x"], &["s"], vec![]),
                node("Gather", "batch", &["s", "zero"], &["n"], vec![]),
                node("Unsqueeze", "n1", &["n", "axes"], &["n_1"], vec![]),
                node("Gather", "spatial", &["s", "hw"], &["h_w"], vec![]),
                node("Div", "halve", &["h_w", "two"], &["half"], vec![]),
                node(
                    "Concat",
                    "target",
                    &["n_1", "minus_one", "half"],
                    &["t"],
                    vec![("axis", Attr::Int(0))],
                ),
                node("Reshape", "flat", &["x", "t"], &["y"], vec![]),
                node("Shape", "tail", &["y"], &["last"], vec![("start", Attr::Int(-1))]),
                node("Cast", "as_float", &["last"], &["last_f"], vec![("to", Attr::Int(1))]),
                node("Tile", "tile", &["y", "s"], &["z"], vec![]),
            ],
        );
        let shapes = infer(&g, &[vec![3, 2, 4, 6]]).unwrap();
        // [3, -1, 2, 3]: 3 * 2 * 4 * 6 / (3 * 2 * 3) = 8.
        assert_eq!(shape_of(&shapes, "t"), [4]);
        assert_eq!(shape_of(&shapes, "y"), [3, 8, 2, 3]);
        assert_eq!(shape_of(&shapes, "last_f"), [1]);
        assert_eq!(shape_of(&shapes, "z"), [9, 16, 8, 18]);
        // The input and every computed tensor, no constants.
        assert!(!shapes.contains_key("hw"));
        assert_eq!(shapes.len(), 11);

        let err = infer(&g, &[vec![3, 5, 4, 6]]).unwrap_err().to_string();
        assert_eq!(
            err,
            "tensor 'x': the input shape [3, 5, 4, 6] does not fit the declared [batch, 2, ?, ?]"
        );
    }

    #[test]
    fn shapes_that_depend_on_data_are_refused_naming_the_node() {
        let g = graph(
            dynamic(2),
            vec![],
            vec![
                node("Cast", "to_int", &["x"], &["i"], vec![("to", Attr::Int(7))]),
                node("Reshape", "by_data", &["x", "i"], &["y"], vec![]),
            ],
        );
        // The 1 x 2 input is too small to be skipped as an activation: its values are still unknown.
        let err = infer(&g, &[vec![1, 2]]).unwrap_err().to_string();
        assert_eq!(
            err,
            "node 'by_data' (Reshape): input 1 ('i') decides the output shape, and its value is not known before \
             running"
        );
        let mut g = g;
        g.nodes[1].op_type = "NonZero".into();
        let err = infer(&g, &[vec![1, 2]]).unwrap_err().to_string();
        assert!(
            err.starts_with("node 'by_data' (NonZero): unsupported op (supported: "),
            "{err}"
        );
    }

    #[test]
    fn split_lstm_and_matmul_follow_onnx() {
        let g = graph(
            dynamic(3),
            vec![
                ("sizes", ints(&[2, 6])),
                ("w", zeros(&[2, 16, 8])),
                ("r", zeros(&[2, 16, 4])),
                ("m", zeros(&[4, 5])),
                ("v", zeros(&[4])),
            ],
            vec![
                node(
                    "Split",
                    "split",
                    &["x", "sizes"],
                    &["a", "b"],
                    vec![("axis", Attr::Int(-1))],
                ),
                node(
                    "Split",
                    "halves",
                    &["x"],
                    &["h0", "h1", "h2"],
                    vec![("axis", Attr::Int(2))],
                ),
                node(
                    "LSTM",
                    "lstm",
                    &["b", "w", "r"],
                    &["y", "", "c"],
                    vec![
                        ("hidden_size", Attr::Int(4)),
                        ("direction", Attr::String("bidirectional".into())),
                    ],
                ),
                node("MatMul", "mm", &["y", "m"], &["p"], vec![]),
                node("MatMul", "mv", &["y", "v"], &["q"], vec![]),
                node(
                    "ReduceMean",
                    "mean",
                    &["p"],
                    &["r1"],
                    vec![("axes", Attr::Ints(vec![1, -1])), ("keepdims", Attr::Int(0))],
                ),
            ],
        );
        let mut g = g;
        g.opset = 17;
        let shapes = infer(&g, &[vec![7, 3, 8]]).unwrap();
        assert_eq!(shape_of(&shapes, "a"), [7, 3, 2]);
        assert_eq!(shape_of(&shapes, "b"), [7, 3, 6]);
        // 8 in three parts: 3, 3 and what is left.
        assert_eq!(
            ["h0", "h1", "h2"].map(|n| shape_of(&shapes, n)),
            [[7, 3, 3], [7, 3, 3], [7, 3, 2]]
        );
        assert!(infer(&g, &[vec![7, 3, 6]]).is_err(), "the split sizes no longer add up");
        let shapes = infer(&g, &[vec![7, 3, 8]]).unwrap();
        assert_eq!(shape_of(&shapes, "y"), [7, 2, 3, 4]);
        assert_eq!(shape_of(&shapes, "c"), [2, 3, 4]);
        assert!(!shapes.contains_key(""));
        assert_eq!(shape_of(&shapes, "p"), [7, 2, 3, 5]);
        assert_eq!(shape_of(&shapes, "q"), [7, 2, 3]);
        assert_eq!(shape_of(&shapes, "r1"), [7, 3]);
    }
}
