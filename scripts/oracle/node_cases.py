#!/usr/bin/env python3
"""One-node (or tiny) ONNX models with fixed-seed inputs and onnxruntime's outputs.

    .oracle/bin/python scripts/oracle/node_cases.py --out target/oracle/nodes [--case NAME ...]

They cover the ops of the executor that the five PP-OCR models do not use, and attributes, opsets and input
forms that the models do not exercise. Each case directory DIR/<case>/ holds:
    model.onnx                 weights and attribute-like inputs (shapes, axes, scales...) are initializers,
                               except where a case says otherwise
    in_<i>.npy, out_<i>.npy    the graph inputs that are not initializers, and every graph output
    manifest.json              {"case", "opset", "inputs": [{"name", "file"}], "outputs": [{"name", "file"}]}
onnxruntime runs on the CPU with 2 threads and graph optimizations disabled. Where the ONNX semantics are
easy to get wrong (Softmax before/after opset 13, integer Div, Cast truncation, ...) the case also checks
onnxruntime against a numpy formula, and the script fails when they disagree.
Inputs come from numpy's default_rng seeded with the case name's crc32: every run writes the same files.
"""

import argparse
import math
import os
import shutil
import sys
import zlib

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import save_npy, session, write_json  # noqa: E402

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min

CASES = {}


class Case:
    def __init__(self, opset, nodes, inputs, inits=(), outputs=None, expect=None):
        self.opset = opset
        self.nodes = nodes
        self.inputs = list(inputs)  # [(name, array)]: graph inputs, fed at run time
        self.inits = list(inits)  # [(name, array)]: initializers
        self.outputs = outputs or [o for o in nodes[-1].output if o]
        self.expect = expect  # optional: {output index: numpy reference}, checked against onnxruntime


def case(name):
    """Registers fn(rng) -> Case under name; rng is seeded with crc32(name)."""

    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


def f32(rng, shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def i64(values):
    return np.array(values, dtype=np.int64)


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


def unary(name, op, opset, lo, hi, ref, shape=(2, 3, 4, 5), **attrs):
    @case(name)
    def _(rng):
        x = f32(rng, shape, lo, hi)
        return Case(opset, [node(op, ["x"], ["y"], **attrs)], [("x", x)], expect={0: ref(x).astype(np.float32)})


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def hardsigmoid(x, alpha=1.0 / 6.0, beta=0.5):
    return np.clip(alpha * x.astype(np.float64) + beta, 0.0, 1.0)


def erf(x):
    return np.vectorize(math.erf)(x.astype(np.float64))


# ---- Conv / ConvTranspose with initializer weights -------------------------------------------------------


@case("conv_init_weights")
def _(rng):
    return Case(11, [node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])],
                [("x", f32(rng, (1, 3, 9, 11)))], [("w", f32(rng, (8, 3, 3, 3), -0.5, 0.5)), ("b", f32(rng, (8,)))])


@case("conv_init_group_dilation_asym_pads")
def _(rng):
    return Case(11, [node("Conv", ["x", "w"], ["y"], group=2, dilations=[2, 2], pads=[1, 2, 0, 1], strides=[1, 2])],
                [("x", f32(rng, (2, 4, 10, 10)))], [("w", f32(rng, (6, 2, 3, 3), -0.5, 0.5))])


@case("conv_init_depthwise_bias")
def _(rng):
    return Case(11, [node("Conv", ["x", "w", "b"], ["y"], group=5, kernel_shape=[5, 5], pads=[2, 2, 2, 2])],
                [("x", f32(rng, (1, 5, 8, 7)))], [("w", f32(rng, (5, 1, 5, 5), -0.5, 0.5)), ("b", f32(rng, (5,)))])


@case("convtranspose_grouped_strides_pads_output_padding")
def _(rng):
    return Case(11, [node("ConvTranspose", ["x", "w", "b"], ["y"], group=2, strides=[2, 2], pads=[1, 1, 1, 1],
                          output_padding=[1, 0], kernel_shape=[3, 3])],
                [("x", f32(rng, (1, 4, 5, 6)))], [("w", f32(rng, (4, 3, 3, 3), -0.5, 0.5)), ("b", f32(rng, (6,)))])


