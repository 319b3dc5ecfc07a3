"""PaddleOCR's evaluation rules, re-implemented from PaddleOCR's source with the libraries it uses.

Shared by the fixture generators (db_postprocess_cases.py, det_metric_cases.py) and the evaluation reference
(eval_reference.py). Written from the rules of, in PaddleOCR:
    ppocr/data/simple_dataset.py             SimpleDataSet: label lines, and the next line for a failed one
    ppocr/data/imaug/operators.py            DecodeImage, DetResizeForTest, NormalizeImage, ToCHWImage
    ppocr/data/imaug/rec_img_aug.py          RecResizeImg, ClsResizeImg (resize_norm_img)
    ppocr/data/imaug/label_ops.py            DetLabelEncode, CTCLabelEncode (+ MultiLabelEncode's limit),
                                             ClsLabelEncode
    ppocr/postprocess/db_postprocess.py      DBPostProcess (quad and poly)
    ppocr/postprocess/rec_postprocess.py     CTCLabelDecode
    ppocr/postprocess/cls_postprocess.py     ClsPostProcess
    ppocr/metrics/det_metric.py, eval_det_iou.py, rec_metric.py, cls_metric.py
No PaddleOCR code is imported or copied; numpy, OpenCV (cv2), pyclipper, shapely and rapidfuzz do the arithmetic
where PaddleOCR uses them. Runs in the oracle venv (scripts/oracle-requirements.txt).
"""

import io
import json
import math
import os
import re

import cv2
import numpy as np
import pyclipper
from rapidfuzz.distance import Levenshtein
from shapely.geometry import Polygon

# --- DBPostProcess (ppocr/postprocess/db_postprocess.py) -------------------------------------------------------

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
    """One image: pred is the [H, W] float32 probability map, shape DetResizeForTest's
    [src_h, src_w, ratio_h, ratio_w], o the options (thresh, box_thresh, max_candidates, unclip_ratio,
    use_dilation, score_mode, box_type). Boxes in source-image pixels (lists of [x, y]) and their scores."""
    segmentation = pred > o["thresh"]
    src_h, src_w = shape[0], shape[1]
    if o["use_dilation"]:
        mask = cv2.dilate(segmentation.astype(np.uint8), np.array([[1, 1], [1, 1]]))
    else:
        mask = segmentation
    run = quad_boxes if o["box_type"] == "quad" else poly_boxes
    return run(pred, mask, o, src_w, src_h)


DB_DEFAULTS = dict(thresh=0.3, box_thresh=0.7, max_candidates=1000, unclip_ratio=2.0, use_dilation=False,
                   score_mode="fast", box_type="quad")

# --- DetMetric (ppocr/metrics/det_metric.py, eval_det_iou.py) -------------------------------------------------

IOU, AREA_PRECISION = 0.5, 0.5


def valid(points):
    p = Polygon(points)
    return p.is_valid and p.is_simple


def evaluate_image(gt, det):
    """DetectionIoUEvaluator.evaluate_image: gt is [{"points", "ignore"}], det a list of polygons."""
    gt_pols = [g for g in gt if valid(g["points"])]
    dont_care = [i for i, g in enumerate(gt_pols) if g["ignore"]]
    det_pols, det_dont_care = [], []
    for d in det:
        if not valid(d):
            continue
        det_pols.append(d)
        for i in dont_care:
            inter = Polygon(gt_pols[i]["points"]).intersection(Polygon(d)).area
            det_area = Polygon(d).area
            if (0 if det_area == 0 else inter / det_area) > AREA_PRECISION:
                det_dont_care.append(len(det_pols) - 1)
                break
    matched = 0
    if gt_pols and det_pols:
        gt_taken, det_taken = [False] * len(gt_pols), [False] * len(det_pols)
        for g, gp in enumerate(gt_pols):
            for d, dp in enumerate(det_pols):
                if gt_taken[g] or det_taken[d] or g in dont_care or d in det_dont_care:
                    continue
                a, b = Polygon(dp), Polygon(gp["points"])
                if a.intersection(b).area / a.union(b).area > IOU:
                    gt_taken[g] = det_taken[d] = True
                    matched += 1
    return {"gt_care": len(gt_pols) - len(dont_care), "det_care": len(det_pols) - len(det_dont_care),
            "det_matched": matched}


