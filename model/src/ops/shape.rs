//! Shape arithmetic of the data-movement ops (Reshape, Squeeze, Unsqueeze, Concat, Slice, Transpose,
//! Flatten, broadcasting), as the ONNX specification defines it. Errors are plain messages; callers add
//! the node.

/// Turns a possibly negative `axis` into an index below `rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let rank_i = rank as i64;
    let normalized = if axis < 0 { axis + rank_i } else { axis };
    if (0..rank_i).contains(&normalized) {
        Ok(normalized as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// The output shape of Reshape. A 0 copies the input's dimension (unless `allow_zero`), one -1 is inferred.
pub fn reshape(input: &[usize], shape: &[i64], allow_zero: bool) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut inferred = None;
    for (i, &dim) in shape.iter().enumerate() {
        match dim {
            -1 if inferred.is_some() => return Err(format!("shape {shape:?} has more than one -1")),
            -1 => {
                inferred = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *input
                    .get(i)
                    .ok_or_else(|| format!("shape {shape:?}: 0 at {i} has no input dimension"))?,
            ),
            d if d >= 0 => out.push(d as usize),
            d => return Err(format!("shape {shape:?} has the invalid entry {d}")),
        }
    }
    let known: usize = out.iter().product();
    match inferred {
        Some(i) if known > 0 && total.is_multiple_of(known) => out[i] = total / known,
        Some(_) => return Err(format!("cannot reshape {input:?} to {shape:?}")),
        None if known != total => return Err(format!("cannot reshape {input:?} ({total} elements) to {shape:?}")),
        None => {}
    }
    Ok(out)
}

/// The output shape of Unsqueeze; `axes` refer to the output's rank.
pub fn unsqueeze(input: &[usize], axes: &[i64]) -> Result<Vec<usize>, String> {
    let rank = input.len() + axes.len();
    let mut positions = axes
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    positions.sort_unstable();
    if positions.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("axes {axes:?} repeat an axis"));
    }
    let mut rest = input.iter();
    Ok((0..rank)
        .map(|i| {
            if positions.binary_search(&i).is_ok() {
                1
            } else {
                *rest.next().unwrap()
            }
        })
        .collect())
}

/// The output shape of Squeeze: the listed axes (each of size 1) removed, or every size-1 axis when none.
pub fn squeeze(input: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>, String> {
    let Some(axes) = axes else {
        return Ok(input.iter().copied().filter(|&d| d != 1).collect());
    };
    let positions = axes
        .iter()
        .map(|&a| normalize_axis(a, input.len()))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(&p) = positions.iter().find(|&&p| input[p] != 1) {
        return Err(format!("cannot squeeze axis {p} of size {} in {input:?}", input[p]));
    }
    Ok(input
        .iter()
        .enumerate()
        .filter(|(i, _)| !positions.contains(i))
        .map(|(_, &d)| d)
        .collect())
}

/// The 2-D shape Flatten produces: the dimensions before `axis` multiplied together, then those after.
pub fn flatten(input: &[usize], axis: i64) -> Result<[usize; 2], String> {
    let axis = if axis == input.len() as i64 {
        input.len()
    } else {
        normalize_axis(axis, input.len())?
    };
    Ok([input[..axis].iter().product(), input[axis..].iter().product()])
}

/// The permutation of Transpose: `perm`, or the reversed axes when absent.
pub fn transpose_perm(rank: usize, perm: Option<&[i64]>) -> Result<Vec<usize>, String> {
    let Some(perm) = perm else {
        return Ok((0..rank).rev().collect());
    };
    let out = perm
        .iter()
        .map(|&p| normalize_axis(p, rank))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = out.clone();
    seen.sort_unstable();
    if seen != (0..rank).collect::<Vec<_>>() {
        return Err(format!("perm {perm:?} is not a permutation of {rank} axes"));
    }
    Ok(out)
}

/// The output shape of multidirectional (numpy) broadcasting.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            (x, y) => Err(format!("shapes {a:?} and {b:?} do not broadcast ({x} vs {y})")),
        })
        .collect()
}

/// One axis of a Slice: the elements `start, start + step, ...`, `len` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceAxis {
    pub start: i64,
    pub step: i64,
    pub len: usize,
}

