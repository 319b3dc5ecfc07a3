//! `image::decode` against `cv2.imdecode` of OpenCV 4.10 (libpng 1.6.43, libjpeg-turbo 3.0.3).

use sensgrid_eval::image::{Format, ReadMode, decode, header, read};

use super::{bytes, dims, fixture, json};

/// Mean and max absolute difference of two sample buffers of one size.
fn stats(got: &[u8], want: &[u8]) -> (f64, u8) {
    assert_eq!(got.len(), want.len());
    let sum: u64 = got.iter().zip(want).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
    let max = got.iter().zip(want).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
    (sum as f64 / want.len().max(1) as f64, max)
}

#[test]
fn png_decodes_match_opencv_exactly_and_jpeg_decodes_closely() {
    let cases = json("decode", "cases.json");
    let (mut jpeg_sum, mut jpeg_count, mut jpeg_max) = (0.0, 0usize, 0u8);
    let mut report = Vec::new();
    for case in cases.as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let mode = case["mode"].as_str().unwrap();
        let shape = dims(&case["shape"]);
        let want = bytes("decode", case["raw"].as_str().unwrap());
        let (read_mode, orient) = match mode {
            "color" => (ReadMode::Color, true),
            "gray" => (ReadMode::Gray, true),
            "color_ignore_orientation" => (ReadMode::Color, false),
            other => panic!("unknown mode {other}"),
        };
        let got = decode(&bytes("decode", file), read_mode, orient).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            vec![got.height, got.width, got.channels],
            shape,
            "{file} ({mode}): shape"
        );
        if case["exact"].as_bool().unwrap() {
            assert!(
                got.data == want,
                "{file} ({mode}): {:?} (mean, max) off OpenCV's",
                stats(&got.data, &want)
            );
        } else {
            let (mean, max) = stats(&got.data, &want);
            report.push(format!("{file} {mode}: mean {mean:.4} max {max}"));
            assert!(
                mean <= 0.25 && max <= 4,
                "{file} ({mode}): mean {mean} max {max} off OpenCV's"
            );
            jpeg_sum += mean * want.len() as f64;
            jpeg_count += want.len();
            jpeg_max = jpeg_max.max(max);
        }
    }
    let mean = jpeg_sum / jpeg_count as f64;
    // Printed with --nocapture: the JPEG differences per file.
    println!("{}\nall JPEG samples: mean {mean:.4} max {jpeg_max}", report.join("\n"));
    assert!(mean <= 0.1, "JPEG mean difference {mean}");
}

#[test]
fn read_names_the_file_it_cannot_decode() {
    let path = fixture("decode", "cases.json");
    let e = read(&path, ReadMode::Color, true).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: not a PNG or JPEG file (sensgrid decodes those two of the formats OpenCV reads)",
            path.display()
        )
    );
    let missing = fixture("decode", "missing.png");
    let e = read(&missing, ReadMode::Color, true).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: ", missing.display())), "{e}");
    // A PNG cut short.
    let png = bytes("decode", "cv_rgb8.png");
    assert!(
        decode(&png[..png.len() / 2], ReadMode::Color, true)
            .unwrap_err()
            .to_string()
            .starts_with("corrupt PNG: ")
    );
    let jpg = bytes("decode", "cv_420_q90.jpg");
    assert!(decode(&jpg[..200], ReadMode::Color, true).is_err());
}

#[test]
fn headers_give_the_dimensions_the_decoders_find() {
    let cases = json("decode", "cases.json");
    for case in cases.as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let data = bytes("decode", file);
        let claimed = header(&data).unwrap_or_else(|e| panic!("{file}: {e}"));
        let decoded = decode(&data, ReadMode::Gray, false).unwrap();
        let format = if file.ends_with(".png") {
            Format::Png
        } else {
            Format::Jpeg
        };
        assert_eq!(
            (claimed.format, claimed.width as usize, claimed.height as usize),
            (format, decoded.width, decoded.height),
            "{file}"
        );
    }
}

#[test]
fn the_hostile_fixture_png_is_refused_naming_its_claim() {
    let data = bytes("hostile", "header_100000x100000.png");
    assert_eq!(data.len(), 68);
    let e = decode(&data, ReadMode::Color, true).unwrap_err().to_string();
    assert_eq!(
        e,
        "PNG header claims 100000x100000 pixels, over the limit of 16384 pixels a side and 64 Mpx (67108864 pixels) \
         in all"
    );
}