def combine(counts):
    """DetectionIoUEvaluator.combine_results over every image's counts."""
    gt = sum(c["gt_care"] for c in counts)
    det = sum(c["det_care"] for c in counts)
    matched = sum(c["det_matched"] for c in counts)
    recall = 0 if gt == 0 else matched / gt
    precision = 0 if det == 0 else matched / det
    hmean = 0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    return {"precision": precision, "recall": recall, "hmean": hmean}


# --- SimpleDataSet (ppocr/data/simple_dataset.py) --------------------------------------------------------------


def read_label_lines(label_files):
    """Every line of every label file, as bytes, in order (`readlines()` of the file opened "rb")."""
    lines = []
    for path in label_files:
        with open(path, "rb") as f:
            lines.extend(f.readlines())
    return lines


def split_line(line, data_dir, delimiter="\t"):
    """(image path, label) of one line: decoded as UTF-8, "\\n" stripped from both ends (nothing else), split on
    the delimiter; fields 0 and 1 (an exception when there is no field 1, like PaddleOCR's IndexError)."""
    fields = line.decode("utf-8").strip("\n").split(delimiter)
    return os.path.join(data_dir, fields[0]), fields[1]


def substitute(load, n):
    """SimpleDataSet.__getitem__ in eval mode for every index: load(i) returns a sample or None (None also for
    any exception it raises); a failed line i gives line (i + 1) % n's sample instead, recursively. Returns
    [(line index used, sample)] of length n; raises when no line loads."""
    cache = {}

    def get(i):
        if i not in cache:
            try:
                cache[i] = load(i)
            except Exception:  # noqa: BLE001 (PaddleOCR catches everything here too)
                cache[i] = None
        return cache[i]

    out = []
    for i in range(n):
        j = i
        while get(j) is None:
            j = (j + 1) % n
            if j == i:
                raise RuntimeError("no line of the eval set loads")
        out.append((j, cache[j]))
    return out


# --- image transforms (operators.py, rec_img_aug.py) -----------------------------------------------------------


def decode_image(data, img_mode="BGR"):
    """DecodeImage: cv2.imdecode(IMREAD_COLOR) of the file's bytes (BGR, alpha dropped, gray expanded, EXIF
    orientation applied), flipped to RGB for img_mode RGB. None when OpenCV cannot decode it."""
    if len(data) == 0:
        raise ValueError("empty image file")
    if img_mode == "GRAY":
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        return None if img is None else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    return img[:, :, ::-1] if img_mode == "RGB" else img


def _round32(v):
    # Python's round(): halves go to the even multiple (48 -> 64, 80 -> 64).
    return max(int(round(v / 32) * 32), 32)


def det_resize_for_test(img, limit_side_len=736, limit_type="min", max_side_limit=4000, image_shape=None,
                        keep_ratio=False, resize_long=None):
    """DetResizeForTest: (resized image, shape = [src_h, src_w, ratio_h, ratio_w] as float64).
    Type 0 (limit_side_len/limit_type, PaddleOCR's default 736/min), type 1 (image_shape [h, w], keep_ratio),
    type 2 (resize_long)."""
    src_h, src_w = img.shape[0], img.shape[1]
    if src_h + src_w < 64:
        # image_padding: bottom/right zero padding to at least 32 x 32.
        padded = np.zeros((max(32, src_h), max(32, src_w), img.shape[2]), np.uint8)
        padded[:src_h, :src_w, :] = img
        img = padded
    h, w = img.shape[0], img.shape[1]
    if image_shape is not None:
        resize_h, resize_w = image_shape
        if keep_ratio:
            resize_w = math.ceil(w * resize_h / h / 32) * 32
        ratio_h, ratio_w = float(resize_h) / h, float(resize_w) / w
        img = cv2.resize(img, (int(resize_w), int(resize_h)))
    elif resize_long is not None:
        ratio = float(resize_long) / (h if h > w else w)
        resize_h, resize_w = int(h * ratio), int(w * ratio)
        resize_h = (resize_h + 127) // 128 * 128
        resize_w = (resize_w + 127) // 128 * 128
        img = cv2.resize(img, (int(resize_w), int(resize_h)))
        ratio_h, ratio_w = resize_h / float(h), resize_w / float(w)
    else:
        if limit_type == "max":
            ratio = (float(limit_side_len) / (h if h > w else w)) if max(h, w) > limit_side_len else 1.0
        elif limit_type == "min":
            ratio = (float(limit_side_len) / (h if h < w else w)) if min(h, w) < limit_side_len else 1.0
        elif limit_type == "resize_long":
            ratio = float(limit_side_len) / max(h, w)
        else:
            raise ValueError(f"limit_type {limit_type!r}")
        resize_h, resize_w = int(h * ratio), int(w * ratio)
        if max(resize_h, resize_w) > max_side_limit:
            ratio = float(max_side_limit) / max(resize_h, resize_w)
            resize_h, resize_w = int(resize_h * ratio), int(resize_w * ratio)
        resize_h, resize_w = _round32(resize_h), _round32(resize_w)
        img = cv2.resize(img, (resize_w, resize_h))
        ratio_h, ratio_w = resize_h / float(h), resize_w / float(w)
    return img, np.array([src_h, src_w, ratio_h, ratio_w])


