"""Reference offsets for eval/src/det/clipper.rs: pyclipper's answer to PaddleOCR's `unclip` on many polygons.

Writes eval/tests/fixtures/clipper_cases.json: a list of cases, each
    {"name", "points": [[x, y], ...] (float32 values, as PaddleOCR's boxes are), "unclip_ratio",
     "distance": shapely area * ratio / length, "expanded": pyclipper's output polygons [[[x, y], ...], ...]}.

Needs (a scratch venv for now): pyclipper==1.3.0.post6 shapely==2.2.0 numpy==2.4.6
opencv-python-headless==4.10.0.84. Deterministic: every random draw comes from one seeded generator.

    python scripts/oracle/clipper_cases.py [out.json]
"""

import json
import math
import os
import sys

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "clipper_cases.json")
RATIOS = [1.5, 2.0, 2.5, 3.0, 5.0, 10.0]


def unclip(box, ratio):
    """PaddleOCR's DBPostProcess.unclip, returning the distance too."""
    poly = Polygon(box)
    distance = poly.area * ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return distance, offset.Execute(distance)


def rect(rng, cx, cy, w, h, angle):
    """Corners of a rotated rectangle in float32, as cv2.boxPoints gives them."""
    return cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float32)


def star(rng, n, cx, cy, r0, r1):
    """A star-shaped (usually non-convex) polygon with integer vertices."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = rng.uniform(r0, r1, n)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    return np.round(pts).astype(np.float32)


def blob_poly(rng):
    """PaddleOCR's poly-mode input: approxPolyDP of the contour of a random blob."""
    img = np.zeros((120, 160), np.uint8)
    for _ in range(rng.integers(2, 5)):
        c = (int(rng.integers(30, 130)), int(rng.integers(25, 95)))
        axes = (int(rng.integers(8, 40)), int(rng.integers(4, 20)))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    contours, _ = cv2.findContours(img, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    contour = max(contours, key=len)
    approx = cv2.approxPolyDP(contour, 0.002 * cv2.arcLength(contour, True), True)
    return approx.reshape(-1, 2).astype(np.float32)


def cases():
    rng = np.random.default_rng(20240611)
    out = []

    def add(name, box, ratio):
        box = np.asarray(box, np.float32)
        distance, expanded = unclip(box, ratio)
        out.append(
            {
                "name": name,
                "points": [[float(x), float(y)] for x, y in box],
                "unclip_ratio": ratio,
                "distance": distance,
                "expanded": expanded,
            }
        )

    # Rotated float32 rectangles of many sizes and angles, as get_mini_boxes returns them.
    for i in range(240):
        scale = [2.0, 6.0, 30.0, 200.0][i % 4]
        w, h = rng.uniform(0.5, 1.5) * scale, rng.uniform(0.3, 1.0) * scale
        box = rect(rng, rng.uniform(0, 800), rng.uniform(0, 600), w, h, float(rng.uniform(-90, 90)))
        add(f"rect{i}", box, RATIOS[i % len(RATIOS)])
    # Axis-aligned and 45-degree integer boxes, where ties in Clipper's rounding are likeliest.
    for i in range(40):
        x, y = int(rng.integers(0, 300)), int(rng.integers(0, 300))
        w, h = int(rng.integers(1, 60)), int(rng.integers(1, 30))
        box = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
        if i % 2:
            box = box[::-1]
        add(f"axis{i}", box, RATIOS[i % len(RATIOS)])
    for i in range(12):
        x, y, d = int(rng.integers(20, 300)), int(rng.integers(20, 300)), int(rng.integers(2, 40))
        add(f"diamond{i}", [[x, y - d], [x + d, y], [x, y + d], [x - d, y]], RATIOS[i % len(RATIOS)])
    # Tiny boxes: truncation can merge vertices or leave a sliver.
    for i in range(30):
        box = rect(rng, rng.uniform(1, 50), rng.uniform(1, 50), rng.uniform(0.2, 3.0), rng.uniform(0.2, 3.0),
                   float(rng.uniform(-90, 90)))
        add(f"tiny{i}", box, RATIOS[i % len(RATIOS)])
    # Negative coordinates (truncation toward zero, not floor).
    for i in range(10):
        box = rect(rng, rng.uniform(-5, 5), rng.uniform(-5, 5), rng.uniform(3, 12), rng.uniform(2, 8),
                   float(rng.uniform(-90, 90)))
        add(f"negative{i}", box, 2.0)
    # Non-convex polygons: the offset loops at reflex vertices must be unioned away.
    for i in range(60):
        n = int(rng.integers(5, 16))
        box = star(rng, n, rng.uniform(50, 400), rng.uniform(50, 400), rng.uniform(3, 20), rng.uniform(20, 80))
        add(f"star{i}", box, RATIOS[i % len(RATIOS)])
    for i in range(40):
        add(f"blob{i}", blob_poly(rng), [1.5, 2.0][i % 2])
    # Shapes whose offset closes a gap: an outer polygon and a hole, or pieces that merge.
    for i in range(12):
        x, y = int(rng.integers(20, 200)), int(rng.integers(20, 200))
        s, t, g = int(rng.integers(20, 60)), int(rng.integers(3, 8)), int(rng.integers(1, 6))
        # A square ring cut open on the right by a gap of 2g pixels.
        box = [[x, y], [x + s, y], [x + s, y + s // 2 - g], [x + s - t, y + s // 2 - g], [x + s - t, y + t],
               [x + t, y + t], [x + t, y + s - t], [x + s - t, y + s - t], [x + s - t, y + s // 2 + g],
               [x + s, y + s // 2 + g], [x + s, y + s], [x, y + s]]
        add(f"ring{i}", box, [1.5, 2.0, 3.0][i % 3])
    for i in range(20):
        teeth = int(rng.integers(3, 15))
        x, y = int(rng.integers(0, 100)), int(rng.integers(0, 100))
        w, h = int(rng.integers(2, 8)), int(rng.integers(10, 40))
        top = []
        for k in range(teeth):
            x0 = x + 2 * k * w
            top += [[x0, y], [x0 + w, y], [x0 + w, y + h], [x0 + 2 * w, y + h]]
        box = top + [[x + 2 * teeth * w, y + h + 10], [x, y + h + 10]]
        add(f"comb{i}", box, RATIOS[i % len(RATIOS)])
    # Self-intersecting input: vertices in random order.
    for i in range(60):
        n = int(rng.integers(4, 12))
        box = np.stack([rng.integers(0, 200, n), rng.integers(0, 200, n)], axis=1).astype(np.float32)
        add(f"tangle{i}", box, RATIOS[i % len(RATIOS)])
    # Degenerate input: collinear points (zero area, zero distance) and a bow-tie.
    add("collinear", [[0, 0], [5, 5], [10, 10], [3, 3]], 2.0)
    add("bowtie", [[0, 0], [20, 10], [20, 0], [0, 10]], 2.0)
    add("thin", [[0, 0], [40, 1], [40, 2], [0, 1]], 2.0)
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else OUT
    data = cases()
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: {len(data)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
