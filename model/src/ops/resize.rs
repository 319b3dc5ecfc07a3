//! Resize's attributes as the executor runs them: opset 11 and later, nearest and linear, every coordinate
//! transformation ONNX defines except tf_crop_and_resize. [`ResizeAttrs::read`] is both the refusal
//! ([`super::check_supported`]) and the worker kernel's parse.

use crate::error::Result;
use crate::ir::Node;

/// How output values are computed from the input's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nearest,
    Linear,
}

/// How an output index maps to an input coordinate (`coordinate_transformation_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordinates {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNearest,
}

/// How nearest mode rounds a coordinate to an index (`nearest_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    PreferFloor,
    PreferCeil,
    Floor,
    Ceil,
}

/// The attributes of one Resize node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeAttrs {
    pub mode: Mode,
    pub coordinates: Coordinates,
    pub rounding: Rounding,
}

impl ResizeAttrs {
    /// Reads the node's attributes at the graph's `opset`.
    ///
    /// # Errors
    /// Resize before opset 11, and any value the executor does not run, named with the attribute.
    pub fn read(node: &Node, opset: i64) -> Result<Self> {
        if opset < 11 {
            return Err(node.error(format!("Resize of opset {opset} is not supported (11 or later is)")));
        }
        let mode = match node.attr_string("mode")?.unwrap_or("nearest") {
            "nearest" => Mode::Nearest,
            "linear" => Mode::Linear,
            other => {
                return Err(node.attr_error("mode", format!("{other} is not supported (nearest and linear are)")));
            }
        };
        let coordinates = match node
            .attr_string("coordinate_transformation_mode")?
            .unwrap_or("half_pixel")
        {
            "half_pixel" => Coordinates::HalfPixel,
            "pytorch_half_pixel" => Coordinates::PytorchHalfPixel,
            "align_corners" => Coordinates::AlignCorners,
            "asymmetric" => Coordinates::Asymmetric,
            "tf_half_pixel_for_nearest" => Coordinates::TfHalfPixelForNearest,
            other => {
                return Err(node.attr_error("coordinate_transformation_mode", format!("{other} is not supported")));
            }
        };
        let rounding = match node.attr_string("nearest_mode")?.unwrap_or("round_prefer_floor") {
            "round_prefer_floor" => Rounding::PreferFloor,
            "round_prefer_ceil" => Rounding::PreferCeil,
            "floor" => Rounding::Floor,
            "ceil" => Rounding::Ceil,
            other => return Err(node.attr_error("nearest_mode", format!("{other} is not supported"))),
        };
        for attr in ["exclude_outside", "antialias"] {
            if node.attr_int(attr)?.unwrap_or(0) != 0 {
                return Err(node.attr_error(attr, "only 0 is supported"));
            }
        }
        if node
            .attr_string("keep_aspect_ratio_policy")?
            .is_some_and(|p| p != "stretch")
        {
            return Err(node.attr_error("keep_aspect_ratio_policy", "only stretch is supported"));
        }
        Ok(Self {
            mode,
            coordinates,
            rounding,
        })
    }
}
