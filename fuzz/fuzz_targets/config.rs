//! The config reader with `-o` overrides, and its round trip through `Config::to_yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sensgrid_eval::fuzzing::config(bytes));
