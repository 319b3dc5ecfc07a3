#!/usr/bin/env python3
"""Torch-Pruning's DepGraph channel groups of an ONNX CNN, named in ONNX terms: the oracle for our channel groups.

    .oracle/bin/python scripts/oracle/depgraph.py MODEL.onnx --input-shape 1,3,320,320 --out OUT.json

sensgrid computes the channel dependency groups of a PP-OCR model itself (which tensors and axes must lose the
same channels when one conv's filters are pruned). This script asks an independent implementation the same
question: it converts the model to torch with onnx2torch, builds Torch-Pruning's DependencyGraph on a random
input of the given shape, takes every group rooted at a Conv2d, ConvTranspose2d or Linear (pruning its output
channels 0..N-1) and maps every member back to the ONNX constant tensor and axis it prunes.

The ONNX is normalised first, so that onnx2torch converts it and Torch-Pruning sees every weight:
  - every Constant node becomes an initializer of the same name (PP-OCR exports keep weights in Constants);
  - data-movement nodes whose inputs are all constant are folded into initializers named after their outputs, as
    model/src/fold.rs does (conv biases are Reshapes of constants, the LSTM weights of PP-OCRv2 rec are
    Unsqueeze/Concat/Slice of constants); "folded" lists each one's source constants;
  - the input gets the static shape, and every tensor the shape onnxruntime computes for it (onnx2torch needs the
    rank of each BatchNormalization input, which shape inference loses in PP-OCRv4 rec).
On the torch side, what Torch-Pruning cannot see is made visible, each change listed under "rewrites":
  - LSTM (no onnx2torch converter) becomes an nn.LSTM, which Torch-Pruning has a pruner for;
  - MatMul by a constant 2-D weight becomes nn.Linear (ONNX weight [in, out], so out is axis 1);
  - per-channel constants of Add/Sub/Mul/Div (biases added after MatMul or ConvTranspose, decomposed LayerNorm's
    scale and shift) become nn.Parameters passed as unwrapped_parameters, pruned on their one non-1 axis.
The torch model's output is compared with onnxruntime's ("torch_vs_onnxruntime_max_abs_diff").

Output (JSON):
  {"model", "input_shape", "torch_pruning", "onnx2torch", "torch" (versions),
   "node_names": how nodes are named: their ONNX name, else <op_type>_<index in graph.node> (model/src/onnx/read.rs),
   "groups": [{"root": {"tensor", "axis", "node"}, "channels": N,
               "members": [{"tensor": ONNX constant or null, "axis": int or null, "node": ONNX node, "op": its op_type,
                            "kind": "<TP pruner>.<handler> on <TP module>", "idxs": [...], "root_idxs": [...]}]}],
   "ignored": [layers left out of the graph: none],
   "rewrites": {"constants_to_initializers": count, "lstm_to_nn_lstm": [nodes], "matmul_to_linear": [weights],
                "unwrapped_parameters": ["<constant> (axis a)"],
                "elementwise_constants_left_as_buffers": {name: shape}},
   "folded": {folded tensor: [source constants]}, "torch_vs_onnxruntime_max_abs_diff": float}
Axes: Conv out: W axis 0 (and B axis 0), in: W axis 1; a depthwise Conv: W axis 0 (and B) both ways, which is what
Torch-Pruning's DepthwiseConvPruner prunes; ConvTranspose out: W axis 1 (and B), in: W axis 0; BatchNormalization:
scale, B, mean and var axis 0; Linear from MatMul out: W axis 1, in: W axis 0 (Gemm: by transB); LSTM in: W axis 2,
hidden units: R axis 2 (W, R and B also lose them gate-wise on axis 1); an unwrapped parameter: its axis.
idxs[g] is the member's index pruned with root channel g (Torch-Pruning's index mapping for the group of all N root
channels). Where a member does not take exactly one index per root channel (Torch-Pruning's mapping through the
attention's reshape and slices), idxs and root_idxs are Torch-Pruning's two lists as they are: idxs[k] is pruned
with root channel root_idxs[k]. Members that are no ONNX constant (element-wise ops, concat, reshape, the graph
output, and the view/mm/t autograd nodes inside an nn.Linear on a 3-D input, which Torch-Pruning traces as ops of
their own) have "tensor": null; "node" is the ONNX node whose torch module made them. Groups are sorted by the
root's position in the ONNX graph; a one-line summary goes to stderr.
Runs in the oracle venv made by scripts/setup.sh (scripts/oracle-requirements.txt, oracle-torch-requirements.txt).
"""