DET_MEAN = [0.485, 0.456, 0.406]
DET_STD = [0.229, 0.224, 0.225]


def normalize_image(img, scale=1.0 / 255.0, mean=DET_MEAN, std=DET_STD):
    """NormalizeImage (order hwc), all in float32: (img * float32(scale) - mean) / std."""
    scale = np.float32(scale)
    mean = np.array(mean).reshape((1, 1, 3)).astype("float32")
    std = np.array(std).reshape((1, 1, 3)).astype("float32")
    return (img.astype("float32") * scale - mean) / std


def to_chw(img):
    return img.transpose((2, 0, 1))


def resize_norm_img(img, image_shape, padding=True):
    """rec_img_aug.resize_norm_img (RecResizeImg, ClsResizeImg): resize to height H keeping the aspect ratio,
    width ceil(H * w / h) capped at W (bilinear), x / 255 then (x - 0.5) / 0.5 in float32, CHW, right-padded
    with 0.0 (mid gray after normalisation) to width W. Returns (CHW float32, valid_ratio)."""
    c, h_out, w_out = image_shape
    h, w = img.shape[0], img.shape[1]
    if not padding:
        resized = cv2.resize(img, (w_out, h_out), interpolation=cv2.INTER_LINEAR)
        resized_w = w_out
    else:
        ratio = w / float(h)
        resized_w = w_out if math.ceil(h_out * ratio) > w_out else int(math.ceil(h_out * ratio))
        resized = cv2.resize(img, (resized_w, h_out))
    resized = resized.astype("float32")
    if c == 1:
        resized = (resized / 255)[np.newaxis, :]
    else:
        resized = resized.transpose((2, 0, 1)) / 255
    resized -= 0.5
    resized /= 0.5
    out = np.zeros((c, h_out, w_out), dtype=np.float32)
    out[:, :, 0:resized_w] = resized
    return out, min(1.0, float(resized_w / w_out))


# --- labels (label_ops.py) -------------------------------------------------------------------------------------


def det_label_encode(label):
    """DetLabelEncode: (polygons as float32 lists, padded to the largest point count by repeating the last point;
    ignore tags: transcription "*" or "###"). None for an empty list."""
    items = json.loads(label)
    if len(items) == 0:
        return None
    boxes = [item["points"] for item in items]
    tags = [item["transcription"] in ["*", "###"] for item in items]
    most = max(len(b) for b in boxes)
    boxes = [b + [b[-1]] * (most - len(b)) for b in boxes]
    polys = np.array(boxes, dtype=np.float32)
    return [{"points": p.tolist(), "ignore": bool(t)} for p, t in zip(polys, tags)]


DEFAULT_CHARACTERS = "0123456789abcdefghijklmnopqrstuvwxyz"


def read_dict_file(path):
    """A character_dict_path's entries: lines of the bytes, UTF-8, strip("\\n").strip("\\r\\n")."""
    with open(path, "rb") as f:
        data = f.read()
    return [line.decode("utf-8").strip("\n").strip("\r\n") for line in io.BytesIO(data).readlines()]


