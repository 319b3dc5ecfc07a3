//! Hostile input, each case as the "Hostile input" issue reported it: a label line that leaves the data folder,
//! an image whose header claims 30 GB, images that do not decode, empty, marked and oversized label files, a
//! misspelt section, a negative batch size, null ratios and a 2 MiB config. Each is refused with one line
//! naming the file and line the user wrote.

use std::io::Read;
use std::path::{Path, PathBuf};

use sensgrid_eval::config::Config;
use sensgrid_eval::dataset::{Dataset, MAX_LABEL_LINES, OpenOptions};
use sensgrid_eval::evaluate::open_dataset;
use sensgrid_eval::{bundle, config};

use crate::config::{DET_OVERRIDES, det_with, error, fixture as config_fixture, fixture_text, one_line};
use crate::image::{bytes, fixture};

/// The 68-byte PNG whose IHDR claims 100000x100000 pixels (8-bit RGB: 30 GB decoded).
const POISON: &str = "header_100000x100000.png";

/// The message every refusal of the poisoned PNG ends with.
const POISON_CLAIM: &str = "DecodeImage: PNG header claims 100000x100000 pixels, over the limit of 16384 pixels a \
                            side and 64 Mpx (67108864 pixels) in all";

/// A fresh rec set for one test: `label.txt` holding `lines`, and under `img/` each named image's bytes.
fn rec_set(test: &str, lines: &str, images: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("img")).unwrap();
    std::fs::write(dir.join("label.txt"), lines).unwrap();
    for (name, data) in images {
        std::fs::write(dir.join("img").join(name), data).unwrap();
    }
    dir
}

/// The rec fixture config pointed at the set in `dir`, with the dictionary of `make setup`.
fn rec_config(dir: &Path) -> Config {
    let dict = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ppocr_keys_v1.txt");
    let overrides = [
        "Global.pretrained_model=m.onnx".to_owned(),
        format!("Global.character_dict_path={}", dict.display()),
        format!("Eval.dataset.data_dir={}", dir.display()),
        format!("Eval.dataset.label_file_list=[{}]", dir.join("label.txt").display()),
    ];
    Config::load(config_fixture("ch_PP-OCRv3_rec.yml"), &overrides).unwrap()
}

