//! The sliding-window attributes of Conv, ConvTranspose, MaxPool and AveragePool (kernel_shape, strides,
//! dilations, pads, auto_pad, ceil_mode) and the output sizes they give, as the worker's kernels compute
//! them: convolutions as ONNX defines them, pooling as libtorch's kernels do (which the worker runs).

use crate::error::Result;
use crate::ir::Node;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

/// The window attributes of one node.
#[derive(Debug, Clone)]
pub struct Window {
    pub kernel_shape: Option<Vec<usize>>,
    strides: Option<Vec<usize>>,
    dilations: Option<Vec<usize>>,
    pads: Option<Vec<usize>>,
    auto_pad: AutoPad,
}

/// Strides, dilations and the pads on each side, one entry per spatial axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub begin: Vec<usize>,
    pub end: Vec<usize>,
}

impl Resolved {
    /// Whether libtorch's pooling kernels take these pads as they are: symmetric, and at most half the kernel
    /// on every axis. The worker adds other pads to the input itself.
    pub fn fits_torch_pool(&self, kernel: &[usize]) -> bool {
        self.begin == self.end && self.begin.iter().zip(kernel).all(|(&p, &k)| 2 * p <= k)
    }
}

impl Window {
    /// Reads the attributes of `node`.
    ///
    /// # Errors
    /// An attribute of the wrong type, a negative or zero entry where ONNX forbids it, an unknown auto_pad,
    /// pads whose count is not twice kernel_shape's.
    pub fn read(node: &Node) -> Result<Self> {
        let auto_pad = match node.attr_string("auto_pad")?.unwrap_or("NOTSET") {
            "NOTSET" => AutoPad::NotSet,
            "VALID" => AutoPad::Valid,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            other => return Err(node.attr_error("auto_pad", format!("unknown value {other}"))),
        };
        let list = |name: &str, least: i64| -> Result<Option<Vec<usize>>> {
            let Some(values) = node.attr_ints(name)? else {
                return Ok(None);
            };
            match values.iter().find(|&&v| v < least) {
                Some(v) => Err(node.attr_error(name, format!("expected entries >= {least}, got {v}"))),
                None => Ok(Some(values.iter().map(|&v| v as usize).collect())),
            }
        };
        let window = Self {
            kernel_shape: list("kernel_shape", 1)?,
            strides: list("strides", 1)?,
            dilations: list("dilations", 1)?,
            pads: list("pads", 0)?,
            auto_pad,
        };
        // Caught here, not only in `resolve`, so that a node with a kernel_shape is refused when it is read
        // (the worker builds its kernels then) rather than on its first input.
        if let (Some(kernel), Some(pads)) = (&window.kernel_shape, &window.pads)
            && pads.len() != 2 * kernel.len()
        {
            return Err(node.attr_error("pads", format!("expected {} values, got {pads:?}", 2 * kernel.len())));
        }
        Ok(window)
    }

    /// Strides, dilations and pads for an input of spatial sizes `spatial` under a kernel of `kernel`.
    /// SAME_UPPER and SAME_LOWER pad so that the output is `ceil(input / stride)` (the odd pad at the end or
    /// the beginning).
    ///
    /// # Errors
    /// Attributes whose lengths do not match the spatial axes.
    pub fn resolve(&self, spatial: &[usize], kernel: &[usize]) -> Result<Resolved, String> {
        let n = spatial.len();
        let strides = self.strides.clone().unwrap_or_else(|| vec![1; n]);
        let dilations = self.dilations.clone().unwrap_or_else(|| vec![1; n]);
        if strides.len() != n || dilations.len() != n || kernel.len() != n {
            return Err(format!("window attributes do not match the input's {n} spatial axes"));
        }
        let (begin, end) = match self.auto_pad {
            AutoPad::NotSet => match &self.pads {
                Some(pads) if pads.len() == 2 * n => (pads[..n].to_vec(), pads[n..].to_vec()),
                Some(pads) => return Err(format!("pads {pads:?}: expected {} values", 2 * n)),
                None => (vec![0; n], vec![0; n]),
            },
            AutoPad::Valid => (vec![0; n], vec![0; n]),
            AutoPad::SameUpper | AutoPad::SameLower => (0..n)
                .map(|i| {
                    let out = spatial[i].div_ceil(strides[i]);
                    // `(out - 1) * stride + extent - input`, arranged so that an empty axis (out = 0) does
                    // not underflow.
                    let total =
                        (out * strides[i] + extent(kernel[i], dilations[i])).saturating_sub(strides[i] + spatial[i]);
                    let small = total / 2;
                    if self.auto_pad == AutoPad::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    }
                })
                .unzip(),
        };
        Ok(Resolved {
            strides,
            dilations,
            begin,
            end,
        })
    }

    /// Whether auto_pad asks for SAME_UPPER or SAME_LOWER.
    pub fn is_same(&self) -> bool {
        matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower)
    }

    /// The kernel of MaxPool or AveragePool, `node`'s: kernel_shape, which they require, over 1 to 3 axes
    /// (libtorch's pooling kernels).
    ///
    /// # Errors
    /// kernel_shape missing, or over another number of axes.
    pub fn pool_kernel(&self, node: &Node) -> Result<&[usize]> {
        match &self.kernel_shape {
            Some(kernel) if (1..=3).contains(&kernel.len()) => Ok(kernel),
            Some(kernel) => Err(node.attr_error("kernel_shape", format!("{kernel:?}: 1 to 3 axes are supported"))),
            None => Err(node.attr_error("kernel_shape", "is required")),
        }
    }
}

