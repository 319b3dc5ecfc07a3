//! Decoding and resizing against OpenCV 4.10: `scripts/oracle/decode_cases.py` (PNG bit-exact, JPEG within
//! a level or two) and `scripts/oracle/resize_cases.py` (`cv2.resize`, bit-exact).

mod decode;
mod resize;

use std::path::{Path, PathBuf};

use sensgrid_eval::image::Image;

/// The path of a fixture under `tests/fixtures/<dir>/`.
pub fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

/// A fixture's JSON.
pub fn json(dir: &str, name: &str) -> serde_json::Value {
    let path = fixture(dir, name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture's bytes.
pub fn bytes(dir: &str, name: &str) -> Vec<u8> {
    let path = fixture(dir, name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The oracle's source images, computed rather than stored: `pattern` of `scripts/oracle/resize_cases.py`
/// (a 32-bit hash of seed and position, as noise, as 0/255 only, or over a ramp).
pub fn pattern(kind: &str, seed: u32, h: usize, w: usize, c: usize) -> Image {
    let mut data = Vec::with_capacity(h * w * c);
    for y in 0..h as u32 {
        for x in 0..w as u32 {
            for k in 0..c as u32 {
                let mut v = seed
                    .wrapping_mul(0x9E37_79B1)
                    .wrapping_add(y.wrapping_mul(0x85EB_CA77))
                    .wrapping_add(x.wrapping_mul(0xC2B2_AE3D))
                    .wrapping_add(k.wrapping_mul(0x27D4_EB2F));
                v ^= v >> 15;
                v = v.wrapping_mul(0x2C1B_3C6D);
                v ^= v >> 12;
                v = v.wrapping_mul(0x297A_2D39);
                v ^= v >> 15;
                data.push(match kind {
                    "noise" => v as u8,
                    "extremes" => ((v & 1) * 255) as u8,
                    "ramp" => (x.wrapping_mul(7) + y * 3 + k * 50 + (v & 7)) as u8,
                    _ => panic!("unknown pattern {kind}"),
                });
            }
        }
    }
    Image::from_raw(h, w, c, data)
}

/// `[h, w, ...]` of a JSON list of counts.
pub fn dims(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|d| d.as_u64().expect("a count") as usize)
        .collect()
}
