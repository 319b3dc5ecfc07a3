//! Kernels, one file per op family, and the helpers they share.

pub mod conv;
pub mod elementwise;
pub mod fused;
pub mod lstm;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod shape;
mod window;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

/// Integer values of a (small) tensor, read on the host.
pub fn ints(tensor: &Tensor) -> Result<Vec<i64>> {
    let flat = tensor
        .f_to_kind(Kind::Int64)?
        .f_flatten(0, -1)?
        .f_to_device(Device::Cpu)?;
    Vec::<i64>::try_from(&flat).context("reading integer values")
}

/// Floating-point values of a (small) tensor, read on the host.
pub fn floats(tensor: &Tensor) -> Result<Vec<f64>> {
    let flat = tensor
        .f_to_kind(Kind::Double)?
        .f_flatten(0, -1)?
        .f_to_device(Device::Cpu)?;
    Vec::<f64>::try_from(&flat).context("reading values")
}

/// The sizes of a tensor as unsigned dimensions.
pub fn dims(tensor: &Tensor) -> Vec<usize> {
    tensor.size().iter().map(|&d| d as usize).collect()
}

/// Converts dimensions back to libtorch's i64.
pub fn i64s(dims: &[usize]) -> Vec<i64> {
    dims.iter().map(|&d| d as i64).collect()
}

/// `other` on `like`'s device: shape arithmetic lives on the host, weights and activations on the device.
pub fn on_device_of(other: &Tensor, like: &Tensor) -> Tensor {
    if other.device() == like.device() {
        other.shallow_clone()
    } else {
        other.to_device(like.device())
    }
}

/// The device two operands should meet on: the accelerator when either is on one.
pub fn common_device(a: &Tensor, b: &Tensor) -> Device {
    if a.device() == Device::Cpu {
        b.device()
    } else {
        a.device()
    }
}

/// Turns a model-crate shape error into an error.
pub fn shape_err(message: String) -> anyhow::Error {
    anyhow::anyhow!(message)
}

/// Whether `kind` holds floating-point values.
pub fn is_float(kind: Kind) -> bool {
    matches!(kind, Kind::Half | Kind::Float | Kind::Double | Kind::BFloat16)
}
