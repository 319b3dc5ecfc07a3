//! `resize_linear` against `cv2.resize(img, (w, h))` of OpenCV 4.10, byte for byte.

use sensgrid_eval::resize::resize_linear;

use super::{bytes, dims, json, pattern};

#[test]
fn resize_matches_opencv_bit_for_bit() {
    let cases = json("resize", "cases.json");
    let outputs = bytes("resize", "outputs.bin");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 70);
    for case in cases {
        let (src, dst) = (dims(&case["src"]), dims(&case["dst"]));
        let kind = case["kind"].as_str().unwrap();
        let seed = case["seed"].as_u64().unwrap() as u32;
        let what = case["what"].as_str().unwrap();
        let image = pattern(kind, seed, src[0], src[1], src[2]);
        let got = resize_linear(&image, dst[0], dst[1]);
        let offset = case["offset"].as_u64().unwrap() as usize;
        let want = &outputs[offset..offset + dst[0] * dst[1] * src[2]];
        assert_eq!((got.height, got.width, got.channels), (dst[0], dst[1], src[2]));
        if let Some(i) = got.data.iter().zip(want).position(|(a, b)| a != b) {
            let c = src[2];
            panic!(
                "case {seed} ({what}, {kind} {src:?} -> {dst:?}): first difference at y {} x {} c {}: {} vs OpenCV's {}",
                i / c / dst[1],
                i / c % dst[1],
                i % c,
                got.data[i],
                want[i]
            );
        }
    }
}
