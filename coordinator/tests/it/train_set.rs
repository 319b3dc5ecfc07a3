//! `submit` bundles a recovery's training set with the listing the worker's `worker recover` reads (issue
//! 25): labels are not needed, and image paths stay inside `data_dir`.

use std::path::{Path, PathBuf};

use sensgrid_coordinator::submit::prepare;
use sensgrid_eval::bundle::{self, TrainSet};

/// A 4x4 RGB PNG of one `shade` at `path`.
fn write_png(path: &Path, shade: u8) {
    let mut encoder = png::Encoder::new(std::fs::File::create(path).unwrap(), 4, 4);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[shade; 4 * 4 * 3]).unwrap();
    writer.finish().unwrap();
}

/// The cls example of `cli::cls_config` in `dir` with a `Recover` section whose training set is `train/`
/// (holding one.png and two.png) and its label file `list.txt`, holding `lines`. Answers the config, the
/// overrides and the label file.
fn recover_config(dir: &Path, lines: &str) -> (PathBuf, Vec<String>, PathBuf) {
    let config = crate::cli::cls_config(dir, "a.png\t0\n");
    let train = dir.join("train");
    std::fs::create_dir_all(&train).unwrap();
    write_png(&train.join("one.png"), 10);
    write_png(&train.join("two.png"), 200);
    let list = train.join("list.txt");
    std::fs::write(&list, lines).unwrap();
    let overrides = vec![
        format!("Recover.data_dir={}", train.display()),
        format!("Recover.label_file_list=[{}]", list.display()),
    ];
    (config, overrides, list)
}

/// A training list of bare image paths (no labels; the eval set's parsing would refuse every line) is
/// accepted, and its bundle, unpacked as a worker does, holds those images in the list's order, a repeat
/// kept.
#[test]
fn submit_bundles_a_training_list_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (config, overrides, _) = recover_config(dir.path(), "two.png\none.png\ntwo.png\n");
    let prepared = prepare(&config, &overrides, None).unwrap();
    let train_set = prepared.train_set.expect("a Recover section bundles its training set");
    assert_eq!(
        prepared.spec.recover.map(|r| r.train_set_digest),
        Some(sensgrid_client::sha256_hex(&train_set))
    );

    let unpacked = dir.path().join("unpacked");
    bundle::unpack(train_set.as_slice(), &unpacked).unwrap();
    let bundled = TrainSet {
        data_dir: unpacked.clone(),
        label_file_list: vec![unpacked.join(bundle::LABELS)],
    };
    let images: Vec<Vec<u8>> = bundled
        .images("\t")
        .unwrap()
        .iter()
        .map(|image| image.read().unwrap())
        .collect();
    let original = |name: &str| std::fs::read(dir.path().join("train").join(name)).unwrap();
    assert_eq!(images, [original("two.png"), original("one.png"), original("two.png")]);
}

/// A training list line that leaves `data_dir` is refused at submit, naming the label file and line.
#[test]
fn submit_refuses_a_training_image_outside_data_dir_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("outside.png"), 99);
    let (config, overrides, list) = recover_config(dir.path(), "one.png\n../outside.png\n");
    let refusal = match prepare(&config, &overrides, None) {
        Ok(_) => panic!("a training image outside data_dir was accepted"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        refusal.contains(&format!(
            "{}:2: image path '../outside.png' leaves data_dir",
            list.display()
        )),
        "{refusal}"
    );
}
