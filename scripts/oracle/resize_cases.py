"""Reference outputs of cv2.resize(INTER_LINEAR) on uint8 images, for eval/src/resize.rs.

Source images are not stored: each is a pattern both sides compute from (kind, seed, h, w, c) (see `pattern`
and its copy in eval/tests/it/image/mod.rs), so large sources cost nothing. Only OpenCV's outputs are written:

    eval/tests/fixtures/resize/cases.json   [{"kind", "seed", "src": [h, w, c], "dst": [h, w], "offset", "what"}]
    eval/tests/fixtures/resize/outputs.bin  every output, row-major HWC, concatenated (offset into it)

Cases: equal sizes, exact halving (OpenCV's INTER_AREA fast path), integer and non-integer up- and downscales,
one-pixel sources and targets, strips, large reductions, weights that fall on exact halves of 1/2048 (rounded
half to even), and the sizes PaddleOCR's det/rec/cls resizes produce, for 1 and 3 channels.

Needs (a scratch venv outside the repo): numpy==2.4.6 opencv-python-headless==4.10.0.84. Deterministic (seeded).

    python scripts/oracle/resize_cases.py [out_dir]
"""

import json
import os
import sys

import cv2
import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "resize")
M = 0xFFFFFFFF


def hash32(seed, y, x, c):
    """A 32-bit integer hash of a sample position (numpy arrays of uint64, values below 2^32)."""
    v = (seed * 0x9E3779B1 + y * 0x85EBCA77 + x * 0xC2B2AE3D + c * 0x27D4EB2F) & M
    v ^= v >> 15
    v = (v * 0x2C1B3C6D) & M
    v ^= v >> 12
    v = (v * 0x297A2D39) & M
    v ^= v >> 15
    return v


def pattern(kind, seed, h, w, c):
    """The source image of a case: uint8 noise, only 0 and 255, or a smooth ramp with a little noise."""
    y, x, k = np.meshgrid(
        np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64), np.arange(c, dtype=np.uint64), indexing="ij"
    )
    v = hash32(np.uint64(seed), y, x, k)
    if kind == "noise":
        out = v & 0xFF
    elif kind == "extremes":
        out = (v & 1) * 255
    elif kind == "ramp":
        out = (x * 7 + y * 3 + k * 50 + (v & 7)) & 0xFF
    else:
        raise ValueError(kind)
    return out.astype(np.uint8)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240612)
    specs = []

    def case(src, dst, what, kind="noise", c=3):
        specs.append((kind, len(specs) + 1, src, dst, c, what))

    case((5, 7), (5, 7), "equal size: a copy")
    case((8, 12), (4, 6), "exact halving: INTER_AREA's fast path")
    case((9, 12), (4, 6), "halving columns only (rows 9 -> 4)")
    case((8, 13), (4, 6), "nearly halving")
    case((1, 1), (5, 7), "one pixel up")
    case((1, 1), (1, 1), "one pixel kept")
    case((6, 9), (1, 1), "down to one pixel")
    case((1, 17), (4, 5), "a row up and down")
    case((17, 1), (5, 4), "a column down and up")
    case((3, 3), (10, 10), "3x upscale plus a bit")
    case((4, 4), (12, 8), "integer upscales 3x and 2x")
    case((7, 5), (32, 48), "large upscale")
    case((37, 100), (12, 33), "non-integer downscale")
    case((480, 640), (15, 20), "32x reduction")
    case((17, 999), (3, 7), "extreme strip reduction")
    case((2, 2), (3, 3), "2 -> 3")
    case((3, 2), (2, 3), "mixed up and down")
    case((100, 37), (101, 38), "nearly equal")
    case((31, 45), (32, 64), "det: to multiples of 32")
    case((97, 131), (96, 128), "det: slightly down")
    case((150, 200), (160, 224), "det: slightly up")
    case((29, 93), (48, 155), "rec: height 48")
    case((40, 250), (32, 100), "rec: 32x100, squeezed")
    case((52, 60), (48, 56), "cls: 48 high")
    case((10, 10), (5, 5), "exact halving, extremes", kind="extremes")
    case((9, 11), (27, 16), "upscale, extremes", kind="extremes")
    case((33, 47), (13, 29), "downscale, extremes", kind="extremes")
    case((20, 30), (47, 61), "ramp up", kind="ramp")
    case((47, 61), (20, 30), "ramp down", kind="ramp")
    case((3, 5), (2048, 1), "weights at exact halves of 1/2048: rounded half to even", c=1)
    case((5, 3), (1, 2048), "weights at exact halves of 1/2048, columns", c=1)
    case((6, 8), (3, 4), "halving, one channel", c=1)
    case((13, 7), (29, 17), "upscale, one channel", c=1)
    for i in range(40):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        dh, dw = int(rng.integers(1, 48)), int(rng.integers(1, 48))
        kind = ["noise", "extremes", "ramp"][i % 3]
        case((h, w), (dh, dw), "random sizes", kind=kind, c=[1, 3][i % 2])

    cases = []
    blob = bytearray()
    for kind, seed, (h, w), (dh, dw), c, what in specs:
        src = pattern(kind, seed, h, w, c)
        img = src[:, :, 0] if c == 1 else src
        dst = cv2.resize(img, (dw, dh))
        assert dst.shape[:2] == (dh, dw)
        cases.append({"kind": kind, "seed": seed, "src": [h, w, c], "dst": [dh, dw], "offset": len(blob), "what": what})
        blob += np.ascontiguousarray(dst).tobytes()

    with open(os.path.join(out, "outputs.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {len(blob)} output bytes in {out}")


if __name__ == "__main__":
    main()
