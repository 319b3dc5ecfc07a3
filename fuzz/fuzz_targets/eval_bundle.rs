//! The eval bundle reader a worker runs on what the coordinator hands it.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sensgrid_eval::fuzzing::eval_bundle(bytes));
