"""Helpers shared by the oracle scripts: onnxruntime sessions and "every node output" model copies.

Runs in the oracle venv (.oracle, made by scripts/setup.sh from scripts/oracle-requirements.txt).
"""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def session(model, optimize=False):
    """A CPU session with 2 intra-op threads; graph optimizations are off unless optimize."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    opts.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def node_outputs(graph):
    """(tensor name, node) for every non-empty output of every node but Constant, in graph node order."""
    seen = set()
    out = []
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        for name in node.output:
            if name and name not in seen:
                seen.add(name)
                out.append((name, node))
    return out


def with_all_outputs(model):
    """A copy of model whose graph outputs are every non-Constant node output (untyped: ORT infers them)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.output[:]
    for name, _ in node_outputs(model.graph):
        copy.graph.output.append(onnx.ValueInfoProto(name=name))
    return copy


def run_all(model, feeds):
    """{tensor name: array} for every non-Constant node output of model, run on feeds."""
    copy = with_all_outputs(model)
    names = [o.name for o in copy.graph.output]
    values = session(copy).run(names, feeds)
    return dict(zip(names, values))


def _format(obj, depth, expand):
    if depth >= expand or not isinstance(obj, (dict, list)) or not obj:
        return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {_format(v, depth + 1, expand)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [inner + _format(v, depth + 1, expand) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def write_json(path, obj, expand=2):
    """Writes obj as JSON (atomically): objects and lists nested less than expand deep get one item a line."""
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(_format(obj, 0, expand) + "\n")
    os.replace(tmp, path)


def save_npy(path, array):
    # np.ascontiguousarray would turn a 0-d array into shape (1,).
    np.save(path, np.asarray(array, order="C"), allow_pickle=False)
