"""Reference outputs of the OpenCV primitives behind PaddleOCR's DB post-processing, for eval/src/det/.

Writes eval/tests/fixtures/opencv_cases.json with
    "contours": [{"width", "height", "mask": ["#..", ...], "contours": cv2.findContours(RETR_LIST, SIMPLE)}],
    "rects": [{"points": [[x, y], ...] (int), "rect": [[cx, cy], [w, h], angle], "box": cv2.boxPoints(rect)}],
    "fills": [{"width", "height", "points", "mask": rows}]  (cv2.fillPoly with value 1),
    "approx": [{"points", "factor", "arc_length", "approx": cv2.approxPolyDP(points, factor * arc_length, True)}].
Floats are float32 values written by repr, so they parse back to the same bits.

Needs (a scratch venv for now): numpy==2.4.6 opencv-python-headless==4.10.0.84. Deterministic (seeded).

    python scripts/oracle/opencv_cases.py [out.json]
"""

import json
import os
import sys

import cv2
import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "opencv_cases.json")


def rows(mask):
    return ["".join("#" if v else "." for v in r) for r in mask]


def blobs(rng, h, w):
    """A binary image of random ellipses and rectangles, holes and specks included."""
    img = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 6)):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(1, w // 2 + 2)), int(rng.integers(1, h // 2 + 2)))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(0, 2)), -1)
    noise = rng.random((h, w))
    img[noise < 0.03] = 1
    img[noise > 0.97] = 0
    return img


def contour_cases(rng):
    out = []
    for i in range(40):
        h, w = int(rng.integers(3, 30)), int(rng.integers(3, 40))
        img = blobs(rng, h, w) if i % 4 else (rng.random((h, w)) < 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(img * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        out.append({"width": w, "height": h, "mask": rows(img),
                    "contours": [c.reshape(-1, 2).tolist() for c in contours]})
    return out


def rect_cases(rng):
    out = []
    for i in range(300):
        kind = i % 3
        if kind == 0:
            n = int(rng.integers(1, 12))
            pts = rng.integers(-20, 60, (n, 2))
        elif kind == 1:
            # Points of a thin rotated strip: near-ties between calipers.
            n = int(rng.integers(3, 30))
            t = rng.uniform(0, 100, n)
            a = rng.uniform(0, np.pi)
            pts = np.stack([t * np.cos(a), t * np.sin(a)], 1) + rng.uniform(-2, 2, (n, 2))
            pts = np.round(pts).astype(np.int64)
        else:
            img = blobs(rng, 40, 60)
            contours, _ = cv2.findContours(img * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            pts = contours[int(rng.integers(0, len(contours)))].reshape(-1, 2) if contours else np.zeros((1, 2))
        pts = np.asarray(pts, np.int32)
        rect = cv2.minAreaRect(pts)
        box = cv2.boxPoints(rect)
        out.append({"points": pts.tolist(),
                    "rect": [[float(v) for v in rect[0]], [float(v) for v in rect[1]], float(rect[2])],
                    "box": [[float(x), float(y)] for x, y in box]})
    return out


def fill_cases(rng):
    out = []
    for i in range(150):
        h, w = int(rng.integers(2, 25)), int(rng.integers(2, 25))
        n = int(rng.integers(3, 9))
        # Mostly inside, sometimes beyond the image on any side.
        pts = rng.integers(-4, max(w, h) + 4, (n, 2)).astype(np.int32)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, pts.reshape(1, -1, 2), 1)
        out.append({"width": w, "height": h, "points": pts.tolist(), "mask": rows(mask)})
    return out


def approx_cases(rng):
    out = []
    for i in range(80):
        img = blobs(rng, int(rng.integers(20, 80)), int(rng.integers(20, 80)))
        contours, _ = cv2.findContours(img * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours[:3]:
            factor = [0.002, 0.01, 0.03, 0.1][i % 4]
            length = cv2.arcLength(c, True)
            approx = cv2.approxPolyDP(c, factor * length, True)
            out.append({"points": c.reshape(-1, 2).tolist(), "factor": factor, "arc_length": length,
                        "approx": approx.reshape(-1, 2).tolist()})
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else OUT
    rng = np.random.default_rng(7)
    data = {"contours": contour_cases(rng), "rects": rect_cases(rng), "fills": fill_cases(rng),
            "approx": approx_cases(rng)}
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
