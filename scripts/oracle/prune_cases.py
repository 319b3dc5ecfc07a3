#!/usr/bin/env python3
"""Small synthetic CNNs for the pruning tests: the channel-group paths the PP-OCR models do not take.

    .oracle/bin/python scripts/oracle/prune_cases.py --out target/oracle/prune_cases [--case NAME ...]

sensgrid finds channel dependency groups (model/src/analysis/groups/) and prunes them structurally
(model/src/prune/structural.rs). The five PP-OCR models never split or slice the channel axis, never run a
depthwise ConvTranspose, a Gemm after Flatten or a MatMul over channels-last data, never use opset 11's Split
attribute or opset 18's num_outputs, never build a Reshape target with Concat, and keep their weights in
Constant nodes. Each case here is a network of a few nodes that takes one of those paths, with random weights
of trained-net magnitudes (He-scaled conv and dense weights, nonzero biases, BatchNormalization with positive
variance), so that masking a group in sensgrid's engine and running the structurally pruned file in
onnxruntime can be compared.

For each case DIR gets:
    <case>.onnx          the model; weights are Constant nodes (as in the Paddle exports), except in the
                         "initializers" case, where every constant is a graph initializer
    <case>.input.npy     float32 input (batch 1 or 2, 8x8 or 16x16), from numpy's default_rng seeded with the
                         case name's crc32: every run writes the same files
    <case>.output.npy    onnxruntime's output for that input (the unpruned model; CPU, 2 threads, graph
                         optimizations disabled)
and DIR/cases.json lists them:
    [{"name", "model", "input", "output" (file names relative to DIR), "opset",
      "expect": {"prunable_min": how many groups at least should be prunable by the channel rules (groups/rules.rs),
                 "prunable_keys": the weights that key those groups (their first source conv in node order),
                 "excluded_keys": source weights whose groups should be excluded,
                 "notes": what the case exercises}}]
Each model passes onnx.checker (full_check) and runs in onnxruntime before it is written; the script fails when
an output is not finite or is constant (a masked channel must be able to change it).
"""

import argparse
import os
import sys
import time
import zlib

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import save_npy, session, write_json  # noqa: E402

I64_MAX = np.iinfo(np.int64).max

CASES = {}


def case(name):
    """Registers fn(rng) -> (Net, input array, expect dict) under name; rng is seeded with crc32(name)."""

    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


