//! Choosing the device: `auto`, `cpu`, `cuda` or `cuda:N`. (`worker join` also takes `all`, a worker per GPU:
//! see `cli::join` and [`crate::devices::DeviceReport::join_all`].)

use anyhow::{Result, bail};
use tch::Device;

/// Parses a device name. `auto` is the first GPU when libtorch sees one, else the CPU; `cuda` is `cuda:0`.
///
/// # Errors
/// An unknown name (`all` included: one device is asked for), or a CUDA device that libtorch does not see.
pub fn parse_device(name: &str) -> Result<Device> {
    let cuda_count = || tch::Cuda::device_count().max(0) as usize;
    let index = match name {
        "cpu" => return Ok(Device::Cpu),
        "auto" => return Ok(if cuda_count() > 0 { Device::Cuda(0) } else { Device::Cpu }),
        "cuda" => 0,
        "all" => {
            bail!("device 'all': only `worker join` runs a worker per GPU; here, expected auto, cpu, cuda or cuda:N")
        }
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(index) => index,
            None => bail!("device '{name}': expected auto, cpu, cuda or cuda:N"),
        },
    };
    let count = cuda_count();
    if index >= count {
        bail!("device '{name}': libtorch sees {count} CUDA device(s)");
    }
    Ok(Device::Cuda(index))
}

/// The name [`parse_device`] reads back as `device`: `cpu` or `cuda:N` (how a worker reports its device).
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(index) => format!("cuda:{index}"),
        _ => "cpu".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, tch::Cuda::device_count() == 0);
        assert!(
            parse_device("gpu")
                .unwrap_err()
                .to_string()
                .contains("expected auto, cpu, cuda or cuda:N")
        );
        assert!(
            parse_device("all")
                .unwrap_err()
                .to_string()
                .contains("only `worker join`")
        );
        assert!(parse_device("cuda:99").is_err());
        assert_eq!(parse_device(&device_name(auto)).unwrap(), auto);
    }
}