class CtcDictionary:
    """BaseRecLabelEncode/BaseRecLabelDecode with CTC's blank: entries (from a file or a list), " " appended with
    use_space_char (file or list only), "blank" in front. Without entries, PaddleOCR's default 0-9a-z with lower-
    casing. `lookup` keeps each entry's last index, as the dict comprehension does."""

    def __init__(self, entries=None, use_space_char=False, reverse=False):
        if entries is None:
            chars, self.lower = list(DEFAULT_CHARACTERS), True
        else:
            chars, self.lower = list(entries) + ([" "] if use_space_char else []), False
        self.character = ["blank"] + chars
        self.lookup = {c: i for i, c in enumerate(self.character)}
        self.reverse = reverse

    def encode(self, text, max_text_length, multi=False):
        """CTCLabelEncode.encode (+ MultiLabelEncode's SAR/NRTR limit when multi): class indices, or None."""
        if len(text) == 0 or len(text) > max_text_length:
            return None
        if self.lower:
            text = text.lower()
        out = [self.lookup[c] for c in text if c in self.lookup]
        if len(out) == 0:
            return None
        if multi and len(out) >= max_text_length - 1:
            return None
        return out

    def target(self, indices):
        """The metric's target: the encoded label decoded back (no duplicate merging, blank 0 dropped)."""
        return "".join(self.character[i] for i in indices if i != 0)


def pred_reverse(text):
    """BaseRecLabelDecode.pred_reverse (dictionaries whose path contains "arabic")."""
    parts, current = [], ""
    for c in text:
        if not re.search("[a-zA-Z0-9 :*./%+-]", c):
            if current != "":
                parts.append(current)
            parts.append(c)
            current = ""
        else:
            current += c
    if current != "":
        parts.append(current)
    return "".join(parts[::-1])


def ctc_decode(preds, dictionary):
    """CTCLabelDecode on [N, T, C] probabilities: per sample (text, confidence), repeats merged before blanks
    are dropped, the confidence np.mean of the kept float32 probabilities (0.0 when none is kept)."""
    idx, prob = preds.argmax(axis=2), preds.max(axis=2)
    out = []
    for b in range(idx.shape[0]):
        keep = np.ones(idx.shape[1], dtype=bool)
        keep[1:] = idx[b][1:] != idx[b][:-1]
        keep &= idx[b] != 0
        text = "".join(dictionary.character[i] for i in idx[b][keep])
        conf = prob[b][keep]
        if len(conf) == 0:
            conf = [0]
        if dictionary.reverse:
            text = pred_reverse(text)
        out.append((text, np.mean(conf).tolist()))
    return out


def cls_postprocess(preds, label_list):
    """ClsPostProcess on [N, classes]: (label_list[argmax], that probability)."""
    return [(label_list[i], preds[b, i]) for b, i in enumerate(preds.argmax(axis=1))]


# --- RecMetric, ClsMetric (rec_metric.py, cls_metric.py) -------------------------------------------------------

EPS = 1e-5


class RecMetric:
    """Batches go in as PaddleOCR's eval loop feeds them (each batch's distances summed locally first)."""

    def __init__(self, ignore_space=True, is_filter=False):
        self.ignore_space, self.is_filter = ignore_space, is_filter
        self.correct, self.all, self.dist = 0, 0, 0.0

    def _norm(self, text):
        if self.ignore_space:
            text = text.replace(" ", "")
        if self.is_filter:
            text = "".join(c for c in text if c in "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
            text = text.lower()
        return text

    def batch(self, preds, targets):
        correct, dist = 0, 0.0
        for pred, target in zip(preds, targets):
            pred, target = self._norm(pred), self._norm(target)
            dist += Levenshtein.normalized_distance(pred, target)
            correct += pred == target
        self.correct += correct
        self.all += len(preds)
        self.dist += dist

    def get(self):
        return {"acc": 1.0 * self.correct / (self.all + EPS), "norm_edit_dis": 1 - self.dist / (self.all + EPS)}


class ClsMetric:
    def __init__(self):
        self.correct, self.all = 0, 0

    def batch(self, preds, targets):
        self.correct += sum(p == t for p, t in zip(preds, targets))
        self.all += len(preds)

    def get(self):
        return {"acc": self.correct / (self.all + EPS)}
