//! The Python reference's cases: dictionary files, CTC decoding (ties, repeats, blanks, long paths,
//! right-to-left reordering), label encoding, the rec metric batch by batch, and cls.

use sensgrid_eval::cls::{ClsLabelEncode, ClsMetric, ClsPostProcess};
use sensgrid_eval::rec::{CharacterDict, CtcLabelDecode, CtcLabelEncode, LabelTransform, RecMetric};

use super::{cases, fixture, probs, strings, usize_of};

fn dict_named(name: &str) -> CharacterDict {
    match name {
        "mixed" => CharacterDict::from_file(fixture("dict_mixed.txt"), true).unwrap(),
        "arabic" => CharacterDict::from_file(fixture("arabic_dict.txt"), false).unwrap(),
        "default" => CharacterDict::default_alphanumeric(),
        other => panic!("unknown dictionary {other}"),
    }
}

#[test]
fn dictionary_files_read_as_paddleocr_reads_them() {
    let all = cases();
    for case in all["dicts"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let use_space = case["use_space_char"].as_bool().unwrap();
        let dict = CharacterDict::from_file(fixture(file), use_space).unwrap();
        assert_eq!(
            dict.entries(),
            strings(&case["entries"]),
            "{file}, use_space_char {use_space}"
        );
        assert_eq!(dict.reverses_text(), file.contains("arabic"), "{file}");
    }
    let dict = dict_named("mixed");
    for (c, index) in all["lookup"].as_object().unwrap() {
        let mut it = c.chars();
        let ch = it.next().unwrap();
        assert!(it.next().is_none());
        assert_eq!(dict.index_of(ch), Some(usize_of(index)), "{c:?}");
    }
}

#[test]
fn ctc_decoding_matches_numpy() {
    let all = cases();
    let decode_cases = all["decode"].as_array().unwrap();
    assert!(decode_cases.len() >= 30);
    for case in decode_cases {
        let name = case["name"].as_str().unwrap();
        let mut decoder = CtcLabelDecode::new(dict_named(case["dict"].as_str().unwrap()));
        decoder.is_remove_duplicate = case["is_remove_duplicate"].as_bool().unwrap();
        let shape: Vec<usize> = case["shape"].as_array().unwrap().iter().map(usize_of).collect();
        let out = decoder
            .decode(&probs(&case["q"]), shape[0], shape[1], shape[2])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = case["out"].as_array().unwrap();
        assert_eq!(out.len(), expected.len(), "{name}");
        for (b, ((text, conf), want)) in out.iter().zip(expected).enumerate() {
            assert_eq!(text, want[0].as_str().unwrap(), "{name}[{b}] text");
            // Bit for bit: numpy's float32 mean, widened to a Python float.
            assert_eq!(*conf as f64, want[1].as_f64().unwrap(), "{name}[{b}] confidence");
        }
    }
}

#[test]
fn label_encoding_matches_paddleocr() {
    let all = cases();
    for case in all["encode"].as_array().unwrap() {
        let transform = match case["transform"].as_str().unwrap() {
            "ctc" => LabelTransform::Ctc,
            "multi" => LabelTransform::Multi,
            other => panic!("unknown transform {other}"),
        };
        let max = usize_of(&case["max_text_length"]);
        let encoder = CtcLabelEncode::new(dict_named(case["dict"].as_str().unwrap()), max, transform);
        let decoder = CtcLabelDecode::new(encoder.dict().clone());
        for item in case["items"].as_array().unwrap() {
            let text = item["text"].as_str().unwrap();
            let what = format!("{} {max} {transform:?} {text:?}", case["dict"]);
            let indices: Option<Vec<usize>> = item["indices"].as_array().map(|a| a.iter().map(usize_of).collect());
            assert_eq!(encoder.encode(text), indices, "{what}");
            let target = item["target"].as_str().map(str::to_string);
            assert_eq!(encoder.target(text), target, "{what}");
            if let Some(indices) = indices {
                // What PaddleOCR's metric sees: the padded label decoded back.
                let mut padded = indices.clone();
                padded.resize(max, 0);
                assert_eq!(Some(decoder.decode_label(&padded).unwrap()), target, "{what}");
            }
        }
    }
}

#[test]
fn rec_metric_matches_paddleocr_batch_by_batch() {
    let all = cases();
    for case in all["metric"].as_array().unwrap() {
        let is_filter = case["is_filter"].as_bool().unwrap();
        let ignore_space = case["ignore_space"].as_bool().unwrap();
        let what = format!("is_filter {is_filter}, ignore_space {ignore_space}");
        let mut metric = RecMetric::with_options(is_filter, ignore_space);
        let mut samples = case["per_sample"].as_array().unwrap().iter();
        for (batch, want) in case["batches"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["per_batch"].as_array().unwrap())
        {
            let pairs: Vec<(&str, &str)> = batch
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_str().unwrap(), p[1].as_str().unwrap()))
                .collect();
            for &(pred, target) in &pairs {
                let sample = samples.next().unwrap();
                let (correct, dis) = metric.evaluate(pred, target);
                assert_eq!(correct, sample[0].as_bool().unwrap(), "{what}: {pred:?} vs {target:?}");
                assert_eq!(dis, sample[1].as_f64().unwrap(), "{what}: {pred:?} vs {target:?}");
            }
            let got = metric.accumulate_batch(pairs.iter().copied());
            assert_eq!(got.acc, want["acc"].as_f64().unwrap(), "{what}");
            assert_eq!(got.norm_edit_dis, want["norm_edit_dis"].as_f64().unwrap(), "{what}");
        }
        let fin = metric.finalize();
        assert_eq!(fin.acc, case["final"]["acc"].as_f64().unwrap(), "{what}");
        assert_eq!(
            fin.norm_edit_dis,
            case["final"]["norm_edit_dis"].as_f64().unwrap(),
            "{what}"
        );
    }
}

#[test]
fn cls_matches_paddleocr() {
    let all = cases();
    for case in all["cls"].as_array().unwrap() {
        let labels = strings(&case["label_list"]);
        let shape: Vec<usize> = case["shape"].as_array().unwrap().iter().map(usize_of).collect();
        let out = ClsPostProcess::new(labels.clone())
            .decode(&probs(&case["q"]), shape[0], shape[1])
            .unwrap();
        let expected: Vec<(String, f64)> = case["out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o[0].as_str().unwrap().to_string(), o[1].as_f64().unwrap()))
            .collect();
        let got: Vec<(String, f64)> = out.iter().map(|(l, s)| (l.clone(), *s as f64)).collect();
        assert_eq!(got, expected);

        let encode = ClsLabelEncode::new(labels);
        let targets = strings(&case["targets"]);
        let targets: Vec<&str> = targets.iter().map(|t| encode.target(t).unwrap()).collect();
        let mut metric = ClsMetric::new();
        metric.accumulate_batch(out.iter().map(|(l, _)| l.as_str()).zip(targets));
        assert_eq!(metric.finalize().acc, case["acc"].as_f64().unwrap());
    }
}
