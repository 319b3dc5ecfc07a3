//! Eval sets in PaddleOCR's `SimpleDataSet` layout: lines, substitution, ratio sampling, batches, and one-line
//! errors naming the label file and line.

use std::path::{Path, PathBuf};

use sensgrid_eval::batch::batches;
use sensgrid_eval::config::{Config, EvalDataset};
use sensgrid_eval::dataset::{Dataset, DatasetError, OpenOptions};
use sensgrid_eval::transforms::Target;

use crate::image::fixture;

/// A fresh folder for one test, holding `label.txt` (from `lines`) and the named decode fixtures.
fn set_dir(test: &str, lines: &str, images: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sensgrid-eval-dataset-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("img")).unwrap();
    std::fs::write(dir.join("label.txt"), lines).unwrap();
    for (name, from) in images {
        let bytes = if from.is_empty() {
            b"not an image".to_vec()
        } else {
            std::fs::read(fixture("decode", from)).unwrap()
        };
        std::fs::write(dir.join("img").join(name), bytes).unwrap();
    }
    dir
}

/// A fixture config's `Eval.dataset`, reading `dir/label.txt` with images under `dir`.
fn eval_dataset(config: &str, dir: &Path) -> EvalDataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/configs")
        .join(config);
    let config = Config::load(path, &["Global.pretrained_model=m.onnx"]).unwrap();
    EvalDataset {
        data_dir: dir.to_owned(),
        label_file_list: vec![dir.join("label.txt")],
        ratio_list: vec![1.0],
        ..config.eval_dataset().clone()
    }
}

/// The one-line message of opening a set, which must fail.
fn open_error(config: &EvalDataset) -> String {
    let e = Dataset::open(config, &OpenOptions::default()).unwrap_err().to_string();
    assert!(!e.contains('\n'), "{e}");
    e
}

const BOX: &str = r####"[{"transcription": "ab", "points": [[1, 1], [9, 1], [9, 5], [1, 5]]}, {"transcription": "###", "points": [[2, 2], [3, 2], [3, 3]]}]"####;

#[test]
fn det_sets_substitute_boxless_labels_and_batch_by_shape() {
    let lines = format!("img/a.png\t{BOX}\nimg/b.png\t[]\nimg/c.jpg\t{BOX}\n");
    let dir = set_dir(
        "det",
        &lines,
        &[
            ("a.png", "cv_rgb8.png"),
            ("b.png", "cv_gray8.png"),
            ("c.jpg", "cv_420_q90.jpg"),
        ],
    );
    let set = Dataset::open(&eval_dataset("ch_det_mv3_db_v2.0.yml", &dir), &OpenOptions::default()).unwrap();
    assert_eq!(set.len(), 3);
    // The box-less line 2 is evaluated as line 3, as PaddleOCR's __getitem__ does.
    let lines: Vec<usize> = (0..3).map(|i| set.entry_at(i).line).collect();
    assert_eq!(lines, vec![1, 3, 3]);
    let samples: Vec<_> = set.iter().map(Result::unwrap).collect();
    let Target::Det { polygons, ignore } = &samples[0].target else {
        panic!()
    };
    assert_eq!(ignore, &vec![false, true]);
    assert_eq!(polygons[1], vec![[2.0, 2.0], [3.0, 2.0], [3.0, 3.0], [3.0, 3.0]]);
    // 13x22 is padded to 32x32 and scaled to 736; 72x96 scales its short side to 736 (981.33 -> 992).
    assert_eq!(samples[0].shape, [3, 736, 736]);
    assert_eq!(samples[1].shape, [3, 736, 992]);
    assert_eq!(samples[1].shape_list, Some([72.0, 96.0, 736.0 / 72.0, 992.0 / 96.0]));
    let shapes: Vec<[usize; 4]> = batches(set.iter(), 8).map(|b| b.unwrap().shape).collect();
    assert_eq!(shapes, vec![[1, 3, 736, 736], [2, 3, 736, 992]]);
}

