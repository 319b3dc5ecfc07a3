//! Synthetic datasets: determinism, PaddleOCR's label formats, boxes against each line's own ink, and the
//! characters against the rec models' dictionary. Needs the fonts and `models/ppocr_keys_v1.txt` from
//! `make setup`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sensgrid_eval::rec::CharacterDict;
use sensgrid_eval::synth::canvas::luminance;
use sensgrid_eval::synth::transform::{self, Quad};
use sensgrid_eval::synth::{self, FontSet, ImageFormat, Kind, SynthOptions, crop, det, text};
use serde_json::Value;

fn fonts() -> FontSet {
    let dir = synth::repo_fonts_dir();
    FontSet::load(&dir).unwrap_or_else(|e| panic!("{e} (run make setup)"))
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synth").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(out: PathBuf, count: usize, seed: u64) -> SynthOptions {
    SynthOptions {
        out,
        count,
        seed,
        format: ImageFormat::Png,
        fonts: synth::repo_fonts_dir(),
    }
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in [dir.to_path_buf(), dir.join("images")] {
        for entry in std::fs::read_dir(&sub).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// `(path, label)` per line of `label.txt`, split on the one tab as PaddleOCR's SimpleDataSet does.
fn labels(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("label.txt")).unwrap();
    assert!(text.ends_with('\n'), "label.txt ends with a newline");
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split('\t').collect();
            assert_eq!(parts.len(), 2, "label.txt: {line:?}: expected path<TAB>label");
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

fn png_size(path: &Path) -> (usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    (info.width as usize, info.height as usize)
}

fn dictionary() -> CharacterDict {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ppocr_keys_v1.txt");
    // The PP-OCR rec configs set use_space_char: true.
    CharacterDict::from_file(&path, true).unwrap_or_else(|e| panic!("{e} (run make setup)"))
}

#[test]
fn every_character_is_in_the_dictionary_and_the_chinese_fonts() {
    let dict = dictionary();
    let ascii = ('a'..='z').chain('A'..='Z').chain('0'..='9');
    for c in text::special_characters().chain(ascii).chain([' ']) {
        assert!(dict.index_of(c).is_some(), "{c:?} is not in ppocr_keys_v1.txt");
    }
    let fonts = fonts();
    let chinese: Vec<&str> = fonts.faces().filter(|f| f.chinese).map(|f| f.name.as_str()).collect();
    let latin: Vec<&str> = fonts.faces().map(|f| f.name.as_str()).collect();
    // The faces scripts/font-debs.txt installs: all draw Latin, the collections Chinese as well.
    assert_eq!(
        latin,
        [
            "DejaVuSans-Bold.ttf",
            "DejaVuSans.ttf",
            "DejaVuSerif.ttf",
            "uming.ttc#0",
            "uming.ttc#1",
            "uming.ttc#2",
            "uming.ttc#3",
            "wqy-microhei.ttc#0",
            "wqy-microhei.ttc#1"
        ]
    );
    assert_eq!(chinese, latin[3..]);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    for kind in [Kind::Det, Kind::Rec, Kind::Cls] {
        let count = if kind == Kind::Det { 2 } else { 6 };
        let a = scratch(&format!("same-{kind}-a"));
        let b = scratch(&format!("same-{kind}-b"));
        let c = scratch(&format!("same-{kind}-c"));
        synth::generate(kind, &options(a.clone(), count, 7)).unwrap();
        synth::generate(kind, &options(b.clone(), count, 7)).unwrap();
        synth::generate(kind, &options(c.clone(), count, 8)).unwrap();
        let (fa, fb, fc) = (files(&a), files(&b), files(&c));
        assert_eq!(fa.len(), count + 1, "{kind}: {:?}", fa.keys());
        assert!(fa == fb, "{kind}: seed 7 twice gave different files");
        assert_eq!(fa.keys().collect::<Vec<_>>(), fc.keys().collect::<Vec<_>>());
        for (name, bytes) in &fa {
            assert_ne!(bytes, &fc[name], "{kind}: {name} is the same under seeds 7 and 8");
        }
    }
}

#[test]
fn a_sample_does_not_depend_on_the_count() {
    let (a, b) = (scratch("count-a"), scratch("count-b"));
    synth::generate(Kind::Rec, &options(a.clone(), 3, 1)).unwrap();
    synth::generate(Kind::Rec, &options(b.clone(), 5, 1)).unwrap();
    let (fa, fb) = (files(&a), files(&b));
    for i in 1..=3 {
        let name = format!("images/word_{i:04}.png");
        assert_eq!(fa[&name], fb[&name], "{name}");
    }
    assert_eq!(labels(&a)[..], labels(&b)[..3]);
}

#[test]
fn det_labels_parse_as_paddleocr_expects() {
    let dir = scratch("det-labels");
    let summary = synth::generate(Kind::Det, &options(dir.clone(), 4, 3)).unwrap();
    let labels = labels(&dir);
    assert_eq!((summary.images, labels.len()), (4, 4));
    let mut boxes = 0;
    for (i, (path, label)) in labels.iter().enumerate() {
        assert_eq!(path, &format!("images/img_{:04}.png", i + 1));
        let (width, height) = png_size(&dir.join(path));
        assert!(
            (320..=960).contains(&width) && (240..=960).contains(&height),
            "{path}: {width}x{height}"
        );
        // PaddleOCR's DetLabelEncode: json.loads, then each box's "points" and "transcription".
        let value: Value = serde_json::from_str(label).unwrap_or_else(|e| panic!("{path}: {e}: {label}"));
        let lines = value.as_array().unwrap_or_else(|| panic!("{path}: not a list"));
        assert!((2..=8).contains(&lines.len()), "{path}: {} lines", lines.len());
        for line in lines {
            let object = line.as_object().unwrap();
            assert_eq!(object.keys().collect::<Vec<_>>(), ["points", "transcription"]);
            let transcription = object["transcription"].as_str().unwrap();
            assert!(
                !transcription.is_empty() && transcription.trim() == transcription,
                "{transcription:?}"
            );
            let points = object["points"].as_array().unwrap();
            assert_eq!(points.len(), 4, "{path}: {line}");
            for point in points {
                let xy: Vec<i64> = point.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
                assert_eq!(xy.len(), 2);
                assert!(
                    xy[0] >= 0 && xy[0] < width as i64 && xy[1] >= 0 && xy[1] < height as i64,
                    "{path}: {line}"
                );
            }
        }
        boxes += lines.len();
    }
    assert_eq!(summary.boxes, boxes);
    // The label is exactly what the page says, in PaddleOCR's spacing.
    let fonts = fonts();
    let page = det::page(&fonts, 3, 0);
    assert_eq!(labels[0].1, page.label());
    let first = &page.lines[0];
    let [[x0, y0], [x1, y1], [x2, y2], [x3, y3]] = first.points;
    let expected = format!(
        "{{\"transcription\": {}, \"points\": [[{x0}, {y0}], [{x1}, {y1}], [{x2}, {y2}], [{x3}, {y3}]]}}",
        serde_json::to_string(first.transcription()).unwrap()
    );
    assert!(page.label().starts_with(&format!("[{expected}")), "{}", page.label());
}

/// The distance from a point to the line through an edge.
fn distance(a: [i64; 2], b: [i64; 2], x: f64, y: f64) -> f64 {
    let (dx, dy) = ((b[0] - a[0]) as f64, (b[1] - a[1]) as f64);
    ((x - a[0] as f64) * dy - (y - a[1] as f64) * dx).abs() / (dx * dx + dy * dy).sqrt()
}

#[test]
fn det_boxes_hold_exactly_their_lines_ink() {
    let fonts = fonts();
    let (mut lines, mut dont_care, mut tilted) = (0, 0, 0);
    for index in 0..6 {
        let page = det::page(&fonts, 11, index);
        let (w, h) = (page.image.width as i64, page.image.height as i64);
        for (n, line) in page.lines.iter().enumerate() {
            let what = format!("page {index}, line {n} ({:?})", line.text);
            let quad: &Quad = &line.points;
            let ink: Vec<(i64, i64)> = line
                .ink
                .pixels()
                .map(|(x, y)| (x as i64 + line.offset[0], y as i64 + line.offset[1]))
                .collect();
            assert!(!ink.is_empty(), "{what}: no ink");
            for &(x, y) in &ink {
                assert!(
                    transform::contains(quad, x, y),
                    "{what}: ink at ({x}, {y}) outside {quad:?}"
                );
                assert!((0..w).contains(&x) && (0..h).contains(&y), "{what}: ink off the page");
            }
            // Tight: every side of the box has ink within 1.5 px.
            for i in 0..4 {
                let (a, b) = (quad[i], quad[(i + 1) % 4]);
                let nearest = ink
                    .iter()
                    .map(|&(x, y)| distance(a, b, x as f64, y as f64))
                    .fold(f64::MAX, f64::min);
                assert!(
                    nearest <= 1.5,
                    "{what}: side {i} of {quad:?} is {nearest} px from the ink"
                );
            }
            // Lines keep apart.
            for other in &page.lines[n + 1..] {
                assert!(
                    transform::apart(quad, &other.points, det::GAP as f64),
                    "{what} touches another line"
                );
            }
            // Legible lines stand out from what is around them in the box.
            if line.legible {
                let alpha = |x: i64, y: i64| {
                    let (lx, ly) = (x - line.offset[0], y - line.offset[1]);
                    if lx < 0 || ly < 0 || lx >= line.ink.width as i64 || ly >= line.ink.height as i64 {
                        0
                    } else {
                        line.ink.alpha[ly as usize * line.ink.width + lx as usize]
                    }
                };
                let [bx0, by0, bx1, by1] = transform::bounds(quad);
                let (mut text_l, mut text_n, mut ground_l, mut ground_n) = (0.0, 0, 0.0, 0);
                for y in by0..=by1 {
                    for x in bx0..=bx1 {
                        let p = page.image.pixel(x as usize, y as usize);
                        let l = luminance(p.map(|v| f32::from(v) / 255.0));
                        match alpha(x, y) {
                            255 => (text_l, text_n) = (text_l + l, text_n + 1),
                            0 if transform::contains(quad, x, y) => (ground_l, ground_n) = (ground_l + l, ground_n + 1),
                            _ => {}
                        }
                    }
                }
                if text_n > 0 && ground_n > 0 {
                    let contrast = (text_l / f64::from(text_n) - ground_l / f64::from(ground_n)).abs();
                    assert!(contrast > 0.12, "{what}: contrast {contrast}");
                }
            }
            lines += 1;
            dont_care += usize::from(!line.legible);
            tilted += usize::from(quad[0][1] != quad[1][1]);
        }
    }
    assert!(lines >= 12 && tilted > 0, "{lines} lines, {tilted} tilted");
    assert!(dont_care * 4 < lines, "{dont_care} of {lines} lines are don't-care");
}

#[test]
fn rec_labels_use_only_the_dictionary() {
    let dir = scratch("rec");
    let summary = synth::generate(Kind::Rec, &options(dir.clone(), 24, 5)).unwrap();
    let dict = dictionary();
    let labels = labels(&dir);
    assert_eq!((summary.images, labels.len()), (24, 24));
    let mut chinese = 0;
    for (i, (path, label)) in labels.iter().enumerate() {
        assert_eq!(path, &format!("images/word_{:04}.png", i + 1));
        let n = label.chars().count();
        assert!(
            (1..=text::MAX_CHARS).contains(&n) && label.trim() == label,
            "{path}: {label:?}"
        );
        for c in label.chars() {
            assert!(
                dict.index_of(c).is_some(),
                "{path}: {c:?} of {label:?} is not in the dictionary"
            );
        }
        chinese += usize::from(label.chars().any(text::is_chinese));
        let (width, height) = png_size(&dir.join(path));
        assert!((32..=52).contains(&height), "{path}: {width}x{height}");
        assert!(width <= 14 * height, "{path}: {width}x{height}");
    }
    assert!(chinese > 0 && chinese < 24, "{chinese} of 24 labels have Chinese");
}

#[test]
fn cls_labels_are_0_or_180_and_180_is_upside_down() {
    let dir = scratch("cls");
    let summary = synth::generate(Kind::Cls, &options(dir.clone(), 20, 9)).unwrap();
    let labels = labels(&dir);
    let rotated = labels.iter().filter(|(_, l)| l == "180").count();
    assert!(labels.iter().all(|(_, l)| l == "0" || l == "180"));
    assert_eq!(summary.rotated, rotated);
    assert!((4..=16).contains(&rotated), "{rotated} of 20 turned");
    for (i, (path, _)) in labels.iter().enumerate() {
        assert_eq!(path, &format!("images/cls_{:04}.png", i + 1));
    }
    // A turned crop is the upright one of the same draw, turned: the same pixels in reverse order.
    let fonts = fonts();
    let turned = (0..20).map(|i| crop::cls(&fonts, 9, i)).find(|c| c.rotated).unwrap();
    let mut back = turned.image.clone();
    back.rotate_180();
    assert_ne!(back, turned.image);
    back.rotate_180();
    assert_eq!(back, turned.image);
}

#[test]
fn jpeg_variant() {
    let dir = scratch("jpeg");
    let mut opts = options(dir.clone(), 3, 2);
    opts.format = ImageFormat::Jpeg;
    synth::generate(Kind::Rec, &opts).unwrap();
    for (i, (path, _)) in labels(&dir).iter().enumerate() {
        assert_eq!(path, &format!("images/word_{:04}.jpg", i + 1));
        let bytes = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "{path}: no JPEG start marker");
        assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9], "{path}: no JPEG end marker");
    }
    // The same draws as the PNG set: only the encoding differs.
    let png = scratch("jpeg-png");
    synth::generate(Kind::Rec, &options(png.clone(), 3, 2)).unwrap();
    let texts = |d: &Path| labels(d).into_iter().map(|(_, t)| t).collect::<Vec<_>>();
    assert_eq!(texts(&dir), texts(&png));
}

#[test]
fn missing_fonts_are_named() {
    let dir = scratch("no-fonts");
    let mut opts = options(dir.join("out"), 1, 0);
    opts.fonts = dir.clone();
    let err = synth::generate(Kind::Rec, &opts).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: no font there draws", dir.display())),
        "{err}"
    );
    assert!(err.contains("scripts/setup-fonts.sh"), "{err}");
    assert_eq!(
        "xyz".parse::<Kind>().unwrap_err().to_string(),
        "unknown dataset kind 'xyz': expected det, rec or cls"
    );
}
