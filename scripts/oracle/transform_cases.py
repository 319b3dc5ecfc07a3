"""Reference results of PaddleOCR's eval transforms, for eval/src/transforms/.

Writes eval/tests/fixtures/transforms/:

    det_resize_shapes.json  DetResizeForTest's sizes and shape_list for many image sizes under every mode:
                            {"configs": [{"name", "args"}], "cases": [{"config", "h", "w", "resized": [h, w]
                            or null (cv2.resize would raise), "shape_list": [src_h, src_w, ratio_h, ratio_w]}]}
    pixel_cases.json        whole transform chains on pattern images (the `pattern` of resize_cases.py):
                            [{"name", "chain", "args", "src": [h, w], "seed", "shape": [c, h, w],
                              "offset" (into pixels.bin, float32 little-endian) or null, "fnv1a64"}]
    pixels.bin              the float32 outputs of the small cases

The size arithmetic is a transcription of DetResizeForTest's methods (ppocr/data/imaug/operators.py) without
the pixels; the pixel chains follow PaddleOCR's code with OpenCV and numpy: DetResizeForTest + NormalizeImage
(scale '1./255.', ImageNet mean and std, order hwc) + ToCHWImage, RecResizeImg (resize_norm_img with and
without padding, resize_norm_img_chinese for eval_mode) and ClsResizeImg. Large outputs are checked by an
FNV-1a 64 hash of their bytes instead of being stored.

Needs (a scratch venv outside the repo): numpy==2.4.6 opencv-python-headless==4.10.0.84. Deterministic (seeded).

    python scripts/oracle/transform_cases.py [out_dir]
"""

import json
import math
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from resize_cases import pattern  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "transforms")


class DetResizeSizes:
    """DetResizeForTest's __init__ and size arithmetic, the pixels left out."""

    def __init__(self, **kwargs):
        self.resize_type = 0
        self.keep_ratio = False
        self.max_side_limit = kwargs.get("max_side_limit", 4000)
        if "image_shape" in kwargs:
            self.image_shape = kwargs["image_shape"]
            self.resize_type = 1
            if "keep_ratio" in kwargs:
                self.keep_ratio = kwargs["keep_ratio"]
        elif "limit_side_len" in kwargs:
            self.limit_side_len = kwargs["limit_side_len"]
            self.limit_type = kwargs.get("limit_type", "min")
        elif "resize_long" in kwargs:
            self.resize_type = 2
            self.resize_long = kwargs.get("resize_long", 960)
        else:
            self.limit_side_len = 736
            self.limit_type = "min"

    def __call__(self, src_h, src_w):
        h, w = src_h, src_w
        if sum([src_h, src_w]) < 64:
            h, w = max(32, h), max(32, w)
        if self.resize_type == 0:
            rh, rw = self.type0(h, w)
        elif self.resize_type == 2:
            rh, rw = self.type2(h, w)
        else:
            rh, rw = self.type1(h, w)
        if int(rh) <= 0 or int(rw) <= 0:
            return None, None
        return [int(rh), int(rw)], [src_h, src_w, rh / float(h), rw / float(w)]

    def type1(self, ori_h, ori_w):
        resize_h, resize_w = self.image_shape
        if self.keep_ratio is True:
            resize_w = ori_w * resize_h / ori_h
            N = math.ceil(resize_w / 32)
            resize_w = N * 32
        return resize_h, resize_w

    def type0(self, h, w):
        limit_side_len = self.limit_side_len
        if self.limit_type == "max":
            if max(h, w) > limit_side_len:
                ratio = float(limit_side_len) / h if h > w else float(limit_side_len) / w
            else:
                ratio = 1.0
        elif self.limit_type == "min":
            if min(h, w) < limit_side_len:
                ratio = float(limit_side_len) / h if h < w else float(limit_side_len) / w
            else:
                ratio = 1.0
        elif self.limit_type == "resize_long":
            ratio = float(limit_side_len) / max(h, w)
        resize_h = int(h * ratio)
        resize_w = int(w * ratio)
        if max(resize_h, resize_w) > self.max_side_limit:
            ratio = float(self.max_side_limit) / max(resize_h, resize_w)
            resize_h, resize_w = int(resize_h * ratio), int(resize_w * ratio)
        resize_h = max(int(round(resize_h / 32) * 32), 32)
        resize_w = max(int(round(resize_w / 32) * 32), 32)
        return resize_h, resize_w

    def type2(self, h, w):
        ratio = float(self.resize_long) / h if h > w else float(self.resize_long) / w
        resize_h = int(h * ratio)
        resize_w = int(w * ratio)
        max_stride = 128
        resize_h = (resize_h + max_stride - 1) // max_stride * max_stride
        resize_w = (resize_w + max_stride - 1) // max_stride * max_stride
        return resize_h, resize_w


