//! The `sen.pickle` reader of `coordinator submit --resume-from`.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sensgrid_model::fuzzing::sen_pickle(bytes));
