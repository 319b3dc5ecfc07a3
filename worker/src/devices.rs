//! What libtorch can compute on from this process: the CPU always, CUDA devices when the driver and
//! libtorch_cuda are both present.

use std::fmt;

use tch::Device;

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

    /// The devices `worker join --device all` runs a worker on: every CUDA device, each once, or the CPU alone
    /// when there is none (a worker per CPU would only split the same cores).
    pub fn join_all(&self) -> Vec<Device> {
        if self.cuda_devices == 0 {
            return vec![Device::Cpu];
        }
        (0..self.cuda_devices).map(Device::Cuda).collect()
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

/// Free and total bytes of CUDA device `index`, as the CUDA runtime that libtorch loaded reports them
/// (`cudaMemGetInfo`). tch has no call for it; the runtime is looked up among the libraries already loaded,
/// so it is the one libtorch uses, never a second copy.
///
/// # Errors
/// No CUDA runtime in the process (a CPU-only libtorch), or the runtime's error code (no device, a bad index).
pub fn cuda_memory(index: usize) -> anyhow::Result<(usize, usize)> {
    type SetDevice = unsafe extern "C" fn(i32) -> i32;
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> i32;
    let names = [
        c"libcudart.so.13",
        c"libcudart.so.12",
        c"libcudart.so.11.0",
        c"libcudart.so",
    ];
    // SAFETY: RTLD_NOLOAD only finds a library that is already loaded; nothing is initialised by this call.
    let handle = names
        .iter()
        .map(|name| unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) })
        .find(|handle| !handle.is_null())
        .ok_or_else(|| anyhow::anyhow!("no CUDA runtime is loaded (libtorch without CUDA)"))?;
    // SAFETY: the symbols are looked up in the runtime found above, which stays loaded (libtorch holds it).
    let (set_device, mem_get_info) = unsafe {
        (
            libc::dlsym(handle, c"cudaSetDevice".as_ptr()),
            libc::dlsym(handle, c"cudaMemGetInfo".as_ptr()),
        )
    };
    anyhow::ensure!(
        !set_device.is_null() && !mem_get_info.is_null(),
        "the CUDA runtime has no cudaSetDevice or cudaMemGetInfo"
    );
    let index = i32::try_from(index)?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: both are the CUDA runtime's documented C functions with these signatures; the pointers are to
    // live locals.
    let code = unsafe {
        let set_device: SetDevice = std::mem::transmute(set_device);
        let mem_get_info: MemGetInfo = std::mem::transmute(mem_get_info);
        match set_device(index) {
            0 => mem_get_info(&mut free, &mut total),
            code => code,
        }
    };
    anyhow::ensure!(code == 0, "cuda:{index}: the CUDA runtime answered error {code}");
    Ok((free, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_all_is_each_gpu_once_or_the_cpu_alone() {
        let report = |cuda_devices| DeviceReport {
            cuda_devices,
            cudnn: true,
        };
        assert_eq!(report(0).join_all(), [Device::Cpu]);
        assert_eq!(report(1).join_all(), [Device::Cuda(0)]);
        assert_eq!(
            report(4).join_all(),
            [0, 1, 2, 3].map(Device::Cuda),
            "four GPUs, four workers, each on its own"
        );
    }

    #[test]
    fn cuda_memory_is_an_error_without_a_device_and_plausible_with_one() {
        let report = DeviceReport::probe();
        match cuda_memory(0) {
            Ok((free, total)) => {
                assert!(
                    report.cuda_devices > 0,
                    "memory reported for a device libtorch does not see"
                );
                assert!(0 < free && free <= total, "free {free} of {total}");
            }
            Err(error) => assert_eq!(report.cuda_devices, 0, "cuda:0 is there, yet: {error:#}"),
        }
        assert!(cuda_memory(report.cuda_devices).is_err(), "a device past the last");
    }
}
