"""Reference detection metric for eval/src/det/metric.rs: PaddleOCR's DetectionIoUEvaluator on random images.

The evaluator is re-implemented from PaddleOCR's rules (ppocr/metrics/eval_det_iou.py) in paddle_rules.py with
shapely, as PaddleOCR computes it: invalid or non-simple polygons skipped, don't-care detections (> 0.5 of their
area inside a don't-care ground truth), greedy one-to-one matching at IoU > 0.5 in ground-truth order, and
combine_results over the set. Writes eval/tests/fixtures/det_metric_cases.json:
    {"images": [{"gt": [{"points", "ignore"}], "det": [points], "counts": {gt_care, det_care, det_matched}}],
     "metrics": {"precision", "recall", "hmean"}}

Runs in the oracle venv (shapely and opencv-python-headless are pinned in scripts/oracle-requirements.txt).
Deterministic (seeded).

    .oracle/bin/python scripts/oracle/det_metric_cases.py [out.json]
"""

import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paddle_rules import combine, evaluate_image  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "det_metric_cases.json")


def quad(rng):
    c = (float(rng.uniform(20, 600)), float(rng.uniform(20, 400)))
    size = (float(rng.uniform(10, 200)), float(rng.uniform(6, 40)))
    return np.round(cv2.boxPoints((c, size, float(rng.uniform(-30, 30))))).tolist()


def curved(rng):
    """A bent text line: an upper and a lower polyline, usually non-convex."""
    x0, y0 = float(rng.uniform(20, 500)), float(rng.uniform(40, 400))
    n, step, h = int(rng.integers(3, 6)), float(rng.uniform(15, 40)), float(rng.uniform(8, 25))
    ys = y0 + np.cumsum(rng.uniform(-8, 8, n))
    top = [[x0 + i * step, float(np.round(ys[i]))] for i in range(n)]
    bottom = [[x0 + i * step, float(np.round(ys[i] + h))] for i in reversed(range(n))]
    return top + bottom


def jitter(rng, points, k):
    return [[float(x + rng.integers(-k, k + 1)), float(y + rng.integers(-k, k + 1))] for x, y in points]


def image(rng):
    gt = []
    for _ in range(rng.integers(0, 8)):
        pts = quad(rng) if rng.random() < 0.75 else curved(rng)
        gt.append({"points": pts, "ignore": bool(rng.random() < 0.2)})
    if rng.random() < 0.15:
        gt.append({"points": [[0, 0], [30, 20], [30, 0], [0, 20]], "ignore": False})  # a bow-tie
    det = []
    for g in gt:
        r = rng.random()
        if r < 0.55:
            det.append(jitter(rng, g["points"], int(rng.integers(0, 6))))
        elif r < 0.7 and len(g["points"]) == 4:
            # Split in two along the long side.
            p = np.array(g["points"], float)
            mid_top, mid_bottom = (p[0] + p[1]) / 2, (p[3] + p[2]) / 2
            det.append([p[0].tolist(), mid_top.tolist(), mid_bottom.tolist(), p[3].tolist()])
            det.append([mid_top.tolist(), p[1].tolist(), p[2].tolist(), mid_bottom.tolist()])
        elif r < 0.8:
            det.append([[x + 0.5, y - 0.25] for x, y in g["points"]])
    for _ in range(rng.integers(0, 3)):
        det.append(quad(rng))
    if len(gt) >= 2 and rng.random() < 0.3:
        # Merge two ground truths into their joint bounding rectangle.
        pts = np.array(gt[0]["points"] + gt[1]["points"], np.float32)
        det.append(np.round(cv2.boxPoints(cv2.minAreaRect(pts))).tolist())
    order = rng.permutation(len(det))
    det = [det[i] for i in order]
    return {"gt": gt, "det": det, "counts": evaluate_image(gt, det)}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else OUT
    rng = np.random.default_rng(4242)
    images = [image(rng) for _ in range(120)]
    data = {"images": images, "metrics": combine([i["counts"] for i in images])}
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: {len(images)} images, {data['metrics']}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