/// The group count of Conv or ConvTranspose `node` (default 1).
///
/// # Errors
/// A group count below 1.
pub fn conv_group(node: &Node) -> Result<i64> {
    match node.attr_int("group")?.unwrap_or(1) {
        g if g > 0 => Ok(g),
        g => Err(node.attr_error("group", format!("expected > 0, got {g}"))),
    }
}

/// The extent of a kernel of `kernel` taps `dilation` apart.
fn extent(kernel: usize, dilation: usize) -> usize {
    (kernel - 1) * dilation + 1
}

/// The spatial output sizes of Conv.
///
/// # Errors
/// A padded input smaller than the kernel's extent.
pub fn conv_output(spatial: &[usize], kernel: &[usize], w: &Resolved) -> Result<Vec<usize>, String> {
    (0..spatial.len())
        .map(|i| {
            let padded = spatial[i] + w.begin[i] + w.end[i];
            let reach = extent(kernel[i], w.dilations[i]);
            if padded < reach {
                return Err(format!(
                    "axis {i}: the padded input ({padded}) is smaller than the kernel's extent ({reach})"
                ));
            }
            Ok((padded - reach) / w.strides[i] + 1)
        })
        .collect()
}

/// The spatial output sizes of ConvTranspose without `output_shape`: `stride * (in - 1) + output_padding +
/// extent - pads`, or `in * stride` under SAME_UPPER and SAME_LOWER.
///
/// # Errors
/// Pads larger than the full output.
pub fn conv_transpose_output(
    spatial: &[usize],
    kernel: &[usize],
    w: &Resolved,
    output_padding: &[usize],
    same: bool,
) -> Result<Vec<usize>, String> {
    (0..spatial.len())
        .map(|i| {
            if same {
                return Ok(spatial[i] * w.strides[i]);
            }
            let full = w.strides[i] * (spatial[i] - 1) + output_padding[i] + extent(kernel[i], w.dilations[i]);
            full.checked_sub(w.begin[i] + w.end[i])
                .filter(|&len| len > 0)
                .ok_or_else(|| format!("axis {i}: pads {} + {} leave no output", w.begin[i], w.end[i]))
        })
        .collect()
}

