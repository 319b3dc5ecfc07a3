"""Reference DB post-processing for eval/src/det/postprocess.rs, on synthetic probability maps.

DBPostProcess is re-implemented here from PaddleOCR's rules (ppocr/postprocess/db_postprocess.py) with the
same libraries it uses: numpy for the arithmetic, cv2 for contours, rectangles, fills and means, pyclipper
for unclip and shapely for its distance. Each map is stored as little-endian uint16 (`q`) and read as
`float32(q) / float32(65535)` on both sides; eval/tests/fixtures/db/cases.json lists, per map, several option
sets with the boxes and scores they give.

Needs (a scratch venv for now): numpy==2.4.6 opencv-python-headless==4.10.0.84 pyclipper==1.3.0.post6
shapely==2.2.0. Deterministic: one seeded generator.

    python scripts/oracle/db_postprocess_cases.py [out_dir]
"""

import json
import os
import sys

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "db")
MIN_SIZE = 3


def mini_box(points):
    """The minimum-area rectangle's corners (left pair, then right pair, each top first) and short side."""
    rect = cv2.minAreaRect(points)
    corners = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    a, d = (0, 1) if corners[1][1] > corners[0][1] else (1, 0)
    b, c = (2, 3) if corners[3][1] > corners[2][1] else (3, 2)
    return [corners[a], corners[b], corners[c], corners[d]], min(rect[1])


def mean_inside(pred, pts, xmin, xmax, ymin, ymax):
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    cv2.fillPoly(mask, pts.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(pred[ymin:ymax + 1, xmin:xmax + 1], mask)[0]


def score_fast(pred, box):
    h, w = pred.shape
    box = box.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype(np.int32), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype(np.int32), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype(np.int32), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype(np.int32), 0, h - 1)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    return mean_inside(pred, box, xmin, xmax, ymin, ymax)


def score_slow(pred, contour):
    h, w = pred.shape
    c = contour.copy().reshape(-1, 2)
    xmin, xmax = np.clip(c[:, 0].min(), 0, w - 1), np.clip(c[:, 0].max(), 0, w - 1)
    ymin, ymax = np.clip(c[:, 1].min(), 0, h - 1), np.clip(c[:, 1].max(), 0, h - 1)
    c[:, 0] = c[:, 0] - xmin
    c[:, 1] = c[:, 1] - ymin
    return mean_inside(pred, c, xmin, xmax, ymin, ymax)


def unclip(box, ratio):
    poly = Polygon(box)
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return offset.Execute(poly.area * ratio / poly.length)


def quad_boxes(pred, bitmap, o, dest_w, dest_h):
    height, width = bitmap.shape
    contours, _ = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for contour in contours[: o["max_candidates"]]:
        points, sside = mini_box(contour)
        if sside < MIN_SIZE:
            continue
        points = np.array(points)
        score = score_fast(pred, points.reshape(-1, 2)) if o["score_mode"] == "fast" else score_slow(pred, contour)
        if o["box_thresh"] > score:
            continue
        expanded = unclip(points, o["unclip_ratio"])
        if len(expanded) != 1:  # several: PaddleOCR drops it; none: PaddleOCR would fail, we drop it
            continue
        box, sside = mini_box(np.array(expanded).reshape(-1, 1, 2))
        if sside < MIN_SIZE + 2:
            continue
        box = np.array(box)
        box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_w), 0, dest_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_h), 0, dest_h)
        boxes.append(box.astype(np.int32).tolist())
        scores.append(score)
    return boxes, scores


def poly_boxes(pred, bitmap, o, dest_w, dest_h):
    height, width = bitmap.shape
    contours, _ = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for contour in contours[: o["max_candidates"]]:
        approx = cv2.approxPolyDP(contour, 0.002 * cv2.arcLength(contour, True), True)
        points = approx.reshape((-1, 2))
        if points.shape[0] < 4:
            continue
        score = score_fast(pred, points)
        if o["box_thresh"] > score:
            continue
        expanded = unclip(points, o["unclip_ratio"])
        if len(expanded) != 1:
            continue
        box = np.array(expanded).reshape(-1, 2)
        _, sside = mini_box(box.reshape((-1, 1, 2)))
        if sside < MIN_SIZE + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_w), 0, dest_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_h), 0, dest_h)
        boxes.append(box.tolist())
        scores.append(score)
    return boxes, scores


def db_postprocess(pred, shape, o):
    segmentation = pred > o["thresh"]
    src_h, src_w = shape[0], shape[1]
    if o["use_dilation"]:
        mask = cv2.dilate(segmentation.astype(np.uint8), np.array([[1, 1], [1, 1]]))
    else:
        mask = segmentation
    run = quad_boxes if o["box_type"] == "quad" else poly_boxes
    return run(pred, mask, o, src_w, src_h)


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