@case("convtranspose_stride3_dilation_nobias")
def _(rng):
    return Case(11, [node("ConvTranspose", ["x", "w"], ["y"], strides=[3, 2], dilations=[2, 1])],
                [("x", f32(rng, (2, 2, 4, 4)))], [("w", f32(rng, (2, 3, 2, 2), -0.5, 0.5))])


# ---- element-wise activations ----------------------------------------------------------------------------

unary("relu", "Relu", 13, -2, 2, lambda x: np.maximum(x, 0))
unary("leakyrelu_alpha0.1", "LeakyRelu", 13, -3, 3, lambda x: np.where(x < 0, 0.1 * x, x), alpha=0.1)
unary("hardsigmoid_alpha1_6_beta0.5", "HardSigmoid", 13, -5, 5, hardsigmoid, alpha=1.0 / 6.0, beta=0.5)
unary("hardswish_opset14", "HardSwish", 14, -5, 5, lambda x: x * hardsigmoid(x))
unary("sigmoid", "Sigmoid", 13, -6, 6, sigmoid)
unary("tanh", "Tanh", 13, -3, 3, np.tanh)
unary("erf", "Erf", 13, -2.5, 2.5, erf)
unary("sqrt_positive", "Sqrt", 13, 0.01, 9.0, np.sqrt)


@case("clip_min_max_inputs")
def _(rng):
    return Case(11, [node("Clip", ["x", "lo", "hi"], ["y"])], [("x", f32(rng, (3, 4, 5), -3, 3))],
                [("lo", np.array(-1.0, np.float32)), ("hi", np.array(2.5, np.float32))])


@case("clip_min_only")
def _(rng):
    return Case(11, [node("Clip", ["x", "lo"], ["y"])], [("x", f32(rng, (3, 4, 5), -3, 3))],
                [("lo", np.array(-0.5, np.float32))])


@case("clip_max_only")
def _(rng):
    return Case(11, [node("Clip", ["x", "", "hi"], ["y"])], [("x", f32(rng, (3, 4, 5), -3, 3))],
                [("hi", np.array(0.75, np.float32))])


@case("clip_bounds_as_graph_inputs")
def _(rng):
    return Case(12, [node("Clip", ["x", "lo", "hi"], ["y"])],
                [("x", f32(rng, (2, 6), -3, 3)), ("lo", np.array(-2.0, np.float32)), ("hi", np.array(1.0, np.float32))])


# ---- binary ops with broadcasting ------------------------------------------------------------------------


@case("add_broadcast")
def _(rng):
    return Case(13, [node("Add", ["a", "b"], ["y"])], [("a", f32(rng, (2, 3, 4, 5))), ("b", f32(rng, (3, 1, 5)))])


@case("sub_broadcast_last_axis")
def _(rng):
    return Case(13, [node("Sub", ["a", "b"], ["y"])], [("a", f32(rng, (2, 3, 4, 5))), ("b", f32(rng, (5,)))])


@case("mul_broadcast_both_sides")
def _(rng):
    return Case(13, [node("Mul", ["a", "b"], ["y"])], [("a", f32(rng, (2, 1, 4, 1))), ("b", f32(rng, (3, 1, 5)))])


@case("div_broadcast")
def _(rng):
    b = f32(rng, (1, 3, 1, 1), 0.5, 2.0) * np.array([1, -1, 1], np.float32).reshape(1, 3, 1, 1)
    return Case(13, [node("Div", ["a", "b"], ["y"])], [("a", f32(rng, (2, 3, 4, 5), -4, 4)), ("b", b)])


@case("add_scalar_initializer")
def _(rng):
    return Case(13, [node("Add", ["a", "b"], ["y"])], [("a", f32(rng, (2, 3)))], [("b", np.array(0.25, np.float32))])


