//! The entry points of the fuzz targets (`fuzz/`): each takes arbitrary bytes, runs one reader of hostile input,
//! and must return without panicking or aborting whatever the bytes. The `fuzz_replay` test runs them on every
//! stored corpus file under stable, so a crash once found stays fixed.

use crate::bundle;
use crate::image::{self, ReadMode};

/// The image decoder in both read modes, EXIF orientation applied.
pub fn image_decode(bytes: &[u8]) {
    for mode in [ReadMode::Color, ReadMode::Gray] {
        let _ = image::decode(bytes, mode, true);
    }
}

/// The eval bundle reader, unpacking into a scratch folder of this process that is removed afterwards.
pub fn eval_bundle(bytes: &[u8]) {
    let dir = std::env::temp_dir().join(format!("sensgrid-fuzz-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = bundle::unpack(bytes, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