import argparse
import importlib.metadata
import json
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch_pruning as tp
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx2torch import convert
from onnx2torch.node_converters.registry import add_converter
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import run_all  # noqa: E402

ELEMENTWISE = ("Add", "Sub", "Mul", "Div")
# The data-movement and cast ops that model/src/fold.rs folds at load: the same constants exist on both sides.
FOLDED_OPS = ("Identity", "Reshape", "Unsqueeze", "Squeeze", "Concat", "Slice", "Transpose", "Cast")


# ---------------------------------------------------------------------------------------------------------------
# ONNX normalisation


def node_names(graph):
    """Each node's name as model/src/onnx/read.rs gives it: its own, else <op_type>_<index>; a repeat gets _<index>."""
    names, seen = [], set()
    for index, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{index}"
        if name in seen:
            name = f"{name}_{index}"
        seen.add(name)
        names.append(name)
    return names


def constants_to_initializers(model):
    """Moves every Constant node's tensor into graph.initializer under its output name; returns how many."""
    graph = model.graph
    keep, moved = [], 0
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            attr = node.attribute[0]
            if attr.name != "value":
                raise SystemExit(f"depgraph: Constant {node.output[0]}: attribute {attr.name} is not supported")
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attr.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            moved += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return moved


def fold_constants(model):
    """Folds every FOLDED_OPS node whose inputs are all initializers; returns {folded tensor: [source constants]}."""
    graph = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    sources = {name: {name} for name in values}
    keep, folded = [], {}
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if not inputs or not all(i in values for i in inputs) or node.op_type not in FOLDED_OPS:
            keep.append(node)
            continue
        single = helper.make_model(
            helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(o, 0, None) for o in node.output],
                              [numpy_helper.from_array(values[i], i) for i in inputs]),
            opset_imports=model.opset_import)
        outputs = ReferenceEvaluator(single).run(None, {})
        origin = sorted(set().union(*(sources[i] for i in inputs)))
        for name, value in zip(node.output, outputs):
            values[name] = np.asarray(value)
            sources[name] = set(origin)
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
            folded[name] = origin
    del graph.node[:]
    graph.node.extend(keep)
    # Drop initializers that no node reads any more (the folded nodes' inputs).
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return {name: origin for name, origin in folded.items() if name in used}


