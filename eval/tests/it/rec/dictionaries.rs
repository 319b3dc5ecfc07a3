//! The real dictionaries: `models/ppocr_keys_v1.txt` (PP-OCRv2 rec, `use_space_char: true`) and
//! `models/ppocrv4_rec_keys.txt`, which `make setup` writes from PP-OCRv4 rec's ONNX metadata with
//! `scripts/oracle/dump_dict.py`.

use std::path::PathBuf;

use sensgrid_eval::rec::{CharacterDict, CtcLabelDecode, RecError};

fn model_file(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(name);
    assert!(path.exists(), "{} is missing: run `make setup`", path.display());
    path
}

#[test]
fn ppocr_keys_v1_fits_the_v2_rec_output() {
    let dict = CharacterDict::from_file(model_file("ppocr_keys_v1.txt"), true).unwrap();
    // ch_PP-OCRv2_rec_infer.onnx outputs [-1, 25, 6625]: 6623 lines, the space, the blank.
    assert_eq!(dict.len(), 6625);
    assert_eq!(dict.get(0), Some("blank"));
    assert_eq!(dict.get(1), Some("'"));
    assert_eq!(dict.get(6624), Some(" "));
    // The file has CRLF endings: nothing of them is left in an entry.
    assert!(dict.entries().iter().all(|e| !e.contains(['\r', '\n'])));
    assert_eq!(dict.index_of('\u{3000}'), Some(5710));
    let decoder = CtcLabelDecode::new(dict);
    assert_eq!(
        decoder.decode(&[0.0; 6624], 1, 1, 6624).unwrap_err(),
        RecError::Classes {
            expected: 6625,
            got: 6624
        }
    );
}

#[test]
fn v4_metadata_dictionary_is_v1_with_the_same_space() {
    let v1 = CharacterDict::from_file(model_file("ppocr_keys_v1.txt"), true).unwrap();
    let v4 = CharacterDict::from_file(model_file("ppocrv4_rec_keys.txt"), true).unwrap();
    assert_eq!(v4.entries(), v1.entries());
    // rapidocr's own construction from the metadata text gives the same list.
    let text = std::fs::read_to_string(model_file("ppocrv4_rec_keys.txt")).unwrap();
    assert_eq!(CharacterDict::from_onnx_metadata(&text).entries(), v1.entries());
}

#[test]
fn a_missing_dictionary_is_named() {
    let err = CharacterDict::from_file("/nonexistent/keys.txt", true).unwrap_err();
    assert!(err.to_string().starts_with("/nonexistent/keys.txt: "), "{err}");
}
