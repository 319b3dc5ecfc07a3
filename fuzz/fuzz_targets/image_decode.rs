//! The PNG and JPEG decoders, in both read modes, with EXIF orientation applied.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| sensgrid_eval::fuzzing::image_decode(bytes));