@case("div_int64_negative_truncates")
def _(rng):
    a = i64([[7, -7, 7, -7, 0, 9], [-1, 1, -9, 13, -13, 100]])
    b = i64([[2, 2, -2, -2, 3, -4], [2, -2, 4, 5, 5, -7]])
    expect = (np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(np.int64)
    return Case(13, [node("Div", ["a", "b"], ["y"])], [("a", a), ("b", b)], expect={0: expect})


@case("div_int64_broadcast_scalar")
def _(rng):
    a = rng.integers(-50, 50, size=(3, 4)).astype(np.int64)
    expect = np.trunc(a / -3).astype(np.int64)
    return Case(13, [node("Div", ["a", "b"], ["y"])], [("a", a)], [("b", np.array(-3, np.int64))], expect={0: expect})


@case("pow_broadcast")
def _(rng):
    return Case(13, [node("Pow", ["a", "b"], ["y"])], [("a", f32(rng, (2, 3, 4), 0.5, 3.0)), ("b", f32(rng, (4,), -2, 3))])


@case("pow_scalar_exponent")
def _(rng):
    return Case(13, [node("Pow", ["a", "b"], ["y"])], [("a", f32(rng, (3, 5), -3, 3))], [("b", np.array(2.0, np.float32))])


# ---- MatMul / Gemm ---------------------------------------------------------------------------------------


@case("matmul_3d_x_2d_initializer")
def _(rng):
    return Case(13, [node("MatMul", ["a", "b"], ["y"])], [("a", f32(rng, (2, 4, 6)))], [("b", f32(rng, (6, 5)))])


@case("matmul_3d_x_2d_inputs")
def _(rng):
    return Case(13, [node("MatMul", ["a", "b"], ["y"])], [("a", f32(rng, (3, 2, 7))), ("b", f32(rng, (7, 4)))])


@case("matmul_4d_broadcast_batch")
def _(rng):
    return Case(13, [node("MatMul", ["a", "b"], ["y"])], [("a", f32(rng, (2, 1, 3, 4))), ("b", f32(rng, (1, 3, 4, 5)))])


@case("gemm_transA_transB_alpha_beta_c_vector")
def _(rng):
    a, b, c = f32(rng, (4, 3)), f32(rng, (5, 4)), f32(rng, (5,))
    return Case(13, [node("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0)], [("a", a)],
                [("b", b), ("c", c)], expect={0: 0.5 * a.T @ b.T + 2.0 * c})


@case("gemm_c_column_broadcast")
def _(rng):
    a, b, c = f32(rng, (3, 6)), f32(rng, (6, 4)), f32(rng, (3, 1))
    return Case(13, [node("Gemm", ["a", "b", "c"], ["y"], beta=-1.0)], [("a", a)], [("b", b), ("c", c)],
                expect={0: a @ b - c})


@case("gemm_transB_no_c")
def _(rng):
    a, b = f32(rng, (2, 8)), f32(rng, (3, 8))
    return Case(11, [node("Gemm", ["a", "b"], ["y"], transB=1)], [("a", a)], [("b", b)], expect={0: a @ b.T})


# ---- Softmax ---------------------------------------------------------------------------------------------


def softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@case("softmax_opset11_axis1_3d_flattens")
def _(rng):
    x = f32(rng, (2, 3, 4), -3, 3)
    # Before opset 13, Softmax coerces the input to 2D [prod(dims[:axis]), prod(dims[axis:])].
    expect = softmax_ref(x.reshape(2, 12), 1).reshape(2, 3, 4)
    return Case(11, [node("Softmax", ["x"], ["y"], axis=1)], [("x", x)], expect={0: expect})


@case("softmax_opset11_default_axis")
def _(rng):
    x = f32(rng, (2, 3, 4), -3, 3)
    return Case(11, [node("Softmax", ["x"], ["y"])], [("x", x)], expect={0: softmax_ref(x.reshape(2, 12), 1).reshape(2, 3, 4)})


@case("softmax_opset13_axis_neg1")
def _(rng):
    x = f32(rng, (2, 3, 4), -3, 3)
    return Case(13, [node("Softmax", ["x"], ["y"], axis=-1)], [("x", x)], expect={0: softmax_ref(x, -1)})


@case("softmax_opset13_axis1_3d_per_axis")
def _(rng):
    x = f32(rng, (2, 3, 4), -3, 3)
    return Case(13, [node("Softmax", ["x"], ["y"], axis=1)], [("x", x)], expect={0: softmax_ref(x, 1)})


# ---- ReduceMean ------------------------------------------------------------------------------------------


@case("reducemean_opset13_axes_keepdims1")
def _(rng):
    x = f32(rng, (2, 3, 4, 5))
    return Case(13, [node("ReduceMean", ["x"], ["y"], axes=[1, 3], keepdims=1)], [("x", x)],
                expect={0: x.mean(axis=(1, 3), keepdims=True)})


@case("reducemean_opset13_neg_axis_keepdims0")
def _(rng):
    x = f32(rng, (2, 3, 4))
    return Case(13, [node("ReduceMean", ["x"], ["y"], axes=[-1], keepdims=0)], [("x", x)], expect={0: x.mean(axis=-1)})


@case("reducemean_opset13_all_axes")
def _(rng):
    x = f32(rng, (2, 3, 4))
    return Case(13, [node("ReduceMean", ["x"], ["y"], keepdims=0)], [("x", x)], expect={0: np.array(x.mean())})


@case("reducemean_opset18_axes_input")
def _(rng):
    x = f32(rng, (2, 3, 4, 5))
    return Case(18, [node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)], [("x", x)], [("axes", i64([0, 2]))],
                expect={0: x.mean(axis=(0, 2), keepdims=True)})


@case("reducemean_opset18_axes_input_keepdims0")
def _(rng):
    x = f32(rng, (2, 3, 4, 5))
    return Case(18, [node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)], [("x", x)], [("axes", i64([-1, 1]))],
                expect={0: x.mean(axis=(1, 3))})


# ---- pooling ---------------------------------------------------------------------------------------------


@case("globalaveragepool")
def _(rng):
    return Case(11, [node("GlobalAveragePool", ["x"], ["y"])], [("x", f32(rng, (2, 3, 5, 7)))])


def pool(name, op, opset, shape, **attrs):
    @case(name)
    def _(rng):
        return Case(opset, [node(op, ["x"], ["y"], **attrs)], [("x", f32(rng, shape, -2, 2))])


pool("averagepool_pads_count_include_pad1", "AveragePool", 11, (1, 2, 7, 8),
     kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
pool("averagepool_pads_count_include_pad0", "AveragePool", 11, (1, 2, 7, 8),
     kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)
pool("averagepool_ceil_mode", "AveragePool", 11, (1, 2, 8, 9), kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
pool("averagepool_ceil_mode_asym_pads_include_pad", "AveragePool", 11, (1, 2, 8, 9),
     kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 0, 1], ceil_mode=1, count_include_pad=1)
pool("maxpool_pads_strides", "MaxPool", 12, (1, 3, 9, 10), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
pool("maxpool_ceil_mode", "MaxPool", 12, (2, 2, 7, 9), kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
pool("maxpool_rect_kernel_asym_pads", "MaxPool", 12, (1, 2, 6, 9), kernel_shape=[3, 2], strides=[1, 2],
     pads=[1, 0, 1, 1])


# ---- Resize ----------------------------------------------------------------------------------------------

EMPTY_F32 = np.zeros((0,), np.float32)


def resize(name, opset, scales=None, sizes=None, shape=(1, 2, 4, 6), **attrs):
    @case(name)
    def _(rng):
        inits = []
        if opset == 11:  # roi and scales are required inputs: empty tensors when unused
            inits = [("roi", EMPTY_F32), ("scales", np.array(scales, np.float32) if scales else EMPTY_F32)]
            ins = ["x", "roi", "scales"]
        else:
            ins = ["x", "", "scales" if scales else ""]
            if scales:
                inits.append(("scales", np.array(scales, np.float32)))
        if sizes:
            ins.append("sizes")
            inits.append(("sizes", i64(sizes)))
        return Case(opset, [node("Resize", ins, ["y"], **attrs)], [("x", f32(rng, shape, -2, 2))], inits)


for _opset in (11, 13):
    _p = f"resize{_opset}"
    resize(f"{_p}_nearest_asymmetric_floor_scales2", _opset, scales=[1, 1, 2, 2],
           mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    resize(f"{_p}_nearest_asymmetric_floor_scales_fractional", _opset, scales=[1, 1, 1.5, 0.75],
           mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    resize(f"{_p}_nearest_half_pixel_round_prefer_floor_sizes", _opset, sizes=[1, 2, 7, 5],
           mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_floor")
    resize(f"{_p}_nearest_half_pixel_round_prefer_floor_scales", _opset, scales=[1, 1, 3, 0.5],
           mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_floor")
    resize(f"{_p}_linear_half_pixel_scales", _opset, scales=[1, 1, 2, 1.5],
           mode="linear", coordinate_transformation_mode="half_pixel")
    resize(f"{_p}_linear_half_pixel_sizes_down", _opset, sizes=[1, 2, 3, 4],
           mode="linear", coordinate_transformation_mode="half_pixel")
    resize(f"{_p}_linear_align_corners_sizes", _opset, sizes=[1, 2, 7, 9],
           mode="linear", coordinate_transformation_mode="align_corners")
    resize(f"{_p}_linear_asymmetric_scales", _opset, scales=[1, 1, 0.5, 2],
           mode="linear", coordinate_transformation_mode="asymmetric")
    resize(f"{_p}_linear_asymmetric_sizes", _opset, sizes=[1, 2, 6, 10],
           mode="linear", coordinate_transformation_mode="asymmetric")


# ---- shape manipulation ----------------------------------------------------------------------------------


@case("concat_negative_axis")
def _(rng):
    return Case(13, [node("Concat", ["a", "b", "c"], ["y"], axis=-2)],
                [("a", f32(rng, (2, 3, 4))), ("b", f32(rng, (2, 1, 4))), ("c", f32(rng, (2, 2, 4)))])


@case("split_opset11_split_attribute")
def _(rng):
    return Case(11, [node("Split", ["x"], ["y0", "y1", "y2"], axis=1, split=[2, 4, 1])], [("x", f32(rng, (2, 7, 3)))])


@case("split_opset11_equal_negative_axis")
def _(rng):
    return Case(11, [node("Split", ["x"], ["y0", "y1", "y2"], axis=-2)], [("x", f32(rng, (2, 6, 2)))])


@case("split_opset13_split_input")
def _(rng):
    return Case(13, [node("Split", ["x", "split"], ["y0", "y1"], axis=-1)], [("x", f32(rng, (3, 7)))],
                [("split", i64([3, 4]))])


@case("split_opset18_num_outputs_uneven")
def _(rng):
    return Case(18, [node("Split", ["x"], ["y0", "y1", "y2"], axis=1, num_outputs=3)], [("x", f32(rng, (2, 7)))])


@case("reshape_zero_and_neg1")
def _(rng):
    return Case(13, [node("Reshape", ["x", "shape"], ["y"])], [("x", f32(rng, (2, 3, 4, 5)))],
                [("shape", i64([0, -1, 5]))])


@case("reshape_neg1_first_zero_last")
def _(rng):
    return Case(13, [node("Reshape", ["x", "shape"], ["y"])], [("x", f32(rng, (2, 3, 4, 5)))],
                [("shape", i64([-1, 5, 0]))])


for _axis in (0, 1, 2, -1):
    def _flatten(rng, axis=_axis):
        return Case(13, [node("Flatten", ["x"], ["y"], axis=axis)], [("x", f32(rng, (2, 3, 4, 5)))])

    case(f"flatten_axis{_axis}".replace("-", "neg"))(_flatten)


@case("transpose_perm")
def _(rng):
    return Case(13, [node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [("x", f32(rng, (2, 3, 4, 5)))])


@case("transpose_default_reverses")
def _(rng):
    return Case(13, [node("Transpose", ["x"], ["y"])], [("x", f32(rng, (2, 3, 4)))])


@case("squeeze_opset11_axes_attribute")
def _(rng):
    return Case(11, [node("Squeeze", ["x"], ["y"], axes=[0, -2])], [("x", f32(rng, (1, 3, 1, 4)))])


@case("squeeze_opset13_axes_input")
def _(rng):
    return Case(13, [node("Squeeze", ["x", "axes"], ["y"])], [("x", f32(rng, (1, 3, 1, 4)))], [("axes", i64([2]))])


@case("squeeze_opset13_no_axes")
def _(rng):
    return Case(13, [node("Squeeze", ["x"], ["y"])], [("x", f32(rng, (1, 3, 1, 4, 1)))])


@case("unsqueeze_opset11_axes_attribute")
def _(rng):
    return Case(11, [node("Unsqueeze", ["x"], ["y"], axes=[0, -1])], [("x", f32(rng, (3, 4)))])


@case("unsqueeze_opset13_axes_input")
def _(rng):
    return Case(13, [node("Unsqueeze", ["x", "axes"], ["y"])], [("x", f32(rng, (3, 4)))], [("axes", i64([1, -1]))])


def slice_case(name, shape, starts, ends, axes=None, steps=None, expect=None):
    @case(name)
    def _(rng):
        x = f32(rng, shape)
        ins, inits = ["x", "starts", "ends"], [("starts", i64(starts)), ("ends", i64(ends))]
        if axes is not None or steps is not None:
            ins.append("axes" if axes is not None else "")
            if axes is not None:
                inits.append(("axes", i64(axes)))
        if steps is not None:
            ins.append("steps")
            inits.append(("steps", i64(steps)))
        return Case(13, [node("Slice", ins, ["y"])], [("x", x)], inits, expect={0: expect(x)} if expect else None)


slice_case("slice_negative_starts_clamped_end", (5, 6, 7), [-3, -4], [100, -1], axes=[0, 2],
           expect=lambda x: x[-3:100, :, -4:-1])
slice_case("slice_steps_negative_step", (4, 6, 7), [0, 5], [5, 0], axes=[1, 2], steps=[2, -2],
           expect=lambda x: x[:, 0:5:2, 5:0:-2])
slice_case("slice_clamped_int64_bounds", (4, 6), [-100, 2], [I64_MAX, I64_MAX], axes=[0, 1],
           expect=lambda x: x[:, 2:])
slice_case("slice_full_reverse_int64_min", (4, 6), [-1], [I64_MIN], axes=[-1], steps=[-1],
           expect=lambda x: x[:, ::-1])
slice_case("slice_axes_omitted", (5, 6, 7), [1, 0, 2], [4, 3, 6], expect=lambda x: x[1:4, 0:3, 2:6])
slice_case("slice_axes_omitted_steps", (5, 6), [4, 1], [0, 6], steps=[-1, 2], expect=lambda x: x[4:0:-1, 1:6:2])


@case("shape_opset15_start_end")
def _(rng):
    return Case(15, [node("Shape", ["x"], ["y"], start=1, end=-1)], [("x", f32(rng, (2, 3, 4, 5)))],
                expect={0: i64([3, 4])})


@case("shape_opset15_negative_start")
def _(rng):
    return Case(15, [node("Shape", ["x"], ["y"], start=-2)], [("x", f32(rng, (2, 3, 4, 5)))], expect={0: i64([4, 5])})


@case("shape_opset15_end_clamped")
def _(rng):
    return Case(15, [node("Shape", ["x"], ["y"], end=10)], [("x", f32(rng, (2, 3, 4)))], expect={0: i64([2, 3, 4])})


@case("gather_axis0_negative_indices_input")
def _(rng):
    x, idx = f32(rng, (5, 4)), i64([[0, -1], [2, -5]])
    return Case(13, [node("Gather", ["x", "i"], ["y"], axis=0)], [("x", x), ("i", idx)], expect={0: x[idx]})


@case("gather_axis1_negative_indices")
def _(rng):
    x, idx = f32(rng, (3, 6, 2)), i64([-2, 0, 5])
    return Case(13, [node("Gather", ["x", "i"], ["y"], axis=1)], [("x", x)], [("i", idx)], expect={0: x[:, idx]})


@case("gather_scalar_index_axis1")
def _(rng):
    x = f32(rng, (3, 6, 2))
    return Case(13, [node("Gather", ["x", "i"], ["y"], axis=1)], [("x", x)], [("i", np.array(-2, np.int64))],
                expect={0: x[:, -2]})


@case("gather_int64_data_scalar_index")
def _(rng):
    x = i64([7, 3, 9, 4])
    return Case(13, [node("Gather", ["x", "i"], ["y"], axis=0)], [("x", x)], [("i", np.array(1, np.int64))],
                expect={0: np.array(3, np.int64)})


@case("cast_float_to_int64_truncates")
def _(rng):
    x = np.concatenate([np.array([-2.7, -2.5, -0.9, -0.0, 0.4, 0.5, 1.5, 2.7, 99.99, -99.99], np.float32),
                        f32(rng, (14,), -50, 50)]).reshape(4, 6)
    return Case(13, [node("Cast", ["x"], ["y"], to=onnx.TensorProto.INT64)], [("x", x)],
                expect={0: np.trunc(x).astype(np.int64)})


@case("cast_int64_to_float")
def _(rng):
    x = np.concatenate([i64([-(2**40), -7, 0, 3, 2**31 + 5]), rng.integers(-1000, 1000, size=7)]).astype(np.int64)
    return Case(13, [node("Cast", ["x"], ["y"], to=onnx.TensorProto.FLOAT)], [("x", x.reshape(3, 4))],
                expect={0: x.reshape(3, 4).astype(np.float32)})


@case("cast_int64_to_int32")
def _(rng):
    x = i64([[-5, 0, 7], [123456, -654321, 42]])
    return Case(13, [node("Cast", ["x"], ["y"], to=onnx.TensorProto.INT32)], [("x", x)], expect={0: x.astype(np.int32)})


@case("tile_2d")
def _(rng):
    x = f32(rng, (2, 3))
    return Case(13, [node("Tile", ["x", "r"], ["y"])], [("x", x)], [("r", i64([2, 3]))], expect={0: np.tile(x, (2, 3))})


@case("tile_4d_ones")
def _(rng):
    x = f32(rng, (1, 2, 1, 3))
    return Case(13, [node("Tile", ["x", "r"], ["y"])], [("x", x)], [("r", i64([3, 1, 2, 1]))],
                expect={0: np.tile(x, (3, 1, 2, 1))})


@case("expand_rank_increase")
def _(rng):
    x = f32(rng, (3, 1))
    return Case(13, [node("Expand", ["x", "s"], ["y"])], [("x", x)], [("s", i64([2, 3, 4]))],
                expect={0: np.broadcast_to(x, (2, 3, 4))})


@case("expand_shape_smaller_rank_with_ones")
def _(rng):
    x = f32(rng, (2, 1, 4))
    return Case(13, [node("Expand", ["x", "s"], ["y"])], [("x", x)], [("s", i64([3, 1]))],
                expect={0: np.broadcast_to(x, (2, 3, 4))})


@case("identity")
def _(rng):
    return Case(13, [node("Identity", ["x"], ["y"])], [("x", f32(rng, (2, 3, 4)))])


# ---- Constant --------------------------------------------------------------------------------------------


@case("constant_value_tensor")
def _(rng):
    c = f32(rng, (2, 3))
    return Case(13, [node("Constant", [], ["c"], value=numpy_helper.from_array(c, "c")), node("Add", ["x", "c"], ["y"])],
                [("x", f32(rng, (2, 3)))], outputs=["y", "c"])


@case("constant_value_float")
def _(rng):
    return Case(13, [node("Constant", [], ["c"], value_float=0.25), node("Mul", ["x", "c"], ["y"])],
                [("x", f32(rng, (2, 3)))], outputs=["y", "c"])


@case("constant_value_ints_as_shape")
def _(rng):
    return Case(13, [node("Constant", [], ["c"], value_ints=[4, -1]), node("Reshape", ["x", "c"], ["y"])],
                [("x", f32(rng, (3, 4)))], outputs=["y", "c"], expect={1: i64([4, -1])})


# ---- LSTM / BatchNormalization ---------------------------------------------------------------------------


def lstm_ref(x, h0, c0, w, r, b, dirs):
    """ONNX LSTM, default activations: gates i, o, f, c in W, R and B (B = [Wb, Rb]); direction 1 runs reversed."""
    seq, hidden = x.shape[0], r.shape[-1]
    x, w, r, b = (a.astype(np.float64) for a in (x, w, r, b))
    y = np.zeros((seq, dirs, x.shape[1], hidden))
    y_h, y_c = np.zeros_like(h0, dtype=np.float64), np.zeros_like(c0, dtype=np.float64)
    for d in range(dirs):
        h, c = h0[d].astype(np.float64), c0[d].astype(np.float64)
        bias = b[d, : 4 * hidden] + b[d, 4 * hidden:]
        for t in range(seq)[:: -1 if d else 1]:
            g = x[t] @ w[d].T + h @ r[d].T + bias
            i, o, f, cc = (g[:, k * hidden:(k + 1) * hidden] for k in range(4))
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
            h = sigmoid(o) * np.tanh(c)
            y[t, d] = h
        y_h[d], y_c[d] = h, c
    return {0: y.astype(np.float32), 1: y_h.astype(np.float32), 2: y_c.astype(np.float32)}


def lstm(name, direction, seq, batch, inp, hidden):
    dirs = 2 if direction == "bidirectional" else 1

    @case(name)
    def _(rng):
        inits = [("w", f32(rng, (dirs, 4 * hidden, inp), -0.6, 0.6)), ("r", f32(rng, (dirs, 4 * hidden, hidden), -0.6, 0.6)),
                 ("b", f32(rng, (dirs, 8 * hidden), -0.3, 0.3))]
        inputs = [("x", f32(rng, (seq, batch, inp), -1.5, 1.5)), ("h0", f32(rng, (dirs, batch, hidden), -0.5, 0.5)),
                  ("c0", f32(rng, (dirs, batch, hidden), -0.5, 0.5))]
        n = node("LSTM", ["x", "w", "r", "b", "", "h0", "c0"], ["y", "y_h", "y_c"], direction=direction,
                 hidden_size=hidden)
        return Case(12, [n], inputs, inits, expect=lstm_ref(*(a for _, a in inputs + inits), dirs))


lstm("lstm_forward_b_initial_state", "forward", 5, 2, 4, 3)
lstm("lstm_bidirectional_b_initial_state", "bidirectional", 6, 3, 5, 4)


@case("batchnormalization_initializers")
def _(rng):
    c = 4
    inits = [("scale", f32(rng, (c,), 0.5, 1.5)), ("bias", f32(rng, (c,))), ("mean", f32(rng, (c,), -0.5, 0.5)),
             ("var", f32(rng, (c,), 0.2, 2.0))]
    return Case(12, [node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-3)],
                [("x", f32(rng, (2, c, 3, 5), -2, 2))], inits)


# ---- building and running --------------------------------------------------------------------------------


def build(name, c, output_types):
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for n, a in c.inputs]
    if output_types is None:
        graph_outputs = [onnx.ValueInfoProto(name=o) for o in c.outputs]
    else:
        graph_outputs = [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                         for o, a in zip(c.outputs, output_types)]
    graph = helper.make_graph(c.nodes, name, graph_inputs, graph_outputs,
                              initializer=[numpy_helper.from_array(a, n) for n, a in c.inits])
    opsets = [helper.make_opsetid("", c.opset)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="sensgrid-oracle",
                             ir_version=helper.find_min_ir_version_for(opsets))


def run(model, c):
    return session(model).run(c.outputs, dict(c.inputs))


def run_case(name, out_root):
    c = CASES[name](np.random.default_rng(zlib.crc32(name.encode())))
    first = run(build(name, c, None), c)
    model = build(name, c, first)  # outputs typed with what onnxruntime produced
    onnx.checker.check_model(model, full_check=True)
    outs = run(model, c)
    for a, b in zip(first, outs):
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    for i, ref in (c.expect or {}).items():
        got = outs[i]
        ok = got.shape == ref.shape and (ref.dtype.kind not in "iu" or got.dtype == ref.dtype)
        ok = ok and np.allclose(got, ref, rtol=1e-5, atol=1e-6)
        if not ok:
            raise SystemExit(f"{name}: output {i} disagrees with the numpy reference:\n{got}\n{ref}")

    case_dir = os.path.join(out_root, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(case_dir)
    onnx.save(model, os.path.join(case_dir, "model.onnx"))
    inputs, outputs = [], []
    for i, (n, a) in enumerate(c.inputs):
        save_npy(os.path.join(case_dir, f"in_{i}.npy"), a)
        inputs.append({"name": n, "file": f"in_{i}.npy"})
    for i, (n, a) in enumerate(zip(c.outputs, outs)):
        save_npy(os.path.join(case_dir, f"out_{i}.npy"), a)
        outputs.append({"name": n, "file": f"out_{i}.npy"})
    write_json(os.path.join(case_dir, "manifest.json"),
               {"case": name, "opset": c.opset, "inputs": inputs, "outputs": outputs})
    shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in outs)
    checked = " (numpy-checked)" if c.expect else ""
    print(f"{name}: opset {c.opset} -> {shapes}{checked}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (e.g. target/oracle/nodes)")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="only this case (repeatable)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    names = args.case or list(CASES)
    for name in names:
        run_case(name, args.out)
    print(f"{args.out}: {len(names)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
