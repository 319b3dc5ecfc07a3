//! Compiles `sensgrid/v1/*.proto` with the vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure().compile_protos(&["sensgrid/v1/worker.proto", "sensgrid/v1/admin.proto"], &["."])?;
    Ok(())
}