/// The spatial output sizes of MaxPool and AveragePool as the worker computes them on libtorch: pads that
/// libtorch's pooling takes (symmetric, at most half the kernel on every axis) go to the kernel, others are
/// added to the input first. With `ceil_mode`, libtorch drops a last window that would start in the right
/// padding.
///
/// # Errors
/// A padded input smaller than the kernel's extent.
pub fn pool_output(spatial: &[usize], kernel: &[usize], w: &Resolved, ceil_mode: bool) -> Result<Vec<usize>, String> {
    let torch_pads = w.fits_torch_pool(kernel);
    (0..spatial.len())
        .map(|i| {
            let (input, pad) = if torch_pads {
                (spatial[i], w.begin[i])
            } else {
                (spatial[i] + w.begin[i] + w.end[i], 0)
            };
            let (stride, reach) = (w.strides[i], extent(kernel[i], w.dilations[i]));
            let room = (input + 2 * pad)
                .checked_sub(reach)
                .ok_or_else(|| format!("axis {i}: the padded input is smaller than the kernel's extent ({reach})"))?;
            let mut out = if ceil_mode {
                room.div_ceil(stride)
            } else {
                room / stride
            } + 1;
            if ceil_mode && (out - 1) * stride >= input + pad {
                out -= 1;
            }
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Attr;

    fn window(attrs: Vec<(&str, Attr)>) -> Window {
        Window::read(&node(attrs)).unwrap()
    }

    fn node(attrs: Vec<(&str, Attr)>) -> Node {
        Node {
            name: "w".into(),
            op_type: "MaxPool".into(),
            domain: String::new(),
            inputs: vec!["x".into()],
            outputs: vec!["y".into()],
            attributes: attrs.into_iter().map(|(n, a)| (n.to_owned(), a)).collect(),
        }
    }

    #[test]
    fn pads_that_do_not_fit_kernel_shape_are_refused_when_read() {
        let wrong = node(vec![
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("pads", Attr::Ints(vec![1, 1])),
        ]);
        let message = Window::read(&wrong).unwrap_err().to_string();
        assert!(
            message.contains("pads") && message.contains("expected 4 values"),
            "{message}"
        );
        // Without kernel_shape (Conv takes it from the weight) the count is checked against the input.
        let w = window(vec![("pads", Attr::Ints(vec![1, 1]))]);
        assert!(w.resolve(&[5, 5], &[3, 3]).is_err());
        assert!(w.resolve(&[5], &[3]).is_ok());
    }

    #[test]
    fn same_padding_of_an_empty_axis_does_not_underflow() {
        let w = window(vec![("auto_pad", Attr::String("SAME_UPPER".into()))]);
        // out = 0: (0 - 1) * 1 + 3 - 0 = 2.
        let w = w.resolve(&[0], &[3]).unwrap();
        assert_eq!((w.begin, w.end), (vec![1], vec![1]));
    }

    #[test]
    fn same_padding_puts_the_odd_pad_where_auto_pad_says() {
        let upper = window(vec![
            ("auto_pad", Attr::String("SAME_UPPER".into())),
            ("strides", Attr::Ints(vec![2, 2])),
        ]);
        let w = upper.resolve(&[7, 8], &[4, 3]).unwrap();
        // out = ceil(7 / 2) = 4 needs 3 * 2 + 4 = 10 rows: pad 3; ceil(8 / 2) = 4 needs 9 columns: pad 1.
        assert_eq!((w.begin.clone(), w.end.clone()), (vec![1, 0], vec![2, 1]));
        assert_eq!(conv_output(&[7, 8], &[4, 3], &w).unwrap(), [4, 4]);
        let lower = window(vec![
            ("auto_pad", Attr::String("SAME_LOWER".into())),
            ("strides", Attr::Ints(vec![2, 2])),
        ]);
        let w = lower.resolve(&[7, 8], &[4, 3]).unwrap();
        assert_eq!((w.begin, w.end), (vec![2, 1], vec![1, 0]));
        let valid = window(vec![("auto_pad", Attr::String("VALID".into()))]);
        let w = valid.resolve(&[7], &[3]).unwrap();
        assert_eq!(conv_output(&[7], &[3], &w).unwrap(), [5]);
    }

    #[test]
    fn dilated_strided_conv_and_its_transpose() {
        let w = window(vec![
            ("pads", Attr::Ints(vec![1, 2, 1, 0])),
            ("strides", Attr::Ints(vec![2, 3])),
            ("dilations", Attr::Ints(vec![2, 1])),
        ])
        .resolve(&[10, 11], &[3, 3])
        .unwrap();
        // (10 + 2 - 5) / 2 + 1 = 4; (11 + 2 - 3) / 3 + 1 = 4.
        assert_eq!(conv_output(&[10, 11], &[3, 3], &w).unwrap(), [4, 4]);
        // 2 * 3 + 1 + 5 - 2 = 10; 3 * 3 + 0 + 3 - 2 = 10.
        assert_eq!(
            conv_transpose_output(&[4, 4], &[3, 3], &w, &[1, 0], false).unwrap(),
            [10, 10]
        );
        assert_eq!(
            conv_transpose_output(&[4, 4], &[3, 3], &w, &[0, 0], true).unwrap(),
            [8, 12]
        );
        assert!(conv_output(&[2], &[5], &window(vec![]).resolve(&[2], &[5]).unwrap()).is_err());
    }

    #[test]
    fn ceil_mode_pools_drop_a_window_that_starts_in_the_padding() {
        let attrs = |pads: Vec<i64>| {
            window(vec![
                ("kernel_shape", Attr::Ints(vec![3])),
                ("strides", Attr::Ints(vec![2])),
                ("pads", Attr::Ints(pads)),
            ])
        };
        let none = attrs(vec![0, 0]).resolve(&[6], &[3]).unwrap();
        // floor((6 - 3) / 2) + 1 = 2; ceil gives 3 (the last window starts at 4, inside the input).
        assert_eq!(pool_output(&[6], &[3], &none, false).unwrap(), [2]);
        assert_eq!(pool_output(&[6], &[3], &none, true).unwrap(), [3]);
        let one = attrs(vec![1, 1]).resolve(&[5], &[3]).unwrap();
        // (5 + 2 - 3) / 2 + 1 = 3 either way.
        assert_eq!(pool_output(&[5], &[3], &one, true).unwrap(), [3]);
        // ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start at 6, in the right padding.
        let k2 = window(vec![
            ("kernel_shape", Attr::Ints(vec![2])),
            ("strides", Attr::Ints(vec![2])),
            ("pads", Attr::Ints(vec![1, 1])),
        ]);
        let w = k2.resolve(&[5], &[2]).unwrap();
        assert_eq!(pool_output(&[5], &[2], &w, true).unwrap(), [3]);
        assert_eq!(pool_output(&[5], &[2], &w, false).unwrap(), [3]);
        // Asymmetric pads are added to the input: ceil((6 + 2 - 3) / 2) + 1 = 4 (the 4th window starts at
        // 6, inside the padded 8), floor gives 3.
        let asym = attrs(vec![0, 2]).resolve(&[6], &[3]).unwrap();
        assert_eq!(pool_output(&[6], &[3], &asym, true).unwrap(), [4]);
        assert_eq!(pool_output(&[6], &[3], &asym, false).unwrap(), [3]);
    }
}
