//! What libtorch can compute on from this process: the CPU always, CUDA devices when the driver and
//! libtorch_cuda are both present.

use std::fmt;

/// The compute devices libtorch sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// Number of CUDA devices; 0 without a GPU, a driver, or libtorch_cuda.
    pub cuda_devices: usize,
    /// Whether cuDNN is usable (only meaningful with CUDA devices).
    pub cudnn: bool,
}

impl DeviceReport {
    /// Asks libtorch.
    pub fn probe() -> Self {
        Self {
            cuda_devices: tch::Cuda::device_count().max(0) as usize,
            cudnn: tch::Cuda::cudnn_is_available(),
        }
    }
}

impl fmt::Display for DeviceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu")?;
        for index in 0..self.cuda_devices {
            write!(f, " cuda:{index}")?;
        }
        if self.cuda_devices > 0 {
            write!(f, " (cudnn: {})", if self.cudnn { "yes" } else { "no" })?;
        }
        Ok(())
    }
}
