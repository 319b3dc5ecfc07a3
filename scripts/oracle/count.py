#!/usr/bin/env python3
"""An independent count of params and FLOPs of the five PP-OCR models, for the Rust `inspect` tests.

    .oracle/bin/python scripts/oracle/count.py --out worker/tests/fixtures/inspect_counts.json

Writes {"<model file name>": {"input_shape": [...], "params": N, "flops": N}, ...}.

Conventions (the Rust side implements the same ones):
  params: the element count of every constant weight input of
            Conv and ConvTranspose (W, and B when present), Gemm (B, and C when constant),
            MatMul (the constant operand, if any), BatchNormalization (scale, B, mean, var),
          plus, for every Add with one input the output of a Conv/ConvTranspose node and the other a constant,
          that constant's element count. A constant is an initializer or a Constant node output, folded
          through Reshape and Identity of constants. LSTM weights are not counted.
  flops:  multiply-accumulates of
            Conv: prod(output shape) * prod(W.shape[1:])
            ConvTranspose: prod(input shape) * prod(W.shape[1:])
            Gemm: prod(output shape) * K
            MatMul with a constant operand: prod(output shape) * K   (K: the contracted dimension)
          Element-wise ops, pooling, LSTM, ... are not counted.
Shapes come from onnx shape inference (with data propagation) after the input dims are fixed; a shape that
inference leaves unknown is taken from an onnxruntime run with every intermediate as an output.
What happened, as run with onnx 1.19.1 / onnxruntime 1.23.2 (the script prints the split per model):
  - both det models and the v2 rec model: every shape from shape inference, onnxruntime not run;
  - ch_PP-OCRv4_rec_infer.onnx: 24 shapes (inputs/outputs of MatMul nodes behind the attention Reshapes,
    whose target shapes go through Shape/Cast/Slice/Concat) from onnxruntime, 70 from inference;
  - ch_ppocr_mobile_v2.0_cls_infer.onnx: 2 shapes (its head MatMul, behind such a Reshape) from onnxruntime.
Where both sources know a shape they were checked to agree (all do).
"""

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import REPO, run_all, write_json  # noqa: E402

MODELS = [
    ("ch_PP-OCRv3_det_infer.onnx", [1, 3, 640, 640]),
    ("ch_PP-OCRv4_det_infer.onnx", [1, 3, 640, 640]),
    ("ch_PP-OCRv2_rec_infer.onnx", [1, 3, 32, 320]),
    ("ch_PP-OCRv4_rec_infer.onnx", [1, 3, 48, 320]),
    ("ch_ppocr_mobile_v2.0_cls_infer.onnx", [1, 3, 48, 192]),
]


def constants(graph):
    """{name: array} of initializers and Constant outputs, folded through Reshape and Identity."""
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            attr = n.attribute[0]
            value = helper.get_attribute_value(attr)
            if attr.name == "value":
                value = numpy_helper.to_array(value)
            consts[n.output[0]] = np.asarray(value)
        elif n.op_type == "Identity" and n.input[0] in consts:
            consts[n.output[0]] = consts[n.input[0]]
        elif n.op_type == "Reshape" and n.input[0] in consts and n.input[1] in consts:
            data, shape = consts[n.input[0]], consts[n.input[1]].astype(np.int64).tolist()
            shape = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
            consts[n.output[0]] = data.reshape(shape)
    return consts


def inferred_shapes(model, input_shape):
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, input_shape):
        d.Clear()
        d.dim_value = v
    # Declared output shapes (some say -1 for dynamic dims) and value_info would only conflict: drop them.
    for o in fixed.graph.output:
        o.type.tensor_type.ClearField("shape")
    del fixed.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=True, data_prop=True)
    shapes = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = [d.dim_value for d in t.shape.dim]
    return shapes


def count(model_file, input_shape):
    model = onnx.load(os.path.join(REPO, "models", model_file))
    g = model.graph
    consts = constants(g)
    shapes = inferred_shapes(model, input_shape)
    producer = {o: n for n in g.node for o in n.output}

    # Every tensor whose shape a count needs.
    needed = set()
    for n in g.node:
        if n.op_type == "Conv" or n.op_type == "Gemm":
            needed.update([n.input[0], n.output[0]])
        elif n.op_type == "ConvTranspose":
            needed.add(n.input[0])
        elif n.op_type == "MatMul" and (n.input[0] in consts or n.input[1] in consts):
            needed.update([n.input[0], n.input[1], n.output[0]])
    needed -= set(consts)
    missing = sorted(t for t in needed if t not in shapes)
    from_ort = 0
    if missing:
        x = np.zeros(input_shape, dtype=np.float32)
        values = run_all(model, {g.input[0].name: x})
        for t in missing:
            shapes[t] = list(values[t].shape)
        from_ort = len(missing)

    def shape(name):
        return list(consts[name].shape) if name in consts else shapes[name]

    def size(name):
        return int(np.prod(shape(name), dtype=np.int64))

    def const_size(name):
        return int(consts[name].size) if name and name in consts else 0

    params = flops = 0
    for n in g.node:
        op, ins = n.op_type, list(n.input)
        if op in ("Conv", "ConvTranspose"):
            w = consts[ins[1]]
            params += w.size + (const_size(ins[2]) if len(ins) > 2 else 0)
            k = int(np.prod(w.shape[1:], dtype=np.int64))
            flops += (size(n.output[0]) if op == "Conv" else size(ins[0])) * k
        elif op == "Gemm":
            params += const_size(ins[1]) + (const_size(ins[2]) if len(ins) > 2 else 0)
            trans_a = next((a.i for a in n.attribute if a.name == "transA"), 0)
            a = shape(ins[0])
            flops += size(n.output[0]) * (a[0] if trans_a else a[1])
        elif op == "MatMul":
            if ins[0] in consts or ins[1] in consts:
                params += const_size(ins[0]) + const_size(ins[1])
                flops += size(n.output[0]) * shape(ins[0])[-1]
        elif op == "BatchNormalization":
            params += sum(const_size(i) for i in ins[1:5])
        elif op == "Add":
            for a, b in ((ins[0], ins[1]), (ins[1], ins[0])):
                p = producer.get(a)
                if p is not None and p.op_type in ("Conv", "ConvTranspose") and b in consts:
                    params += int(consts[b].size)
                    break
    print(f"{model_file}: {len(needed) - from_ort} shapes from onnx shape inference, {from_ort} from onnxruntime"
          f" -> params {params}, flops {flops}", file=sys.stderr)
    return {"input_shape": input_shape, "params": int(params), "flops": int(flops)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the JSON file (worker/tests/fixtures/inspect_counts.json)")
    args = ap.parse_args()
    out = {f: count(f, s) for f, s in MODELS}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, out)


if __name__ == "__main__":
    main()
