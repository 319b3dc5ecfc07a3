//! Loading folds every Constant node and constant-only subgraph, and writing back loses nothing.

use sensgrid_model::ir::{DataType, Dim};
use sensgrid_model::onnx;

use crate::{MODELS, model_path};

#[test]
fn pp_ocr_models_load_with_weights_as_constants() {
    for file in MODELS {
        let graph = onnx::read(&model_path(file)).unwrap();
        let ops = graph.op_histogram();
        assert!(!ops.contains_key("Constant"), "{file}: {ops:?}");
        assert_eq!(graph.inputs.len(), 1, "{file}");
        let input = graph.inputs[0].fact.as_ref().unwrap();
        assert_eq!(input.dtype, DataType::Float);
        assert_eq!(input.shape.as_ref().unwrap()[1], Dim::Known(3), "{file}");
        // Every conv weight is a constant, whichever way the file built it.
        for conv in graph.nodes.iter().filter(|n| n.op_type == "Conv") {
            let weight = &graph.constants[conv.input(1).unwrap()];
            assert_eq!(weight.dims().len(), 4, "{file}: {}", conv.name);
        }
        // No node is left whose inputs are all constants and that folding should have removed.
        for node in &graph.nodes {
            let all_const = node
                .inputs
                .iter()
                .all(|i| i.is_empty() || graph.constants.contains_key(i));
            assert!(
                !(all_const && ["Reshape", "Concat", "Slice", "Unsqueeze", "Cast"].contains(&node.op_type.as_str())),
                "{file}: {} ({}) was not folded",
                node.name,
                node.op_type
            );
        }
    }
}

#[test]
fn pp_ocrv2_rec_lstm_weights_are_folded() {
    let graph = onnx::read(&model_path("ch_PP-OCRv2_rec_infer.onnx")).unwrap();
    let lstms: Vec<_> = graph.nodes.iter().filter(|n| n.op_type == "LSTM").collect();
    assert_eq!(lstms.len(), 2);
    for lstm in lstms {
        let hidden = lstm.attr_int("hidden_size").unwrap().unwrap() as usize;
        let w = &graph.constants[lstm.input(1).unwrap()];
        let r = &graph.constants[lstm.input(2).unwrap()];
        assert_eq!(w.dims()[1], 4 * hidden, "{}", lstm.name);
        assert_eq!(r.dims()[1..], [4 * hidden, hidden], "{}", lstm.name);
    }
}

#[test]
fn writing_and_reading_back_gives_the_same_graph() {
    for file in MODELS {
        let graph = onnx::read(&model_path(file)).unwrap();
        let again = onnx::decode(&onnx::encode(&graph)).unwrap();
        assert_eq!(again.nodes, graph.nodes, "{file}");
        assert_eq!(again.constants, graph.constants, "{file}");
        assert_eq!(again.inputs, graph.inputs, "{file}");
        assert_eq!(again.outputs, graph.outputs, "{file}");
        assert_eq!(again.metadata, graph.metadata, "{file}");
    }
}

#[test]
fn bad_files_give_one_clear_error() {
    let dir = std::env::temp_dir().join(format!("sensgrid-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(model_path("ch_PP-OCRv3_det_infer.onnx")).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = onnx::read(&truncated).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: not a valid ONNX model", truncated.display())),
        "{err}"
    );

    let text = dir.join("notes.onnx");
    std::fs::write(&text, "just some text, not protobuf\n").unwrap();
    let err = onnx::read(&text).unwrap_err().to_string();
    assert!(err.contains("notes.onnx"), "{err}");

    // A sparse file over the limit: refused by its size, before a byte is read.
    let huge = dir.join("huge.onnx");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(onnx::MAX_MODEL_BYTES + 1)
        .unwrap();
    let err = onnx::read(&huge).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: 2147483648 bytes, more than", huge.display())) && err.contains("2 GiB"),
        "{err}"
    );

    let missing = dir.join("missing.onnx");
    let err = onnx::read(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.onnx") && err.contains("No such file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
