"""Reference DB post-processing for eval/src/det/postprocess.rs, on synthetic probability maps.

DBPostProcess is re-implemented from PaddleOCR's rules (ppocr/postprocess/db_postprocess.py) in paddle_rules.py
with the same libraries it uses: numpy for the arithmetic, cv2 for contours, rectangles, fills and means,
pyclipper for unclip and shapely for its distance. Each map is stored as little-endian uint16 (`q`) and read as
`float32(q) / float32(65535)` on both sides; eval/tests/fixtures/db/cases.json lists, per map, several option
sets with the boxes and scores they give.

Runs in the oracle venv (numpy, opencv-python-headless, pyclipper and shapely are pinned in
scripts/oracle-requirements.txt). Deterministic: one seeded generator.

    .oracle/bin/python scripts/oracle/db_postprocess_cases.py [out_dir]
"""

import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paddle_rules import db_postprocess  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "db")


def synthetic_map(rng, h, w):
    """Text-like strokes: rotated rectangles, rings and specks over low noise, blurred, as uint16."""
    m = rng.uniform(0.0, 0.15, (h, w)).astype(np.float32)
    for _ in range(rng.integers(10, 20)):
        kind = rng.random()
        c = (float(rng.uniform(-10, w + 10)), float(rng.uniform(-10, h + 10)))
        value = float(rng.uniform(0.75, 1.0))
        if kind < 0.6:
            size = (float(rng.uniform(8, w / 2)), float(rng.uniform(4, 24)))
            pts = cv2.boxPoints((c, size, float(rng.uniform(-40, 40)))).astype(np.int32)
            cv2.fillPoly(m, [pts], value)
        elif kind < 0.8:
            axes = (int(rng.integers(6, 30)), int(rng.integers(6, 20)))
            angle, thickness = float(rng.uniform(0, 180)), int(rng.integers(3, 7))
            cv2.ellipse(m, (int(c[0]), int(c[1])), axes, angle, 0, 360, value, thickness)
        else:
            cv2.circle(m, (int(c[0]), int(c[1])), int(rng.integers(1, 4)), value, -1)
    m = cv2.GaussianBlur(m, (5, 5), float(rng.uniform(0.6, 1.6)))
    m += rng.normal(0, 0.03, (h, w)).astype(np.float32)
    return np.round(np.clip(m, 0, 1) * 65535).astype(np.uint16)


def option_set(thresh, box_thresh, max_candidates, unclip_ratio, use_dilation, score_mode, box_type):
    return dict(thresh=thresh, box_thresh=box_thresh, max_candidates=max_candidates, unclip_ratio=unclip_ratio,
                use_dilation=use_dilation, score_mode=score_mode, box_type=box_type)


OPTIONS = [
    option_set(0.3, 0.7, 1000, 2.0, False, "fast", "quad"),  # PaddleOCR's defaults
    option_set(0.3, 0.6, 1000, 1.5, False, "slow", "quad"),
    option_set(0.3, 0.5, 1000, 2.0, True, "fast", "quad"),
    option_set(0.35, 0.5, 1000, 1.6, True, "slow", "quad"),
    option_set(0.3, 0.5, 4, 2.0, False, "fast", "quad"),  # max_candidates cuts OpenCV's contour list
    option_set(0.3, 0.6, 1000, 1.5, False, "fast", "poly"),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(31337)
    sizes = [(160, 224), (192, 256), (96, 320), (224, 160), (128, 128), (200, 200)]
    maps = []
    for i, (h, w) in enumerate(sizes):
        q = synthetic_map(rng, h, w)
        name = f"map{i}.u16"
        q.astype("<u2").tofile(os.path.join(out, name))
        pred = q.astype(np.float32) / np.float32(65535)
        src_h, src_w = h * float(rng.uniform(1.0, 3.5)), w * float(rng.uniform(1.0, 3.5))
        shape = np.array([round(src_h), round(src_w), h / round(src_h), w / round(src_w)])
        runs = []
        for o in OPTIONS:
            boxes, scores = db_postprocess(pred, shape, o)
            runs.append({"options": o, "boxes": boxes, "scores": scores})
        maps.append({"file": name, "height": h, "width": w, "shape": shape.tolist(), "runs": runs})
    path = os.path.join(out, "cases.json")
    with open(path, "w") as f:
        json.dump(maps, f, separators=(",", ":"))
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"{out}: {len(maps)} maps, {sum(len(r['boxes']) for m in maps for r in m['runs'])} boxes, {total} bytes")


if __name__ == "__main__":
    main()
