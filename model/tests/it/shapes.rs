//! Static shape inference on the real PP-OCR exports: it gets through every node at the parity tests' input
//! sizes and gives every tensor the rank the file declares. (The files' declared sizes are those of the
//! export's trace and may not hold at other input sizes: PP-OCRv2 rec declares 25 time steps. The worker's
//! `shapes` test compares every tensor with the shapes its engine records.)

use sensgrid_model::analysis::{count, groups, shapes};
use sensgrid_model::ir::TensorFact;
use sensgrid_model::onnx;

use crate::{MODELS, model_path};

/// The two input shapes of each model in the parity tests (`scripts/oracle/reference.py`).
pub const INPUT_SHAPES: [(&str, [[usize; 4]; 2]); 5] = [
    ("ch_PP-OCRv3_det_infer.onnx", [[1, 3, 320, 320], [1, 3, 256, 416]]),
    ("ch_PP-OCRv4_det_infer.onnx", [[1, 3, 320, 320], [1, 3, 256, 416]]),
    ("ch_PP-OCRv2_rec_infer.onnx", [[1, 3, 32, 160], [1, 3, 32, 320]]),
    ("ch_PP-OCRv4_rec_infer.onnx", [[1, 3, 48, 160], [1, 3, 48, 320]]),
    ("ch_ppocr_mobile_v2.0_cls_infer.onnx", [[2, 3, 48, 192], [2, 3, 48, 96]]),
];

/// Whether `dims` has the rank the declared fact gives, if it gives one.
fn fits(fact: &TensorFact, dims: &[usize]) -> bool {
    fact.shape.as_ref().is_none_or(|declared| declared.len() == dims.len())
}

#[test]
fn every_tensor_of_the_pp_ocr_models_has_a_shape_that_fits_the_file() {
    assert_eq!(INPUT_SHAPES.map(|(m, _)| m), MODELS);
    for (file, sizes) in INPUT_SHAPES {
        let graph = onnx::read(&model_path(file)).unwrap();
        for size in sizes {
            let inferred =
                shapes::infer(&graph, &[size.to_vec()]).unwrap_or_else(|e| panic!("{file} at {size:?}: {e}"));
            let produced = graph.nodes.iter().flat_map(|n| &n.outputs).filter(|o| !o.is_empty());
            for name in produced {
                assert!(inferred.contains_key(name), "{file}: no shape for '{name}'");
            }
            let declared = graph
                .outputs
                .iter()
                .filter_map(|o| Some((&o.name, o.fact.as_ref()?)))
                .chain(&graph.value_info);
            for (name, fact) in declared {
                let Some(dims) = inferred.get(name) else { continue };
                assert!(
                    fits(fact, dims),
                    "{file} at {size:?}: '{name}' is {dims:?}, declared {fact:?}"
                );
            }
            let flops = count::flops(&graph, &|n| inferred.get(n).cloned()).unwrap();
            assert_eq!(count::flops_at(&graph, &[size.to_vec()]).unwrap(), flops);
            assert!(flops > 0, "{file}");
            let analysis = groups::analyse_at(&graph, &[size.to_vec()]).unwrap();
            assert!(!analysis.groups.is_empty(), "{file}: no prunable group");
        }
    }
}
