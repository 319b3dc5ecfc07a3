#!/usr/bin/env python3
"""Runs ONNX models on one input with onnxruntime and saves their first output next to each model.

    .oracle/bin/python scripts/oracle/run_models.py INPUT.npy MODEL.onnx [MODEL.onnx ...]

For each MODEL.onnx it writes MODEL.ort.npy. The Rust pruning tests use it to run the structurally pruned
models sensgrid writes: onnxruntime, not sensgrid's engine, is the judge of what those files compute.
Sessions run on the CPU with 2 threads and graph optimizations disabled (oracle_common.session).
"""

import os
import sys

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import save_npy, session  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    x = np.load(sys.argv[1])
    for path in sys.argv[2:]:
        sess = session(onnx.load(path))
        (first, *_) = sess.run(None, {sess.get_inputs()[0].name: x})
        save_npy(os.path.splitext(path)[0] + ".ort.npy", first)


if __name__ == "__main__":
    main()
