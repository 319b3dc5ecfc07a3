//! The built `worker` binary finds libtorch through its rpath, links libtorch_cuda, and runs without a GPU.

use std::{collections::BTreeMap, process::Command};

fn worker(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("running the worker binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn help_starts_without_ld_library_path() {
    let (ok, text) = worker(&["--help"]);
    assert!(ok, "{text}");
    assert!(text.contains("Usage: worker"), "{text}");
}

#[test]
fn devices_lists_the_cpu_with_or_without_a_gpu() {
    let (ok, text) = worker(&["devices"]);
    assert!(ok, "{text}");
    assert!(text.starts_with("devices: cpu"), "{text}");
}

#[test]
fn libtorch_libraries_resolve_through_the_rpath() {
    let output = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_worker"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("running ldd");
    let listing = String::from_utf8_lossy(&output.stdout);
    // "libtorch_cpu.so => /path/libtorch_cpu.so (0x...)" or "libfoo.so => not found".
    let resolved: BTreeMap<&str, &str> = listing
        .lines()
        .filter_map(|line| line.trim().split_once(" => "))
        .collect();
    for lib in ["libtorch_cpu.so", "libc10.so", "libtorch_cuda.so"] {
        let target = resolved
            .get(lib)
            .unwrap_or_else(|| panic!("{lib} is not linked:\n{listing}"));
        assert!(target.starts_with('/'), "{lib} => {target}\n{listing}");
    }
}