class Net:
    """Builds a graph node by node; constants become Constant nodes or initializers (initializers=True)."""

    def __init__(self, rng, opset=13, initializers=False):
        self.rng = rng
        self.opset = opset
        self.initializers = initializers
        self.nodes = []
        self.inits = []
        self.names = set()

    def _name(self, name):
        assert name not in self.names, name
        self.names.add(name)
        return name

    def const(self, name, array):
        """A constant tensor called name: an initializer, or the output of a Constant node."""
        array = np.asarray(array)
        self._name(name)
        if self.initializers:
            self.inits.append(numpy_helper.from_array(array, name))
        else:
            self.nodes.append(helper.make_node("Constant", [], [name], name=self._name(name + ".const"),
                                               value=numpy_helper.from_array(array, name)))
        return name

    def op(self, op, inputs, name, outputs=1, **attrs):
        """A node called name; its outputs are name (one output) or name.0, name.1, ... Returns them."""
        outs = [name] if outputs == 1 else [f"{name}.{i}" for i in range(outputs)]
        for o in outs:
            self._name(o)
        self.nodes.append(helper.make_node(op, inputs, outs, name=self._name(name + ".node"), **attrs))
        return outs[0] if outputs == 1 else outs

    # ---- random parameters of trained-net magnitudes --------------------------------------------------------

    def he(self, shape, fan_in, center_axis=None):
        """He-scaled normal weights; center_axis: made zero-mean along that (input) axis, for layers after a
        global pool, whose inputs are all positive and alike (else most of their ReLUs would be dead)."""
        w = self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        if center_axis is not None:
            w -= w.mean(axis=center_axis, keepdims=True)
        return w.astype(np.float32)

    def bias(self, n, pooled=False):
        """pooled: for a layer after a global pool with a centered weight, a small positive bias (the
        pre-activations there vary little, so a signed bias would kill most of the following ReLU)."""
        lo, hi = (0.05, 0.3) if pooled else (-0.2, 0.2)
        return self.rng.uniform(lo, hi, size=n).astype(np.float32)

    # ---- layers -------------------------------------------------------------------------------------------------

    def conv(self, x, name, c_in, c_out, k=3, stride=1, group=1, bias=True, weight=None, b=None, pooled=False):
        """Conv with pads k//2; weight/b name existing constants to share them; pooled: x is a global pool."""
        w = weight or self.const(name + ".w", self.he((c_out, c_in // group, k, k), c_in // group * k * k,
                                                      center_axis=1 if pooled else None))
        inputs = [x, w]
        if b is not None:
            inputs.append(b)
        elif bias:
            inputs.append(self.const(name + ".b", self.bias(c_out, pooled)))
        p = k // 2
        return self.op("Conv", inputs, name, kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p],
                       group=group)

    def conv_transpose(self, x, name, c_in, c_out, k, stride, pads, output_padding=(0, 0), group=1):
        w = self.const(name + ".w", self.he((c_in, c_out // group, k, k), c_in // group * k * k))
        b = self.const(name + ".b", self.bias(c_out))
        return self.op("ConvTranspose", [x, w, b], name, kernel_shape=[k, k], strides=[stride, stride],
                       pads=list(pads), output_padding=list(output_padding), group=group)

    def bn(self, x, name, c):
        r = self.rng
        params = [self.const(f"{name}.scale", r.uniform(0.5, 1.5, c).astype(np.float32)),
                  self.const(f"{name}.bias", r.uniform(-0.3, 0.3, c).astype(np.float32)),
                  self.const(f"{name}.mean", r.uniform(-0.3, 0.3, c).astype(np.float32)),
                  self.const(f"{name}.var", r.uniform(0.5, 2.0, c).astype(np.float32))]
        return self.op("BatchNormalization", [x] + params, name, epsilon=1e-5)

    def ints(self, name, values):
        return self.const(name, np.array(values, dtype=np.int64))

    def scalar(self, name, value):
        return self.const(name, np.array(value, dtype=np.float32))

    def model(self, name, x, output, batch_param=None):
        """The ModelProto with input x and output; batch_param names the batch dimension symbolically."""
        shape = list(x.shape)
        if batch_param:
            shape[0] = batch_param
        graph = helper.make_graph(self.nodes, name, [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
                                  [onnx.ValueInfoProto(name=output)], initializer=self.inits)
        opsets = [helper.make_opsetid("", self.opset)]
        return helper.make_model(graph, opset_imports=opsets, producer_name="sensgrid-oracle",
                                 ir_version=helper.find_min_ir_version_for(opsets))


def image(rng, batch, c, h, w):
    return rng.standard_normal((batch, c, h, w)).astype(np.float32)


def expect(keys, excluded, notes, prunable_min=None):
    return {"prunable_min": len(keys) if prunable_min is None else prunable_min, "prunable_keys": keys,
            "excluded_keys": excluded, "notes": notes}


# ---- cases ------------------------------------------------------------------------------------------------------


@case("split_opset13")
def _(rng):
    n = Net(rng, 13)
    x = image(rng, 2, 3, 16, 16)
    h = n.op("Relu", [n.bn(n.conv("x", "c1", 3, 8), "bn1", 8)], "r1")
    a, b = n.op("Split", [h, n.ints("split.sizes", [3, 5])], "split", outputs=2, axis=1)
    a = n.op("Relu", [n.conv(a, "ca", 3, 4)], "ra")
    b = n.op("Relu", [n.conv(b, "cb", 5, 6)], "rb")
    cat = n.op("Concat", [a, b], "cat", axis=1)
    # Opset 13 Split without its sizes input: equal parts, 10 -> [5, 5], across the Concat's boundary.
    p, q = n.op("Split", [cat], "split_eq", outputs=2, axis=1)
    y = n.op("Add", [n.conv(p, "cp", 5, 4), n.conv(q, "cq", 5, 4)], "sum")
    y = n.op("GlobalAveragePool", [n.conv(y, "cf", 4, 4, k=1)], "y")
    return n.model("split_opset13", x, y), x, expect(
        ["c1.w", "ca.w", "cb.w", "cp.w"], ["cf.w"],
        "Split on channels at opset 13: sizes [3, 5] as a Constant input (SplitSizes rewrites that input), and a "
        "Split without sizes (equal 10 -> [5, 5]; pruning must add a sizes input), whose parts straddle the "
        "Concat of two branches; cp and cq are coupled by the Add (one group, key cp.w); cf reaches the output "
        "through GlobalAveragePool.")


@case("split_opset11")
def _(rng):
    n = Net(rng, 11)
    x = image(rng, 1, 3, 16, 16)
    h = n.op("Relu", [n.bn(n.conv("x", "c1", 3, 8), "bn1", 8)], "r1")
    a, b = n.op("Split", [h], "split", outputs=2, axis=1, split=[3, 5])
    a = n.op("Relu", [n.conv(a, "ca", 3, 4)], "ra")
    b = n.op("Relu", [n.conv(b, "cb", 5, 6)], "rb")
    cat = n.op("Concat", [a, b], "cat", axis=1)
    # No split attribute: equal parts, 10 -> [5, 5]; pruning writes a split attribute.
    p, q = n.op("Split", [cat], "split_eq", outputs=2, axis=1)
    y = n.op("Concat", [n.conv(p, "cp", 5, 3), n.conv(q, "cq", 5, 3)], "cat2", axis=1)
    y = n.op("GlobalAveragePool", [n.conv(n.op("Relu", [y], "r2"), "cf", 6, 4, k=1)], "y")
    return n.model("split_opset11", x, y), x, expect(
        ["c1.w", "ca.w", "cb.w", "cp.w", "cq.w"], ["cf.w"],
        "Opset 11: Split with the split attribute [3, 5], and a Split with neither attribute nor input (equal "
        "parts 10 -> [5, 5]); structural pruning rewrites or adds the split attribute. BatchNormalization and "
        "Concat at opset 11.")


@case("slice_channels")
def _(rng):
    n = Net(rng, 13)
    x = image(rng, 1, 3, 16, 16)
    h = n.op("Relu", [n.conv("x", "c1", 3, 12)], "r1")
    s1 = n.op("Slice", [h, n.ints("s1.starts", [2]), n.ints("s1.ends", [10]), n.ints("s1.axes", [1])], "s1")
    a = n.op("Relu", [n.conv(s1, "ca", 8, 6)], "ra")
    # Negative start, INT64_MAX end, negative axis, explicit step 1: channels 6..12 of c1.
    s2 = n.op("Slice", [h, n.ints("s2.starts", [-6]), n.ints("s2.ends", [I64_MAX]), n.ints("s2.axes", [-3]),
                        n.ints("s2.steps", [1])], "s2")
    b = n.op("Add", [s2, n.conv("x", "cb", 3, 6)], "add")
    cat = n.op("Concat", [a, n.op("Relu", [b], "rb")], "cat", axis=1)
    y = n.op("GlobalAveragePool", [n.conv(cat, "cf", 12, 4, k=1)], "y")
    return n.model("slice_channels", x, y), x, expect(
        ["c1.w", "ca.w"], ["cf.w"],
        "Slice of the channel axis: [2:10] on axis 1, and [-6:INT64_MAX] on axis -3 with steps [1]; "
        "SliceBounds rewrites starts and ends. The second slice is added to cb's 6 channels, so cb joins c1's "
        "group (members c1.w rows 0..11, cb.w rows for c1 channels 6..11 only); c1 comes before cb in node "
        "order, so c1.w is the key. c1 channels 0 and 1 are read by neither slice.")


@case("depthwise_se")
def _(rng):
    n = Net(rng, 13)
    x = image(rng, 2, 3, 16, 16)
    h = n.bn(n.conv("x", "c1", 3, 16, bias=False), "bn1", 16)
    # HardSwish as Paddle writes it: x * Clip(x + 3, 0, 6) / 6.
    clip = n.op("Clip", [n.op("Add", [h, n.scalar("hs.three", 3.0)], "hs.add"), n.scalar("hs.lo", 0.0),
                         n.scalar("hs.hi", 6.0)], "hs.clip")
    h = n.op("Div", [n.op("Mul", [h, clip], "hs.mul"), n.scalar("hs.six", 6.0)], "hs")
    d = n.op("Relu", [n.conv(h, "dw", 16, 16, group=16)], "rdw")
    s = n.op("GlobalAveragePool", [d], "se.pool")
    s = n.op("Relu", [n.conv(s, "se1", 16, 4, k=1, pooled=True)], "se.relu")
    s = n.op("HardSigmoid", [n.conv(s, "se2", 4, 16, k=1)], "se.gate", alpha=0.2, beta=0.5)
    y = n.op("Add", [n.op("Mul", [d, s], "se.mul"), h], "res")
    y = n.op("GlobalAveragePool", [n.conv(y, "cf", 16, 8, k=1)], "y")
    return n.model("depthwise_se", x, y), x, expect(
        ["c1.w", "se1.w"], ["cf.w"],
        "Depthwise Conv (group 16, with bias) passes c1's channels and gets its group rewritten; HardSwish "
        "written as Add/Clip/Mul/Div with scalar constants; SE block: se2's 16 output channels are coupled to c1 "
        "through the Mul (one group keyed c1.w with dw.w, dw.b, bn1, se1's input axis and se2.w/se2.b), the "
        "residual Add couples the same channels again; se1 (16 -> 4) is a group of its own.")


@case("convtranspose")
def _(rng):
    n = Net(rng, 13)
    x = image(rng, 2, 3, 8, 8)
    h = n.op("Relu", [n.bn(n.conv("x", "c1", 3, 8), "bn1", 8)], "r1")
    h = n.conv_transpose(h, "ct", 8, 6, k=3, stride=2, pads=[1, 1, 1, 1], output_padding=[1, 1])
    h = n.op("Relu", [n.bn(h, "bn2", 6)], "r2")
    h = n.conv_transpose(h, "dct", 6, 6, k=2, stride=2, pads=[0, 0, 0, 0], group=6)
    y = n.op("Sigmoid", [n.conv(h, "cf", 6, 2, k=1)], "y")
    return n.model("convtranspose", x, y), x, expect(
        ["c1.w", "ct.w"], ["cf.w"],
        "ConvTranspose 8 -> 6 (weight [8, 6, 3, 3]: input channels on axis 0, output channels on axis 1, so "
        "the group key axis is 1), stride 2 with output_padding; then a depthwise ConvTranspose (group 6, weight "
        "[6, 1, 2, 2], stride 2) that passes ct's channels and gets its group rewritten; output [2, 2, 32, 32] "
        "through Sigmoid.")


@case("flatten_gemm")
def _(rng):
    n = Net(rng, 13)
    x = image(rng, 2, 3, 16, 16)
    h = n.op("GlobalAveragePool", [n.op("Relu", [n.conv("x", "c1", 3, 10, stride=2)], "r1")], "gap")
    h = n.op("Flatten", [h], "flat", axis=1)
    h = n.op("Gemm", [h, n.const("fc1.w", n.he((7, 10), 10, center_axis=1)), n.const("fc1.b", n.bias(7, pooled=True))], "fc1", transB=1)
    h = n.op("Relu", [h], "r2")
    h = n.op("Gemm", [h, n.const("fc2.w", n.he((7, 5), 7)), n.const("fc2.b", n.bias((1, 5)))], "fc2", transB=0)
    y = n.op("Softmax", [h], "y", axis=1)
    return n.model("flatten_gemm", x, y), x, expect(
        ["c1.w", "fc1.w"], ["fc2.w"],
        "Flatten(axis 1) of [N, 10, 1, 1] keeps the channel axis; Gemm transB=1 (weight [7, 10]: out axis 0, "
        "in axis 1, bias [7]) and Gemm transB=0 (weight [7, 5]: in axis 0, out axis 1, bias [1, 5]); Softmax "
        "over the classes blocks fc2.")


@case("reshape_concat_target")
def _(rng):
    n = Net(rng, 13)
    x = image(rng, 2, 3, 16, 16)
    h = n.op("GlobalAveragePool", [n.op("Relu", [n.conv("x", "c1", 3, 10, stride=2)], "r1")], "gap")
    # Paddle's flatten: Reshape(x, Concat(Shape(x)[0:1], [10])).
    batch = n.op("Slice", [n.op("Shape", [h], "gap.shape"), n.ints("bs.starts", [0]), n.ints("bs.ends", [1]),
                           n.ints("bs.axes", [0])], "gap.batch")
    target = n.op("Concat", [batch, n.ints("flat.channels", [10])], "flat.target", axis=0)
    h = n.op("Reshape", [h, target], "flat")
    h = n.op("Relu", [n.op("Add", [n.op("MatMul", [h, n.const("mm1.w", n.he((10, 6), 10, center_axis=0))], "mm1"),
                                   n.const("mm1.b", n.bias(6, pooled=True))], "mm1.add")], "r2")
    h = n.op("MatMul", [h, n.const("mm2.w", n.he((6, 5), 6))], "mm2")
    y = n.op("Softmax", [h], "y", axis=-1)
    return n.model("reshape_concat_target", x, y, batch_param="N"), x, expect(
        ["c1.w", "mm1.w"], ["mm2.w"],
        "Reshape whose target is Concat(Slice(Shape(x), 0:1), Constant [10]) (batch dimension symbolic 'N' in "
        "the model input): CountEntry rewrites entry 0 of the Concat's constant piece; MatMul by constant [10, 6] "
        "(in axis 0, out axis 1) with Add of a [6] bias, then MatMul [6, 5] and Softmax over it.")


@case("channels_last_matmul")
def _(rng):
    n = Net(rng, 13)
    x = image(rng, 1, 3, 16, 16)
    h = n.conv("x", "c1", 3, 8, stride=2)
    h = n.op("Reshape", [h, n.ints("seq.shape", [0, 8, -1])], "seq")
    h = n.op("Transpose", [h], "seq.t", perm=[0, 2, 1])
    h = n.op("MatMul", [h, n.const("mm1.w", n.he((8, 12), 8))], "mm1")
    h = n.op("Relu", [n.op("Add", [h, n.const("mm1.b", n.bias(12))], "mm1.add")], "r1")
    h = n.op("MatMul", [h, n.const("mm2.w", n.he((12, 6), 12))], "mm2")
    y = n.op("ReduceMean", [h], "y", axes=[1], keepdims=0)
    return n.model("channels_last_matmul", x, y), x, expect(
        ["c1.w", "mm1.w"], ["mm2.w"],
        "Conv -> Reshape [0, 8, -1] (constant target; CountEntry rewrites its entry 1) -> Transpose [0, 2, 1] "
        "puts the channels last; MatMul by [8, 12] contracts them (input rank 3, channels on axis 2), Add of a "
        "[12] bias, MatMul [12, 6], ReduceMean over the sequence axis 1 with keepdims 0 (not the channel axis); "
        "mm2's channels reach the output.")


@case("initializers")
def _(rng):
    n = Net(rng, 13, initializers=True)
    x = image(rng, 1, 3, 16, 16)
    h = n.op("Relu", [n.bn(n.conv("x", "c1", 3, 8), "bn1", 8)], "r1")
    # One weight and bias shared by two parallel convs, one reading h, the other h through MaxPool.
    w = n.const("shared.w", n.he((6, 8, 3, 3), 72))
    sb = n.const("shared.b", n.bias(6))
    p = n.conv(h, "cs1", 8, 6, weight=w, b=sb)
    pooled = n.op("MaxPool", [h], "pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    q = n.conv(pooled, "cs2", 8, 6, weight=w, b=sb)
    h = n.op("Relu", [n.op("Add", [p, q], "add")], "r2")
    # One weight read by two convs in series: its input axis and output axis hold the same channels.
    w2 = n.const("chain.w", n.he((6, 6, 1, 1), 6))
    h = n.conv(n.conv(h, "cc1", 6, 6, k=1, weight=w2, bias=False), "cc2", 6, 6, k=1, weight=w2, bias=False)
    y = n.op("GlobalAveragePool", [n.conv(h, "cf", 6, 3, k=1)], "y")
    return n.model("initializers", x, y), x, expect(
        ["c1.w", "shared.w"], ["cf.w"],
        "Every constant is a graph initializer (weights, biases, BatchNormalization parameters). shared.w and "
        "shared.b are read by cs1 and cs2 (in parallel, cs2 through MaxPool): one group keyed shared.w, whose "
        "members appear once each. chain.w is read by cc1 and cc2 in series, which couples its input axis to its "
        "output axis and both to shared.w's channels: the group keyed shared.w also holds chain.w on axes 0 and "
        "1 (pruning removes the same rows and columns). cf reaches the output.")


@case("resize_concat")
def _(rng):
    n = Net(rng, 13)
    x = image(rng, 1, 3, 16, 16)
    a = n.op("Relu", [n.conv("x", "c1", 3, 8)], "r1")
    b = n.op("Relu", [n.conv("x", "c2", 3, 6, stride=2)], "r2")
    b = n.op("Resize", [b, n.const("up.roi", np.zeros(0, np.float32)),
                        n.const("up.scales", np.array([1, 1, 2, 2], np.float32))], "up", mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    h = n.conv(n.op("Concat", [a, b], "cat", axis=1), "c3", 14, 8, k=1, bias=False)
    # Paddle's conv bias: Constant [8] -> Reshape [1, 8, 1, 1] -> Add after a conv without bias.
    bias = n.op("Reshape", [n.const("c3.b", n.bias(8)), n.ints("c3.b.shape", [1, 8, 1, 1])], "c3.b4")
    h = n.op("Relu", [n.op("Add", [h, bias], "c3.add")], "r3")
    y = n.op("GlobalAveragePool", [n.conv(h, "cf", 8, 3, k=1)], "y")
    return n.model("resize_concat", x, y), x, expect(
        ["c1.w", "c2.w", "c3.w"], ["cf.w"],
        "Two branches at 16x16 and 8x8; Resize (nearest, asymmetric, floor, scales [1, 1, 2, 2], empty roi "
        "constant, as Paddle writes it) brings c2's channels to 16x16 and Concat puts them at offsets 8..13 of "
        "c3's input; c3 has no bias input, its bias is Constant [8] -> Reshape [1, 8, 1, 1] -> Add (folded to a "
        "[1, 8, 1, 1] constant at load, a member on axis 1).")


@case("split_opset18_num_outputs")
def _(rng):
    n = Net(rng, 18)
    x = image(rng, 1, 3, 16, 16)
    h = n.op("Relu", [n.bn(n.conv("x", "c1", 3, 9), "bn1", 9)], "r1")
    # num_outputs 2 over 9 channels: [5, 4] (the last part smaller).
    a, b = n.op("Split", [h], "split", outputs=2, axis=1, num_outputs=2)
    h = n.op("Relu", [n.op("Add", [n.conv(a, "ca", 5, 4), n.conv(b, "cb", 4, 4)], "add")], "r2")
    h = n.op("ReduceMean", [h, n.ints("pool.axes", [2, 3])], "pool", keepdims=1)
    y = n.conv(h, "cf", 4, 2, k=1)
    return n.model("split_opset18_num_outputs", x, y), x, expect(
        ["c1.w", "ca.w"], ["cf.w"],
        "Opset 18: Split with num_outputs 2 over 9 channels (uneven: [5, 4]); structural pruning drops "
        "num_outputs and adds an explicit sizes input. ReduceMean with axes as an input (opset 18). ca and cb "
        "are coupled by the Add (one group keyed ca.w).")


# ---- building and running ---------------------------------------------------------------------------------------


def run_case(name, out_dir):
    model, x, exp = CASES[name](np.random.default_rng(zlib.crc32(name.encode())))
    out_name = model.graph.output[0].name
    (y,) = session(model).run([out_name], {"x": x})
    # Type the output with what onnxruntime produced, then check the whole model.
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(out_name, onnx.TensorProto.FLOAT, list(y.shape)))
    onnx.checker.check_model(model, full_check=True)
    (again,) = session(model).run([out_name], {"x": x})
    assert np.array_equal(y, again), name
    if not np.isfinite(y).all() or np.ptp(y) == 0:
        raise SystemExit(f"{name}: degenerate output {y.ravel()[:8]}")

    onnx.save(model, os.path.join(out_dir, f"{name}.onnx"))
    save_npy(os.path.join(out_dir, f"{name}.input.npy"), x)
    save_npy(os.path.join(out_dir, f"{name}.output.npy"), y)
    ops = sorted({nd.op_type for nd in model.graph.node} - {"Constant"})
    count = sum(nd.op_type != "Constant" for nd in model.graph.node)
    print(f"{name}: opset {model.opset_import[0].version}, {count} nodes, input {list(x.shape)} "
          f"-> output {list(y.shape)}; {' '.join(ops)}", file=sys.stderr)
    return {"name": name, "model": f"{name}.onnx", "input": f"{name}.input.npy", "output": f"{name}.output.npy",
            "opset": model.opset_import[0].version, "expect": exp}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (e.g. target/oracle/prune_cases)")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="only this case (repeatable)")
    args = ap.parse_args()
    start = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    names = args.case or list(CASES)
    entries = [run_case(name, args.out) for name in names]
    write_json(os.path.join(args.out, "cases.json"), entries, expand=2)
    print(f"{args.out}: {len(entries)} cases in {time.monotonic() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