/// The one-line message of opening the set of `config`, which must fail.
fn open_error(config: &Config) -> String {
    let e = Dataset::open(config.eval_dataset(), &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    e
}

/// The one-line message of packing the set of `config`, which must fail.
fn pack_error(config: &Config) -> String {
    let e = bundle::pack(config, &mut Vec::new()).unwrap_err().to_string();
    assert!(!e.contains('\n'), "{e}");
    e
}

fn png() -> Vec<u8> {
    bytes("decode", "cv_rgb8.png")
}

#[test]
fn label_lines_leaving_data_dir_are_refused_naming_file_line_and_path() {
    let dir = rec_set(
        "escape",
        "img/a.png\tab\n../../../../../../etc/passwd\tx\n",
        &[("a.png", png())],
    );
    let label = dir.join("label.txt");
    let expected = format!(
        "{}:2: image path '../../../../../../etc/passwd' leaves data_dir '{}' (image paths are relative to it and \
         stay inside)",
        label.display(),
        dir.display()
    );
    assert_eq!(open_error(&rec_config(&dir)), expected);
    // Refused before anything is packed for the coordinator.
    assert_eq!(pack_error(&rec_config(&dir)), expected);

    let dir = rec_set("absolute", "/etc/passwd\tx\n", &[]);
    assert!(
        open_error(&rec_config(&dir)).starts_with(&format!(
            "{}:1: image path '/etc/passwd' leaves data_dir",
            dir.join("label.txt").display()
        )),
        "{}",
        open_error(&rec_config(&dir))
    );
    let dir = rec_set("climb", "img/../../set/img/a.png\tx\n", &[("a.png", png())]);
    assert!(open_error(&rec_config(&dir)).contains("leaves data_dir"));

    // Inside: an absolute path under data_dir, and `..` that stays within it.
    let dir = rec_set("inside", "", &[("a.png", png())]);
    let lines = format!("{}\tab\nimg/../img/a.png\tcd\n", dir.join("img/a.png").display());
    std::fs::write(dir.join("label.txt"), lines).unwrap();
    let set = Dataset::open(rec_config(&dir).eval_dataset(), &OpenOptions::default()).unwrap();
    assert_eq!(set.len(), 2);
}

#[test]
fn a_symbolic_link_out_of_data_dir_is_refused() {
    let dir = rec_set("symlink", "img/link.png\tab\n", &[]);
    let outside = fixture("decode", "cv_rgb8.png");
    std::os::unix::fs::symlink(&outside, dir.join("img/link.png")).unwrap();
    assert_eq!(
        open_error(&rec_config(&dir)),
        format!(
            "{}:1: image path 'img/link.png' leads outside data_dir '{}' through a symbolic link (to {}); point \
             data_dir at the folder the images are in",
            dir.join("label.txt").display(),
            dir.display(),
            outside.canonicalize().unwrap().display()
        )
    );
}

#[test]
fn packing_decodes_every_image_and_names_the_users_line_for_one_that_fails() {
    let label = |dir: &Path| dir.join("label.txt").display().to_string();
    let poison = bytes("hostile", POISON);
    assert_eq!(poison.len(), 68);
    let dir = rec_set(
        "pack_poison",
        "img/a.png\tab\nimg/poison.png\tcd\n",
        &[("a.png", png()), ("poison.png", poison)],
    );
    assert_eq!(
        pack_error(&rec_config(&dir)),
        format!("{} line 2: img/poison.png: {POISON_CLAIM}", label(&dir))
    );

    let whole = png();
    let cases = [
        ("empty", Vec::new(), "DecodeImage: empty file".to_owned()),
        (
            "text",
            b"just some text\n".to_vec(),
            "DecodeImage: not a PNG or JPEG file (sensgrid decodes those two of the formats OpenCV reads)".to_owned(),
        ),
        (
            "truncated",
            whole[..whole.len() / 2].to_vec(),
            "DecodeImage: corrupt PNG: ".to_owned(),
        ),
    ];
    for (name, data, reason) in cases {
        let dir = rec_set(
            &format!("pack_{name}"),
            &format!("img/a.png\tab\nimg/{name}.png\tcd\n"),
            &[("a.png", png()), (&format!("{name}.png"), data)],
        );
        let e = pack_error(&rec_config(&dir));
        let start = format!("{} line 2: img/{name}.png: {reason}", label(&dir));
        assert!(e.starts_with(&start), "{name}: {e}");
    }

    // Of several bad images, decoded on several threads, the first in set order is named, every time.
    let mut lines = String::from("img/a.png\tab\n");
    let mut images = vec![("a.png".to_owned(), png())];
    for i in 0..16 {
        lines.push_str(&format!("img/{i}.png\tx\n"));
        images.push((format!("{i}.png"), if i < 5 { png() } else { Vec::new() }));
    }
    let images: Vec<(&str, Vec<u8>)> = images.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let dir = rec_set("pack_first", &lines, &images);
    for _ in 0..3 {
        assert_eq!(
            pack_error(&rec_config(&dir)),
            format!("{} line 7: img/5.png: DecodeImage: empty file", label(&dir))
        );
    }
}

/// The bundle `packed` with the bytes of its `index`th image (in entry order) replaced by `data`, as a hostile
/// client would upload it past `pack`.
fn swap_image(packed: &[u8], index: usize, data: &[u8]) -> Vec<u8> {
    let mut archive = tar::Archive::new(packed);
    let mut out = tar::Builder::new(Vec::new());
    let mut images = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().into_owned();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if name.starts_with(bundle::IMAGES) {
            if images == index {
                content = data.to_vec();
            }
            images += 1;
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.append_data(&mut header, &name, content.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

#[test]
fn an_image_failing_on_a_worker_is_named_by_the_submitters_label_file_line_and_path() {
    let dir = rec_set(
        "worker",
        "img/a.png\tab\nimg/b.png\tcd\nimg/c.png\tef\n",
        &[("a.png", png()), ("b.png", png()), ("c.png", png())],
    );
    let config = rec_config(&dir);
    let mut packed = Vec::new();
    bundle::pack(&config, &mut packed).unwrap();
    let forced = swap_image(&packed, 1, &bytes("hostile", POISON));

    let unpacked = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile/worker-cache");
    let _ = std::fs::remove_dir_all(&unpacked);
    bundle::unpack(forced.as_slice(), &unpacked).unwrap();
    let rebase = bundle::rebase(&unpacked, Path::new("/models/m.onnx")).unwrap();
    let text = config.to_yaml();
    let on_worker = Config::from_yaml(&text, "run 1 config", &rebase).unwrap();
    let set = open_dataset(&on_worker, &OpenOptions::default()).unwrap();
    assert!(set.get(0).is_ok());
    assert_eq!(
        set.get(1).unwrap_err().to_string(),
        format!("{} line 2: img/b.png: {POISON_CLAIM}", dir.join("label.txt").display())
    );
    // The image really is the worker's copy.
    assert!(set.entry_at(1).image_path.starts_with(&unpacked));
}

#[test]
fn empty_and_byte_order_marked_label_files_are_refused_naming_them() {
    let dir = rec_set("empty_label", "", &[]);
    assert_eq!(
        open_error(&rec_config(&dir)),
        format!(
            "{}: empty label file (an eval set needs at least one line)",
            dir.join("label.txt").display()
        )
    );
    let dir = rec_set("bom", "\u{feff}img/a.png\tab\n", &[("a.png", png())]);
    assert_eq!(
        open_error(&rec_config(&dir)),
        format!(
            "{}:1: the file starts with a UTF-8 byte order mark (bytes EF BB BF), which PaddleOCR reads as part of \
             the first image path; save the file as UTF-8 without it",
            dir.join("label.txt").display()
        )
    );
}

#[test]
fn oversized_label_files_are_refused_before_they_are_read() {
    let dir = rec_set("large_label", "", &[]);
    let label = dir.join("label.txt");
    // Sparse: 65 MiB on paper, nothing on disk.
    std::fs::File::create(&label).unwrap().set_len(65 << 20).unwrap();
    assert_eq!(
        open_error(&rec_config(&dir)),
        format!(
            "{}: 68157440 bytes, over the limit of 64 MiB (67108864 bytes) for a label file",
            label.display()
        )
    );
    std::fs::write(&label, "\n".repeat(MAX_LABEL_LINES + 1)).unwrap();
    assert_eq!(
        open_error(&rec_config(&dir)),
        format!(
            "{}: more than 4000000 lines, the limit for a label file",
            label.display()
        )
    );
}

#[test]
fn a_misspelt_section_is_refused_with_the_nearest_name() {
    let text = format!(
        "{}Sensitivty:\n  ratios: [0.1]\n",
        fixture_text("ch_det_mv3_db_v2.0.yml")
    );
    let line = text.lines().count() - 1;
    assert_eq!(
        error(&text, &DET_OVERRIDES),
        format!("det.yml:{line}: unknown section 'Sensitivty' (did you mean Sensitivity?)")
    );
    let text = format!("{}Pruning:\n  max_loss: 0.1\n", fixture_text("ch_det_mv3_db_v2.0.yml"));
    assert_eq!(
        error(&text, &DET_OVERRIDES),
        format!(
            "det.yml:{line}: unknown section 'Pruning' (expected one of Global, Architecture, Loss, Optimizer, \
             PostProcess, Metric, Train, Eval, profiler_options, Sensitivity, Prune, Recover)"
        )
    );
    // The same rule for a section an override creates.
    let overrides = [&DET_OVERRIDES[..], &["Sensitivty={ratios: [0.1]}"]].concat();
    assert_eq!(
        error(&fixture_text("ch_det_mv3_db_v2.0.yml"), &overrides),
        "-o Sensitivty={ratios: [0.1]}: unknown section 'Sensitivty' (did you mean Sensitivity?)"
    );
}

#[test]
fn a_batch_size_below_one_is_refused_in_the_file_and_in_overrides() {
    let from = "batch_size_per_card: 1 # eval runs one image at a time";
    assert_eq!(
        error(&det_with(from, "batch_size_per_card: -4"), &DET_OVERRIDES),
        "det.yml:133: Eval.loader.batch_size_per_card: expected an integer >= 1, got -4"
    );
    let overrides = [&DET_OVERRIDES[..], &["Eval.loader.batch_size_per_card=-4"]].concat();
    assert_eq!(
        error(&fixture_text("ch_det_mv3_db_v2.0.yml"), &overrides),
        "-o Eval.loader.batch_size_per_card=-4: expected an integer >= 1, got -4"
    );
    let loaded = Config::from_yaml(&det_with(from, "batch_size_per_card: 6"), "det.yml", &DET_OVERRIDES).unwrap();
    assert_eq!(loaded.eval_batch_size(), Some(6));
}

#[test]
fn null_ratios_are_refused_rather_than_defaulted() {
    let text = format!("{}Sensitivity:\n  ratios:\n", fixture_text("ch_det_mv3_db_v2.0.yml"));
    let line = text.lines().count();
    assert_eq!(
        error(&text, &DET_OVERRIDES),
        format!(
            "det.yml:{line}: Sensitivity.ratios: expected a list of ratios, got null (leave the key out for \
             PaddleSlim's default, 0.1 to 0.8)"
        )
    );
    let overrides = [&DET_OVERRIDES[..], &["Sensitivity.ratios="]].concat();
    assert_eq!(
        error(&fixture_text("ch_det_mv3_db_v2.0.yml"), &overrides),
        "-o Sensitivity.ratios=: expected a list of ratios, got null (leave the key out for PaddleSlim's default, \
         0.1 to 0.8)"
    );
}

#[test]
fn config_files_and_overrides_over_one_mib_are_refused_before_parsing() {
    let padding = format!("# {}\n", "x".repeat(1021)).repeat(2048);
    let text = format!("{}{padding}", fixture_text("ch_det_mv3_db_v2.0.yml"));
    let size = text.len();
    let path = crate::config::write_config("hostile_large", "det.yml", &text);
    let e = one_line(Config::load(&path, &DET_OVERRIDES).unwrap_err());
    assert_eq!(
        e,
        format!(
            "{}: {size} bytes, over the limit of 1 MiB (1048576 bytes) for a config (PaddleOCR's take a few KB)",
            path.display()
        )
    );
    // Text already in memory is its caller's to bound: what `to_yaml` writes must read back.
    let read = Config::from_yaml(&text, "det.yml", &DET_OVERRIDES).unwrap();
    assert!(read.to_yaml().len() < text.len());
    let long = format!("Global.note={}", "y".repeat(config::MAX_CONFIG_BYTES));
    let overrides = [&DET_OVERRIDES[..], &[long.as_str()]].concat();
    assert_eq!(
        error(&fixture_text("ch_det_mv3_db_v2.0.yml"), &overrides),
        format!(
            "-o Global.note=yyyyyyyyyyyyyyyyyyyyyyyyyyyy…: {} bytes, over the limit of 1 MiB (1048576 bytes) for an \
             override",
            long.len()
        )
    );
}
