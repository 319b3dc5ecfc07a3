//! Reading ONNX files into the IR and writing the IR back as ONNX.

mod read;
mod write;

pub use read::{MAX_MODEL_BYTES, decode, read};
pub use write::{encode, write};

/// The protobuf messages of `proto/onnx.proto`, generated at build time.
#[allow(missing_docs, clippy::all)]
pub(crate) mod pb {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}