impl SliceAxis {
    /// Every element of an axis of length `len`.
    pub fn whole(len: usize) -> Self {
        Self { start: 0, step: 1, len }
    }
}

/// Resolves Slice's starts, ends, axes and steps against `input` into one [`SliceAxis`] per input axis,
/// clamping as ONNX does (ends past the end, such as INT64_MAX, mean "to the end").
pub fn slice(
    input: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Vec<SliceAxis>, String> {
    if starts.len() != ends.len() {
        return Err(format!("starts {starts:?} and ends {ends:?} differ in length"));
    }
    let mut out: Vec<SliceAxis> = input.iter().map(|&d| SliceAxis::whole(d)).collect();
    let mut done = vec![false; input.len()];
    for i in 0..starts.len() {
        let axis = match axes {
            Some(axes) => normalize_axis(*axes.get(i).ok_or("axes is shorter than starts")?, input.len())?,
            None => i,
        };
        if axis >= input.len() || std::mem::replace(&mut done[axis], true) {
            return Err(format!("axis {axis} is out of range or repeated"));
        }
        let step = steps
            .map_or(Some(1), |s| s.get(i).copied())
            .ok_or("steps is shorter than starts")?;
        if step == 0 {
            return Err("a step of 0".into());
        }
        let dim = input[axis] as i64;
        let resolve = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (start, end) = if step > 0 {
            (resolve(starts[i]).clamp(0, dim), resolve(ends[i]).clamp(0, dim))
        } else {
            (
                resolve(starts[i]).clamp(0, dim - 1),
                resolve(ends[i]).clamp(-1, dim - 1),
            )
        };
        let span = if step > 0 { end - start } else { start - end };
        let len = if span <= 0 {
            0
        } else {
            (span + step.abs() - 1) / step.abs()
        };
        out[axis] = SliceAxis {
            start,
            step,
            len: len as usize,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_copies_zero_and_infers_minus_one() {
        assert_eq!(reshape(&[2, 3, 4], &[0, -1], false).unwrap(), [2, 12]);
        assert_eq!(reshape(&[2, 3, 4], &[-1], false).unwrap(), [24]);
        assert_eq!(reshape(&[0, 3], &[0, 3], true).unwrap(), [0, 3]);
        assert!(reshape(&[2, 3], &[4, -1], false).is_err());
        assert!(reshape(&[2, 3], &[-1, -1], false).is_err());
    }

    #[test]
    fn unsqueeze_and_squeeze_use_onnx_axes() {
        assert_eq!(unsqueeze(&[3, 4], &[0, -1]).unwrap(), [1, 3, 4, 1]);
        assert_eq!(squeeze(&[1, 3, 1, 4], None).unwrap(), [3, 4]);
        assert_eq!(squeeze(&[1, 3, 1, 4], Some(&[-2])).unwrap(), [1, 3, 4]);
        assert!(squeeze(&[1, 3], Some(&[1])).is_err());
    }

    #[test]
    fn slice_clamps_and_handles_negative_steps() {
        let axes = slice(&[10, 5], &[-3, 0], &[i64::MAX, 5], None, None).unwrap();
        assert_eq!(
            axes[0],
            SliceAxis {
                start: 7,
                step: 1,
                len: 3
            }
        );
        assert_eq!(
            axes[1],
            SliceAxis {
                start: 0,
                step: 1,
                len: 5
            }
        );
        let rev = slice(&[10], &[-1], &[i64::MIN], Some(&[0]), Some(&[-2])).unwrap();
        assert_eq!(
            rev[0],
            SliceAxis {
                start: 9,
                step: -2,
                len: 5
            }
        );
        let empty = slice(&[4], &[3], &[1], None, None).unwrap();
        assert_eq!(empty[0].len, 0);
    }

    #[test]
    fn broadcast_and_flatten_follow_numpy() {
        assert_eq!(broadcast(&[2, 1, 4], &[3, 1]).unwrap(), [2, 3, 4]);
        assert!(broadcast(&[2, 3], &[4]).is_err());
        assert_eq!(flatten(&[2, 3, 4], 0).unwrap(), [1, 24]);
        assert_eq!(flatten(&[2, 3, 4], -1).unwrap(), [6, 4]);
        assert_eq!(transpose_perm(3, None).unwrap(), [2, 1, 0]);
        assert!(transpose_perm(2, Some(&[0, 0])).is_err());
    }
}
