//! Makes the worker's binaries (and tests) start without LD_LIBRARY_PATH, and keeps CUDA visible.
//!
//! torch-sys links libtorch but leaves finding it at run time to the environment, and the linker's
//! `--as-needed` drops libtorch_cuda because no symbol of it is referenced directly: libtorch then never
//! registers its CUDA backend and `tch::Cuda::is_available()` is false even on a GPU node.

use std::{env, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    let lib = libtorch_dir().join("lib");
    let lib = lib
        .canonicalize()
        .unwrap_or_else(|e| panic!("libtorch lib dir {}: {e}; run `make setup`", lib.display()));
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// The libtorch that torch-sys builds against: `LIBTORCH`, or the active Python's torch package when
/// `LIBTORCH_USE_PYTORCH` is set (torch-sys's two ways).
fn libtorch_dir() -> PathBuf {
    if let Some(dir) = env::var_os("LIBTORCH") {
        return dir.into();
    }
    if env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let output = Command::new("python3")
            .args(["-c", "import os, torch; print(os.path.dirname(torch.__file__))"])
            .output()
            .expect("running python3 to locate torch");
        assert!(
            output.status.success(),
            "python3 cannot import torch: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return String::from_utf8(output.stdout)
            .expect("torch path is UTF-8")
            .trim()
            .into();
    }
    panic!("LIBTORCH is not set: run `make setup`, which points .libtorch at the torch==2.11.0 package");
}
