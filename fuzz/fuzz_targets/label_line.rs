//! One label line under the det and the cls label transforms.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sensgrid_eval::fuzzing::label_line(bytes));