#[test]
fn malformed_lines_are_errors_naming_file_and_line() {
    let label = |dir: &Path| dir.join("label.txt").display().to_string();
    let dir = set_dir(
        "malformed",
        &format!("img/a.png\t{BOX}\nimg/a.png {BOX}\n"),
        &[("a.png", "cv_rgb8.png")],
    );
    assert_eq!(
        open_error(&eval_dataset("ch_det_mv3_db_v2.0.yml", &dir)),
        format!(
            "{}:2: no delimiter \"\\t\" between the image path and the label in {:?}",
            label(&dir),
            format!("img/a.png {BOX}")
        )
    );
    let dir = set_dir(
        "bad_json",
        "img/a.png\t[{\"points\": [[1, 2]]\n",
        &[("a.png", "cv_rgb8.png")],
    );
    let e = open_error(&eval_dataset("ch_det_mv3_db_v2.0.yml", &dir));
    assert!(
        e.starts_with(&format!("{}:1: DetLabelEncode: not valid JSON: ", label(&dir))),
        "{e}"
    );
    let dir = set_dir(
        "bad_points",
        "img/a.png\t[{\"transcription\": \"x\", \"points\": [[1, 2], [3]]}]\n",
        &[("a.png", "cv_rgb8.png")],
    );
    assert_eq!(
        open_error(&eval_dataset("ch_det_mv3_db_v2.0.yml", &dir)),
        format!(
            "{}:1: DetLabelEncode: box 0: point 1: expected [x, y] (two numbers), got [3]",
            label(&dir)
        )
    );
    let dir = set_dir(
        "cls_label",
        "img/a.png\t0\nimg/a.png\t90\n",
        &[("a.png", "cv_rgb8.png")],
    );
    assert_eq!(
        open_error(&eval_dataset("cls_mv3.yml", &dir)),
        format!(
            "{}:2: ClsLabelEncode: label \"90\" is not in label_list [\"0\", \"180\"] (PaddleOCR would skip the line)",
            label(&dir)
        )
    );
}

#[test]
fn a_missing_image_is_named_with_its_line() {
    let dir = set_dir(
        "missing",
        "img/a.png\tab\nimg/nope.png\tcd\n",
        &[("a.png", "cv_rgb8.png")],
    );
    assert_eq!(
        open_error(&eval_dataset("ch_PP-OCRv3_rec.yml", &dir)),
        format!(
            "{}:2: image 'img/nope.png' not found ({})",
            dir.join("label.txt").display(),
            dir.join("img/nope.png").display()
        )
    );
}

#[test]
fn an_image_that_does_not_decode_fails_its_sample_naming_it() {
    let dir = set_dir(
        "undecodable",
        "img/a.png\tab\nimg/bad.png\tcd\n",
        &[("a.png", "cv_rgb8.png"), ("bad.png", "")],
    );
    let set = Dataset::open(&eval_dataset("ch_PP-OCRv3_rec.yml", &dir), &OpenOptions::default()).unwrap();
    let Target::Rec { text } = set.get(0).unwrap().target else {
        panic!()
    };
    assert_eq!(text, "ab");
    let e = set.get(1).unwrap_err();
    assert!(matches!(e, DatasetError::Image { line: 2, .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "{} line 2: img/bad.png: DecodeImage: not a PNG or JPEG file (sensgrid decodes those two of the formats \
             OpenCV reads)",
            dir.join("label.txt").display(),
        )
    );
}

#[test]
fn rec_sets_give_fixed_shapes_and_raw_text_and_take_a_label_filter() {
    let dir = set_dir(
        "rec",
        "img/a.png\tab\nimg/b.jpg\t\nimg/a.png\tx\ty\r\n",
        &[("a.png", "cv_rgb8.png"), ("b.jpg", "pil_444_q92.jpg")],
    );
    let mut set = Dataset::open(&eval_dataset("ch_PP-OCRv3_rec.yml", &dir), &OpenOptions::default()).unwrap();
    let texts: Vec<String> = set
        .iter()
        .map(|s| match s.unwrap().target {
            Target::Rec { text } => text,
            other => panic!("{other:?}"),
        })
        .collect();
    // The second field only: PaddleOCR drops what follows another delimiter.
    assert_eq!(texts, vec!["ab", "", "x"]);
    // What the rec label encoder rejects (here: empty texts) is evaluated as the next line.
    set.skip_where(|e| e.label.is_empty()).unwrap();
    assert_eq!((0..3).map(|i| set.entry_at(i).line).collect::<Vec<_>>(), vec![1, 3, 3]);
    let shapes: Vec<[usize; 4]> = batches(set.iter(), 2).map(|b| b.unwrap().shape).collect();
    assert_eq!(shapes, vec![[2, 3, 48, 320], [1, 3, 48, 320]]);
    let e = set.skip_where(|_| true).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: no usable line (every label is empty or rejected by the label transform)",
            dir.join("label.txt").display()
        )
    );
}