def set_static_shapes(model, shape, x):
    """Gives the input the static shape and every node output the shape and dtype onnxruntime computes for x."""
    graph = model.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(inputs) != 1:
        raise SystemExit(f"depgraph: expected one graph input, got {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, shape):
        dim.Clear()
        dim.dim_value = size
    values = run_all(model, {inputs[0].name: x})
    del graph.value_info[:]
    outputs = {o.name for o in graph.output}
    for name, value in values.items():
        if name in outputs:
            continue
        elem = helper.np_dtype_to_tensor_dtype(value.dtype)
        graph.value_info.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    for out in graph.output:
        out.type.tensor_type.shape.Clear()
        for size in values[out.name].shape:
            out.type.tensor_type.shape.dim.add().dim_value = size
    return inputs[0].name, values


# ---------------------------------------------------------------------------------------------------------------
# onnx2torch additions


class OnnxLSTM(nn.Module, OnnxToTorchModule):
    """ONNX LSTM (layout 0, no sequence_lens, default activations) on an nn.LSTM; outputs Y, Y_h, Y_c."""

    def __init__(self, lstm):
        super().__init__()
        self.lstm = lstm

    def forward(self, x, initial_h, initial_c):  # pylint: disable=missing-function-docstring
        y, (h, c) = self.lstm(x, (initial_h, initial_c))
        steps, batch, _ = y.shape
        dirs = 2 if self.lstm.bidirectional else 1
        return y.view(steps, batch, dirs, self.lstm.hidden_size).permute(0, 2, 1, 3), h, c


@add_converter(operation_type="LSTM", version=7)
@add_converter(operation_type="LSTM", version=14)
def _lstm(node, graph):
    attrs = node.attributes
    inputs = list(node.input_values) + [""] * (8 - len(node.input_values))
    x, w, r, b, seq_lens, initial_h, initial_c, peepholes = inputs
    unsupported = {"activations", "activation_alpha", "activation_beta", "clip", "input_forget"} & set(attrs)
    if seq_lens or peepholes or attrs.get("layout", 0) != 0 or unsupported or not (initial_h and initial_c):
        raise NotImplementedError(f"LSTM {node.name}: only layout 0, no sequence_lens/peepholes, given initial_h/c")
    direction = attrs.get("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "bidirectional"):
        raise NotImplementedError(f"LSTM {node.name}: direction {direction}")
    hidden = attrs["hidden_size"]
    w, r = graph.initializers[w].to_torch(), graph.initializers[r].to_torch()
    b = graph.initializers[b].to_torch() if b else torch.zeros(w.shape[0], 8 * hidden)
    lstm = nn.LSTM(w.shape[2], hidden, bidirectional=direction == "bidirectional")
    # ONNX gate blocks are i, o, f, c; torch's are i, f, g(=c), o.
    order = torch.cat([torch.arange(k * hidden, (k + 1) * hidden) for k in (0, 2, 3, 1)])
    with torch.no_grad():
        for d, suffix in enumerate(["", "_reverse"][: w.shape[0]]):
            getattr(lstm, "weight_ih_l0" + suffix).copy_(w[d][order])
            getattr(lstm, "weight_hh_l0" + suffix).copy_(r[d][order])
            getattr(lstm, "bias_ih_l0" + suffix).copy_(b[d][: 4 * hidden][order])
            getattr(lstm, "bias_hh_l0" + suffix).copy_(b[d][4 * hidden:][order])
    mapping = OnnxMapping(inputs=(x, initial_h, initial_c), outputs=node.output_values)
    return OperationConverterResult(torch_module=OnnxLSTM(lstm), onnx_mapping=mapping)


def to_torch(model):
    """onnx2torch's GraphModule plus {buffer name: ONNX value name} for every initializer it holds."""
    gm = convert(model, attach_onnx_mapping=True)
    buffer_names = {}
    for fx_node in gm.graph.nodes:
        if fx_node.op != "call_module":
            continue
        module = gm.get_submodule(fx_node.target)
        for arg, value in zip(fx_node.args, module.onnx_mapping.inputs):
            if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
                buffer_names[arg.target] = value
    return gm, buffer_names


def matmuls_to_linear(gm, buffer_names):
    """MatMul(x, constant [in, out]) modules become nn.Linear; returns the ONNX weights rewritten."""
    rewritten = []
    for fx_node in list(gm.graph.nodes):
        if fx_node.op != "call_module" or type(gm.get_submodule(fx_node.target)).__name__ != "OnnxMatMul":
            continue
        weight = fx_node.args[1]
        if not (isinstance(weight, torch.fx.Node) and weight.op == "get_attr"):
            continue
        w = _attr(gm, weight.target)
        if w.dim() != 2 or not w.is_floating_point():
            continue
        old = gm.get_submodule(fx_node.target)
        linear = nn.Linear(w.shape[0], w.shape[1], bias=False)
        with torch.no_grad():
            linear.weight.copy_(w.t())
        linear.onnx_mapping = old.onnx_mapping
        setattr(gm, fx_node.target, linear)
        fx_node.args = (fx_node.args[0],)
        if not weight.users:
            gm.graph.erase_node(weight)
        rewritten.append(buffer_names[weight.target])
    gm.graph.lint()
    gm.recompile()
    return rewritten


def _attr(gm, target):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def channel_parameters(gm, buffer_names, model):
    """Per-channel constants of Add/Sub/Mul/Div become nn.Parameters.

    Returns [(parameter, pruning dim)], {parameter: ONNX name}, and the non-scalar constants of those ops left as
    buffers (Torch-Pruning does not see them): {ONNX name: shape}.
    """
    graph = model.graph
    consts = {t.name for t in graph.initializer}
    candidates = set()
    for node in graph.node:
        if node.op_type in ELEMENTWISE and sum(i in consts for i in node.input) == 1:
            candidates.update(i for i in node.input if i in consts)
    unwrapped, names, left = [], {}, {}
    for target, value in buffer_names.items():
        if value not in candidates:
            continue
        tensor = _attr(gm, target)
        wide = [d for d, s in enumerate(tensor.shape) if s > 1]
        if not tensor.is_floating_point() or len(wide) != 1:
            if tensor.dim() > 0 and tensor.numel() > 1 or tensor.dim() > 1:
                left[value] = list(tensor.shape)
            continue
        parent_name, _, leaf = target.rpartition(".")
        parent = gm.get_submodule(parent_name)
        del parent._buffers[leaf]
        param = nn.Parameter(tensor.detach().clone())
        parent.register_parameter(leaf, param)
        unwrapped.append((param, wide[0]))
        names[param] = value
    return unwrapped, names, left


# ---------------------------------------------------------------------------------------------------------------
# Torch-Pruning groups in ONNX terms


class GradFnOwners:
    """Forward hooks on every onnx2torch module: which module's forward made each autograd node."""

    def __init__(self, gm):
        self.owner = {}
        self.hooks = []
        for name, module in gm.named_modules():
            if hasattr(module, "onnx_mapping"):
                self.hooks.append(module.register_forward_hook(self._hook(module)))

    def _hook(self, module):
        def record(_module, inputs, outputs):
            stop = {t.grad_fn for t in _tensors(inputs)}
            stack = [t.grad_fn for t in _tensors(outputs) if t.grad_fn is not None]
            while stack:
                fn = stack.pop()
                if fn is None or fn in stop or fn in self.owner:
                    continue
                self.owner[fn] = module
                stack.extend(f for f, _ in fn.next_functions if f is not None)
        return record

    def remove(self):
        for hook in self.hooks:
            hook.remove()


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


class OnnxNames:
    """The ONNX node (index, name, NodeProto) behind torch modules, autograd nodes and parameters."""

    def __init__(self, original, gm, param_names):
        self.by_output = {}
        for index, (node, name) in enumerate(zip(original.graph.node, node_names(original.graph))):
            for out in node.output:
                self.by_output[out] = (index, name, node)
        self.module_node = {}
        for _, module in gm.named_modules():
            if hasattr(module, "onnx_mapping"):
                found = self.by_output[module.onnx_mapping.outputs[0]]
                for sub in module.modules():
                    self.module_node[sub] = found
        # A parameter's node is the ONNX node that reads it.
        self.param_names = param_names
        self.param_node = {}
        for fx_node in gm.graph.nodes:
            if fx_node.op == "get_attr" and isinstance(_attr(gm, fx_node.target), nn.Parameter):
                user = next(iter(fx_node.users))
                self.param_node[_attr(gm, fx_node.target)] = self.module_node[gm.get_submodule(user.target)]
        self.owners = {}

    def of_tp_node(self, tp_node):
        if isinstance(tp_node.module, nn.Parameter):
            return self.param_node.get(tp_node.module)
        found = self.module_node.get(tp_node.module)
        if found is None and tp_node.grad_fn is not None:
            owner = self.owners.get(tp_node.grad_fn)
            found = self.module_node.get(owner) if owner is not None else None
        return found


def kind_of(dep):
    """What Torch-Pruning does to a member, e.g. "ConvPruner.prune_in_channels on Conv2d(groups=1)"."""
    target = dep.target
    handler = dep.handler
    pruner = type(getattr(handler, "__self__", None)).__name__
    module = target.module
    if isinstance(module, nn.Parameter):
        what = f"Parameter{tuple(module.shape)}"
    elif isinstance(module, tp.ops._ElementWiseOp):
        what = f"_ElementWiseOp({module._grad_fn})"
    elif isinstance(module, nn.Conv2d):
        what = f"Conv2d(groups={module.groups})"
    else:
        what = type(module).__name__
    return f"{pruner}.{handler.__name__} on {what}"


def tensor_axes(dep, found, names):
    """[(ONNX tensor, axis)] that this dependency prunes; [(None, None)] when it prunes no ONNX constant."""
    module, handler = dep.target.module, dep.handler.__name__
    if isinstance(module, nn.Parameter):
        return [(names.param_names[module], dep.target.pruning_dim)]
    if found is None:
        return [(None, None)]
    _, _, node = found
    inputs = list(node.input) + [""] * 5
    out = handler == "prune_out_channels"
    if isinstance(module, nn.ConvTranspose2d):
        return [(inputs[1], 1), (inputs[2], 0)] if out else [(inputs[1], 0)]
    if isinstance(module, nn.Conv2d):
        # A depthwise conv's pruner prunes its filters for both directions (handler prune_out_channels).
        return [(inputs[1], 0), (inputs[2], 0)] if out else [(inputs[1], 1)]
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return [(inputs[k], 0) for k in (1, 2, 3, 4)]
    if isinstance(module, nn.Linear):
        if node.op_type == "MatMul":
            return [(inputs[1], 1 if out else 0)]
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        axis = (0 if trans_b else 1) if out else (1 if trans_b else 0)
        return [(inputs[1], axis)] + ([(inputs[2], 0)] if out else [])
    if isinstance(module, nn.LSTM):
        # hidden units: R's last axis (and W/R axis 1, B axis 1 gate-wise), input features: W's last axis.
        return [(inputs[2], 2)] if out else [(inputs[1], 2)]
    return [(None, None)]


def member_idxs(item, channels):
    """{"idxs": member index per root channel}, or TP's idxs and root_idxs lists when that is no one-to-one map."""
    idxs, roots = list(item.idxs), list(item.root_idxs)
    if sorted(roots) == list(range(channels)):
        by_root = dict(zip(roots, idxs))
        return {"idxs": [int(by_root[g]) for g in range(channels)]}
    return {"idxs": [int(i) for i in idxs], "root_idxs": [int(r) for r in roots]}


def groups_of(dg, names):
    """Every group rooted at a Conv2d, ConvTranspose2d or Linear, in ONNX terms, in ONNX node order of the root."""
    groups = []
    for group in dg.get_all_groups(root_module_types=(nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        root_dep = group[0].dep
        root_found = names.of_tp_node(root_dep.target)
        channels = len(group[0].idxs)
        root_tensor, root_axis = tensor_axes(root_dep, root_found, names)[0]
        members = []
        for item in group:
            found = names.of_tp_node(item.dep.target)
            for tensor, axis in tensor_axes(item.dep, found, names):
                if found is not None and tensor == "":
                    continue  # a conv without a bias input
                members.append({
                    "tensor": tensor,
                    "axis": axis,
                    "node": found[1] if found else None,
                    "op": found[2].op_type if found else None,
                    "kind": kind_of(item.dep),
                    **member_idxs(item, channels),
                })
        groups.append((root_found[0], {
            "root": {"tensor": root_tensor, "axis": root_axis, "node": root_found[1]},
            "channels": channels,
            "members": members,
        }))
    groups.sort(key=lambda g: g[0])
    return [g for _, g in groups]


# ---------------------------------------------------------------------------------------------------------------


def _format(obj, depth=0):
    """JSON with one line per member, root and list of numbers; other containers one item a line unless short."""
    flat = json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    if not isinstance(obj, (dict, list)) or not obj:
        return flat
    values = list(obj.values()) if isinstance(obj, dict) else obj
    numbers = lambda v: isinstance(v, list) and all(isinstance(i, (int, float)) for i in v)  # noqa: E731
    if isinstance(obj, dict) and all(not isinstance(v, (dict, list)) or numbers(v) for v in values):
        return flat
    if numbers(obj) or (not any(isinstance(v, (dict, list)) for v in values) and len(flat) <= 100):
        return flat
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {_format(v, depth + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return "[\n" + ",\n".join(inner + _format(v, depth + 1) for v in obj) + "\n" + pad + "]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--input-shape", required=True, help="e.g. 1,3,320,320")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shape = [int(s) for s in args.input_shape.split(",")]
    torch.manual_seed(0)
    x = torch.randn(shape)

    original = onnx.load(args.model)
    model = onnx.ModelProto()
    model.CopyFrom(original)
    moved = constants_to_initializers(model)
    folded = fold_constants(model)
    _, ort_values = set_static_shapes(model, shape, x.numpy())

    with warnings.catch_warnings():
        # onnx2torch's Slice indexes with a list, which torch warns about on every call.
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence", category=UserWarning)
        gm, buffer_names = to_torch(model)
        linear = matmuls_to_linear(gm, buffer_names)
        unwrapped, param_names, left_as_buffers = channel_parameters(gm, buffer_names, model)
        gm.eval()
        with torch.no_grad():
            ys = _tensors(gm(x))
        diff = max(float((t - torch.from_numpy(ort_values[o.name])).abs().max())
                   for t, o in zip(ys, model.graph.output))

        names = OnnxNames(original, gm, param_names)
        owners = GradFnOwners(gm)
        dg = tp.DependencyGraph().build_dependency(
            gm, example_inputs=x, unwrapped_parameters=unwrapped, verbose=False)
        owners.remove()
        names.owners = owners.owner
        groups = groups_of(dg, names)

    lstms = [found[1] for m, found in names.module_node.items() if isinstance(m, nn.LSTM)]
    out = {
        "model": os.path.basename(args.model),
        "input_shape": shape,
        "torch_pruning": importlib.metadata.version("torch-pruning"),
        "onnx2torch": importlib.metadata.version("onnx2torch"),
        "torch": torch.__version__,
        "node_names": "ONNX node name, else <op_type>_<index in graph.node, Constants counted>"
                      " (model/src/onnx/read.rs)",
        "groups": groups,
        "ignored": [],
        "rewrites": {
            "constants_to_initializers": moved,
            "lstm_to_nn_lstm": sorted(lstms),
            "matmul_to_linear": sorted(linear),
            "unwrapped_parameters": sorted(f"{param_names[p]} (axis {d})" for p, d in unwrapped),
            "elementwise_constants_left_as_buffers": left_as_buffers,
        },
        "folded": folded,
        "torch_vs_onnxruntime_max_abs_diff": diff,
    }
    tmp = args.out + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(_format(out) + "\n")
    os.replace(tmp, args.out)
    members = [m for g in groups for m in g["members"]]
    mapped = sum(m["tensor"] is not None for m in members)
    print(f"depgraph: {out['model']} {args.input_shape}: {len(groups)} groups, {len(members)} members "
          f"({mapped} mapped to ONNX constants, {len(members) - mapped} not), torch vs onnxruntime max abs diff "
          f"{diff:.2e}", file=sys.stderr)


if __name__ == "__main__":
    main()
