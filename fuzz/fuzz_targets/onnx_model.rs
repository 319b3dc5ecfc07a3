//! The ONNX reader and what `submit` runs on a model it has read: the op check, shape inference at the declared
//! input shape, and the channel groups.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sensgrid_model::fuzzing::onnx_model(bytes));
