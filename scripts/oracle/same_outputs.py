#!/usr/bin/env python3
"""Checks that two ONNX models give bit-identical onnxruntime outputs on one input.

    .oracle/bin/python scripts/oracle/same_outputs.py ORIGINAL.onnx REWRITTEN.onnx INPUT.npy

Used by the Rust tests to show that sensgrid's read-then-write round trip keeps a model's behaviour.
Both sessions run with onnxruntime's default graph optimizations, as a user would run them. Exits 1 and says
which output differs, and by how much, when they are not identical.
"""

import os
import sys

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import session  # noqa: E402


def outputs(path, x):
    sess = session(onnx.load(path), optimize=True)
    return sess.get_outputs(), sess.run(None, {sess.get_inputs()[0].name: x})


def main():
    original, rewritten, input_path = sys.argv[1:4]
    x = np.load(input_path)
    names_a, values_a = outputs(original, x)
    names_b, values_b = outputs(rewritten, x)
    if [o.name for o in names_a] != [o.name for o in names_b]:
        sys.exit(f"outputs differ: {[o.name for o in names_a]} vs {[o.name for o in names_b]}")
    for out, a, b in zip(names_a, values_a, values_b):
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).max() if a.shape == b.shape else "n/a"
            sys.exit(f"{out.name}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}, max diff {diff}")
    print(f"identical: {len(values_a)} output(s)")


if __name__ == "__main__":
    main()