#[test]
fn ratio_list_and_eval_samples_choose_lines_deterministically() {
    let lines: String = (0..40).map(|i| format!("img/a.png\t{i}\n")).collect();
    let dir = set_dir("ratio", &lines, &[("a.png", "cv_rgb8.png")]);
    let config = EvalDataset {
        ratio_list: vec![0.25],
        ..eval_dataset("ch_PP-OCRv3_rec.yml", &dir)
    };
    let lines = |options: &OpenOptions| -> Vec<usize> {
        let set = Dataset::open(&config, options).unwrap();
        set.entries().iter().map(|e| e.line).collect()
    };
    let a = lines(&OpenOptions::default());
    assert_eq!(a.len(), 10);
    assert!(a.windows(2).all(|w| w[0] < w[1]), "file order: {a:?}");
    assert_eq!(a, lines(&OpenOptions::default()));
    assert_ne!(
        a,
        lines(&OpenOptions {
            seed: 1,
            ..OpenOptions::default()
        })
    );
    // eval_samples: a seeded subset of the ratio_list lines, in file order; the whole set when N covers it.
    let subset = |subset_seed: u64, n: usize| {
        lines(&OpenOptions {
            eval_samples: Some(n),
            subset_seed,
            ..OpenOptions::default()
        })
    };
    let three = subset(0, 3);
    assert_eq!(three.len(), 3);
    assert!(three.iter().all(|l| a.contains(l)), "{three:?} among {a:?}");
    assert!(three.windows(2).all(|w| w[0] < w[1]), "file order: {three:?}");
    assert_eq!(three, subset(0, 3), "the same seed, the same lines");
    assert_ne!(subset(0, 5), subset(1, 5), "another seed, other lines");
    assert_eq!(subset(0, 10), a);
    assert_eq!(subset(7, 99), a);
    // round(40 * 0.3125) = round(12.5) = 12, half to even.
    let config = EvalDataset {
        ratio_list: vec![0.3125],
        ..config
    };
    assert_eq!(Dataset::open(&config, &OpenOptions::default()).unwrap().len(), 12);

    // Lines the subset leaves out are not parsed, so a malformed one there does not matter.
    let mut text = std::fs::read_to_string(dir.join("label.txt")).unwrap();
    text.push_str("no delimiter here\n");
    std::fs::write(dir.join("label.txt"), text).unwrap();
    let full = EvalDataset {
        ratio_list: vec![1.0],
        ..config
    };
    let set = (0..64)
        .find_map(|subset_seed| {
            let options = OpenOptions {
                eval_samples: Some(20),
                subset_seed,
                ..OpenOptions::default()
            };
            Dataset::open(&full, &options).ok()
        })
        .expect("a seed that leaves line 41 out");
    assert_eq!(set.len(), 20);
    assert_eq!(set.available(), 41);
    assert!(set.entries().iter().all(|e| e.line != 41));
    assert!(
        open_error(&full)
            .ends_with(":41: no delimiter \"\\t\" between the image path and the label in \"no delimiter here\"")
    );
}