def det_resize(img, sizes):
    """DetResizeForTest on pixels: pad tiny images, cv2.resize."""
    src_h, src_w, _ = img.shape
    if sum([src_h, src_w]) < 64:
        pad = np.zeros((max(32, src_h), max(32, src_w), img.shape[2]), np.uint8)
        pad[:src_h, :src_w, :] = img
        img = pad
    (rh, rw), shape_list = sizes(src_h, src_w)
    return cv2.resize(img, (rw, rh)), shape_list


def normalize_hwc(img, scale="1./255.", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    scale = np.float32(eval(scale))
    mean = np.array(mean).reshape((1, 1, 3)).astype("float32")
    std = np.array(std).reshape((1, 1, 3)).astype("float32")
    return (img.astype("float32") * scale - mean) / std


def resize_norm_img(img, image_shape, padding=True):
    imgC, imgH, imgW = image_shape
    h = img.shape[0]
    w = img.shape[1]
    if not padding:
        resized_image = cv2.resize(img, (imgW, imgH), interpolation=cv2.INTER_LINEAR)
        resized_w = imgW
    else:
        ratio = w / float(h)
        if math.ceil(imgH * ratio) > imgW:
            resized_w = imgW
        else:
            resized_w = int(math.ceil(imgH * ratio))
        resized_image = cv2.resize(img, (resized_w, imgH))
    resized_image = resized_image.astype("float32")
    resized_image = resized_image.transpose((2, 0, 1)) / 255
    resized_image -= 0.5
    resized_image /= 0.5
    padding_im = np.zeros((imgC, imgH, imgW), dtype=np.float32)
    padding_im[:, :, 0:resized_w] = resized_image
    return padding_im


def resize_norm_img_chinese(img, image_shape):
    imgC, imgH, imgW = image_shape
    max_wh_ratio = imgW * 1.0 / imgH
    h, w = img.shape[0], img.shape[1]
    ratio = w * 1.0 / h
    max_wh_ratio = max(max_wh_ratio, ratio)
    imgW = int(imgH * max_wh_ratio)
    if math.ceil(imgH * ratio) > imgW:
        resized_w = imgW
    else:
        resized_w = int(math.ceil(imgH * ratio))
    resized_image = cv2.resize(img, (resized_w, imgH))
    resized_image = resized_image.astype("float32")
    resized_image = resized_image.transpose((2, 0, 1)) / 255
    resized_image -= 0.5
    resized_image /= 0.5
    padding_im = np.zeros((imgC, imgH, imgW), dtype=np.float32)
    padding_im[:, :, 0:resized_w] = resized_image
    return padding_im


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240613)

    configs = [
        {"name": "default (min 736)", "args": {}},
        {"name": "max 960", "args": {"limit_side_len": 960, "limit_type": "max"}},
        {"name": "min 736", "args": {"limit_side_len": 736, "limit_type": "min"}},
        {"name": "max 1280", "args": {"limit_side_len": 1280, "limit_type": "max"}},
        {"name": "min 64", "args": {"limit_side_len": 64, "limit_type": "min"}},
        {"name": "limit resize_long 960", "args": {"limit_side_len": 960, "limit_type": "resize_long"}},
        {"name": "min 736, max_side_limit 1000", "args": {"limit_side_len": 736, "limit_type": "min", "max_side_limit": 1000}},
        {"name": "image_shape 640x640", "args": {"image_shape": [640, 640]}},
        {"name": "image_shape 736x1280", "args": {"image_shape": [736, 1280], "keep_ratio": False}},
        {"name": "image_shape 640 keep_ratio", "args": {"image_shape": [640, 640], "keep_ratio": True}},
        {"name": "resize_long 960", "args": {"resize_long": 960}},
        {"name": "resize_long 512", "args": {"resize_long": 512}},
    ]
    sizes = [(1, 1), (10, 20), (31, 32), (32, 31), (20, 43), (48, 80), (16, 16), (32, 32), (33, 33),
             (720, 1280), (1280, 720), (1080, 1920), (1, 4000), (4000, 1), (3, 2000), (2000, 3),
             (6000, 8000), (736, 736), (735, 737), (112, 48), (80, 16), (176, 208), (5000, 5000), (63, 1)]
    for _ in range(50):
        sizes.append((int(rng.integers(1, 5000)), int(rng.integers(1, 5000))))
    for _ in range(20):
        sizes.append((int(rng.integers(1, 200)), int(rng.integers(1, 200))))
    cases = []
    for ci, cfg in enumerate(configs):
        fn = DetResizeSizes(**cfg["args"])
        for h, w in sizes:
            resized, shape_list = fn(h, w)
            cases.append({"config": ci, "h": h, "w": w, "resized": resized, "shape_list": shape_list})
    with open(os.path.join(out, "det_resize_shapes.json"), "w") as f:
        json.dump({"configs": configs, "cases": cases}, f)
        f.write("\n")

    blob = bytearray()
    pixel_cases = []

    def emit(name, chain, args, src, seed, result, store):
        result = np.ascontiguousarray(result, dtype=np.float32)
        data = result.astype("<f4").tobytes()
        entry = {"name": name, "chain": chain, "args": args, "src": list(src), "seed": seed,
                 "shape": list(result.shape), "offset": None, "fnv1a64": fnv1a64(data)}
        if store:
            entry["offset"] = len(blob)
            blob.extend(data)
        pixel_cases.append(entry)

    seed = 1000
    for (h, w), args, store in [
        ((45, 70), {"limit_side_len": 64, "limit_type": "max"}, True),
        ((20, 30), {"limit_side_len": 32, "limit_type": "max"}, True),
        ((37, 61), {"image_shape": [32, 64], "keep_ratio": True}, True),
        ((300, 410), {"limit_side_len": 736, "limit_type": "min"}, False),
        ((333, 500), {"resize_long": 256}, False),
    ]:
        seed += 1
        img = pattern("noise", seed, h, w, 3)
        resized, shape_list = det_resize(img, DetResizeSizes(**args))
        chw = normalize_hwc(resized).transpose((2, 0, 1))
        emit("det", "DetResizeForTest+NormalizeImage+ToCHWImage", args, (h, w), seed, chw, store)
        pixel_cases[-1]["shape_list"] = shape_list

    for (h, w), shape, mode, store in [
        ((20, 50), [3, 16, 64], "padding", True),
        ((20, 200), [3, 16, 64], "padding", True),
        ((33, 31), [3, 16, 64], "no_padding", True),
        ((12, 70), [3, 16, 64], "eval_mode", True),
        ((12, 30), [3, 16, 64], "eval_mode", True),
        ((31, 157), [3, 32, 100], "padding", True),
        ((29, 93), [3, 48, 320], "padding", False),
        ((40, 900), [3, 48, 320], "eval_mode", False),
        ((60, 200), [3, 48, 320], "no_padding", False),
    ]:
        seed += 1
        img = pattern("ramp" if seed % 2 else "noise", seed, h, w, 3)
        if mode == "eval_mode":
            res = resize_norm_img_chinese(img, shape)
        else:
            res = resize_norm_img(img, shape, padding=(mode == "padding"))
        emit("rec", "RecResizeImg", {"image_shape": shape, "mode": mode, "kind": "ramp" if seed % 2 else "noise"},
             (h, w), seed, res, store)

    for (h, w), shape, store in [((30, 44), [3, 12, 48], True), ((48, 300), [3, 48, 192], False), ((50, 60), [3, 48, 192], False)]:
        seed += 1
        img = pattern("noise", seed, h, w, 3)
        emit("cls", "ClsResizeImg", {"image_shape": shape}, (h, w), seed, resize_norm_img(img, shape), store)

    with open(os.path.join(out, "pixels.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(out, "pixel_cases.json"), "w") as f:
        json.dump(pixel_cases, f, indent=1)
        f.write("\n")
    print(f"{len(cases)} size cases, {len(pixel_cases)} pixel cases ({len(blob)} bytes) in {out}")


if __name__ == "__main__":
    main()
