//! Eval bundles: a packed set unpacks into the same lines and image bytes, the same set packs to the same
//! bytes, and the rebased config reads the bundle's copy of everything (set, dictionary). Needs the fonts and
//! `models/ppocr_keys_v1.txt` from `make setup`.

use std::path::{Path, PathBuf};

use sensgrid_eval::dataset::{Dataset, OpenOptions};
use sensgrid_eval::synth::{self, ImageFormat, Kind, SynthOptions};
use sensgrid_eval::{Config, bundle};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bundle").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_sampled_rec_set_round_trips_through_a_bundle_with_its_dictionary() {
    let data = scratch("data");
    let options = SynthOptions {
        out: data.clone(),
        count: 10,
        seed: 31,
        format: ImageFormat::Png,
        fonts: synth::repo_fonts_dir(),
    };
    synth::generate(Kind::Rec, &options).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/configs/ch_PP-OCRv3_rec.yml");
    let overrides = [
        "Global.pretrained_model=m.onnx".to_owned(),
        format!(
            "Global.character_dict_path={}",
            root.join("models/ppocr_keys_v1.txt").display()
        ),
        format!("Eval.dataset.data_dir={}", data.display()),
        format!("Eval.dataset.label_file_list=[{}]", data.join("label.txt").display()),
        "Eval.dataset.ratio_list=[0.5]".to_owned(),
    ];
    let config = Config::load(&config_path, &overrides).unwrap();

    let (mut first, mut second) = (Vec::new(), Vec::new());
    let packed = bundle::pack(&config, &mut first).unwrap();
    bundle::pack(&config, &mut second).unwrap();
    assert_eq!(first, second, "the same set packed twice differs");
    assert_eq!(packed.lines, 5, "ratio 0.5 of 10 lines");

    let unpacked = scratch("unpacked");
    bundle::unpack(first.as_slice(), &unpacked).unwrap();
    let rebase = bundle::rebase(&unpacked, Path::new("/models/m.onnx")).unwrap();
    let text = std::fs::read_to_string(&config_path).unwrap();
    let rebased = Config::from_yaml(&text, &config_path, &rebase).unwrap();
    assert_eq!(
        rebased.character_dict_path(),
        Some(unpacked.join(bundle::DICT).as_path())
    );
    assert_eq!(
        std::fs::read(unpacked.join(bundle::DICT)).unwrap(),
        std::fs::read(root.join("models/ppocr_keys_v1.txt")).unwrap()
    );
    assert_eq!(rebased.model_path(), Path::new("/models/m.onnx"));

    let original = Dataset::open(config.eval_dataset(), &OpenOptions::default()).unwrap();
    let copy = Dataset::open(rebased.eval_dataset(), &OpenOptions::default()).unwrap();
    assert_eq!(copy.entries().len(), original.entries().len());
    for (a, b) in original.entries().iter().zip(copy.entries()) {
        assert_eq!(a.label, b.label);
        assert!(b.image_path.starts_with(&unpacked), "{}", b.image_path.display());
        assert_eq!(
            std::fs::read(&a.image_path).unwrap(),
            std::fs::read(&b.image_path).unwrap()
        );
    }
}
