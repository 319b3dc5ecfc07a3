#!/usr/bin/env python3
"""Reference data for the Rust ONNX executor: every intermediate tensor of the PP-OCR models, from onnxruntime.

    .oracle/bin/python scripts/oracle/reference.py --out target/oracle/reference [--case NAME ...] [--force]

For each case (5 models x 2 input sizes) it writes DIR/<case>/:
    input.npy       float32 NCHW input, rendered with PIL + DejaVuSans and preprocessed like PaddleOCR
    t/NNNNN.npy     every non-Constant node output, in graph node order, with its own dtype
    manifest.json   {"model", "kind", "input": {"name", "file", "shape"},
                     "tensors": [{"name", "node", "op", "file", "dtype", "shape"}, ...],
                     "outputs": [graph output names], "checks": {...}}
onnxruntime runs on the CPU with 2 threads and graph optimizations disabled, so no intermediate is fused away.
The checks make sure the input makes the model work, and the script fails when one does not hold:
    det: max_prob, the max of the probability map, must be >= 0.5
    rec: argmax path per time step and its CTC-decoded text, which must share a character with the rendered text
    cls: labels, the argmax per batch item, must be [0, 1] (the line upright, then rotated 180 degrees)
A case whose manifest.json exists is skipped unless --force; manifest.json is written last.
Runs in the oracle venv made by scripts/setup.sh (scripts/oracle-requirements.txt).
"""

import argparse
import math
import os
import shutil
import sys

import numpy as np
import onnx
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import REPO, node_outputs, run_all, save_npy, write_json  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

DET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
DET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# name -> (model file, kind, (H, W), text lines for det / the text line for rec and cls)
CASES = {
    "v3det-320x320": ("ch_PP-OCRv3_det_infer.onnx", "det", (320, 320),
                      ["Invoice 2024", "Total 1234.56", "Grid sensor 42", "Batch 7 of 19", "Ready"]),
    "v3det-256x416": ("ch_PP-OCRv3_det_infer.onnx", "det", (256, 416),
                      ["Hello World 2025", "Order 90817", "Pruned model", "Speed 3.5x"]),
    "v4det-320x320": ("ch_PP-OCRv4_det_infer.onnx", "det", (320, 320),
                      ["Receipt 0042", "Date 2024 11 28", "Amount 77.10", "Thank you", "Line 5"]),
    "v4det-256x416": ("ch_PP-OCRv4_det_infer.onnx", "det", (256, 416),
                      ["Station 31 North", "Level 8", "Open 24 hours", "Exit 12"]),
    "v2rec-32x160": ("ch_PP-OCRv2_rec_infer.onnx", "rec", (32, 160), "Hello 2024"),
    "v2rec-32x320": ("ch_PP-OCRv2_rec_infer.onnx", "rec", (32, 320), "Sensor grid 31415"),
    "v4rec-48x160": ("ch_PP-OCRv4_rec_infer.onnx", "rec", (48, 160), "Rust 88"),
    "v4rec-48x320": ("ch_PP-OCRv4_rec_infer.onnx", "rec", (48, 320), "Quick fox 2025"),
    "cls-48x192": ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", (48, 192), "Model 42"),
    "cls-48x96": ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", (48, 96), "Text 9"),
}


def font(size):
    return ImageFont.truetype(FONT, size)


def render_det(h, w, lines):
    """A light page with dark text lines of decreasing and varying sizes (RGB)."""
    img = Image.new("RGB", (w, h), (236, 233, 226))
    draw = ImageDraw.Draw(img)
    sizes = [0.13, 0.09, 0.075, 0.11, 0.065]
    y = int(0.05 * h)
    for i, text in enumerate(lines):
        size = max(12, int(sizes[i % len(sizes)] * min(h, w) * 1.1))
        f = font(size)
        # Shrink until the line fits the width with a margin.
        while draw.textlength(text, font=f) > 0.9 * w and size > 10:
            size -= 2
            f = font(size)
        if y + size > h - 0.03 * h:
            break
        x = int(0.04 * w) + (i * 13) % max(1, int(0.1 * w))
        draw.text((x, y), text, fill=(25, 22, 30), font=f)
        y += int(size * 1.45)
    return img


def det_input(img):
    """PaddleOCR det eval preprocessing: BGR, /255, (x - mean) / std, CHW, batch 1."""
    bgr = np.asarray(img, dtype=np.float32)[:, :, ::-1] / 255.0
    x = (bgr - DET_MEAN) / DET_STD
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def render_line(text, size=40):
    """One dark text line on white, cropped to the text with a small margin (RGB)."""
    f = font(size)
    left, top, right, bottom = f.getbbox(text)
    mx, my = int(0.25 * size), int(0.2 * size)
    img = Image.new("RGB", (right - left + 2 * mx, bottom - top + 2 * my), (255, 255, 255))
    ImageDraw.Draw(img).text((mx - left, my - top), text, fill=(10, 10, 10), font=f)
    return img


def line_input(img, h, w):
    """PaddleOCR rec/cls preprocessing: resize to height h keeping aspect (at most w wide), BGR,
    (x / 255 - 0.5) / 0.5, right-padded with zeros to width w; CHW."""
    rw = min(w, int(math.ceil(h * img.width / img.height)))
    resized = img.resize((rw, h), Image.BILINEAR)
    bgr = np.asarray(resized, dtype=np.float32)[:, :, ::-1] / 255.0
    x = np.zeros((3, h, w), dtype=np.float32)
    x[:, :, :rw] = ((bgr - 0.5) / 0.5).transpose(2, 0, 1)
    return x


def rec_dictionary(model):
    """CTC classes: blank, the dictionary characters, then a space."""
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" in meta:
        chars = meta["character"].split("\n")
    else:
        with open(os.path.join(REPO, "models", "ppocr_keys_v1.txt"), encoding="utf-8") as f:
            chars = f.read().split("\n")
    if chars and chars[-1] == "":
        chars.pop()
    chars = [c.rstrip("\r") for c in chars]
    return ["<blank>"] + chars + [" "]


def ctc_decode(path, classes):
    out, prev = [], None
    for i in path:
        if i != prev and i != 0:
            out.append(classes[i])
        prev = i
    return "".join(out)


def build_input(kind, hw, text):
    h, w = hw
    if kind == "det":
        return det_input(render_det(h, w, text))
    line = render_line(text)
    if kind == "rec":
        return line_input(line, h, w)[None]
    return np.stack([line_input(line, h, w), line_input(line.rotate(180), h, w)])


def run_case(name, out_root, force):
    model_file, kind, hw, text = CASES[name]
    case_dir = os.path.join(out_root, name)
    manifest_path = os.path.join(case_dir, "manifest.json")
    if os.path.exists(manifest_path) and not force:
        print(f"{name}: manifest.json exists, skipped (--force redoes it)", file=sys.stderr)
        return
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(os.path.join(case_dir, "t"))

    model = onnx.load(os.path.join(REPO, "models", model_file))
    input_name = model.graph.input[0].name
    x = build_input(kind, hw, text)
    save_npy(os.path.join(case_dir, "input.npy"), x)

    values = run_all(model, {input_name: x})
    tensors = []
    for i, (tname, node) in enumerate(node_outputs(model.graph)):
        v = values[tname]
        rel = f"t/{i:05d}.npy"
        save_npy(os.path.join(case_dir, rel), v)
        tensors.append({"name": tname, "node": node.name, "op": node.op_type, "file": rel,
                        "dtype": str(v.dtype), "shape": list(v.shape)})
    outputs = [o.name for o in model.graph.output]
    y = values[outputs[0]]

    if kind == "det":
        max_prob = float(y.max())
        checks = {"max_prob": max_prob, "lines": text}
        ok, why = max_prob >= 0.5, f"max_prob {max_prob:.4f} < 0.5"
        summary = f"max_prob {max_prob:.4f}"
    elif kind == "rec":
        classes = rec_dictionary(model)
        if y.shape[-1] != len(classes):
            raise SystemExit(f"{name}: {y.shape[-1]} classes in the output, {len(classes)} in the dictionary")
        path = [int(i) for i in y[0].argmax(axis=-1)]
        decoded = ctc_decode(path, classes)
        checks = {"argmax": path, "decoded": decoded, "rendered": text}
        shared = set(decoded.replace(" ", "")) & set(text.replace(" ", ""))
        ok, why = bool(shared), f"decoded {decoded!r} shares no character with {text!r}"
        summary = f"decoded {decoded!r} (rendered {text!r})"
    else:
        labels = [int(i) for i in y.argmax(axis=-1)]
        checks = {"labels": labels, "probs": [[float(p) for p in row] for row in y], "rendered": text}
        ok, why = labels == [0, 1], f"labels {labels}, expected [0, 1]"
        summary = f"labels {labels}"
    if not ok:
        raise SystemExit(f"{name}: check failed: {why}")

    manifest = {
        "model": f"models/{model_file}",
        "kind": kind,
        "input": {"name": input_name, "file": "input.npy", "shape": list(x.shape)},
        "tensors": tensors,
        "outputs": outputs,
        "checks": checks,
    }
    write_json(manifest_path, manifest)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(case_dir) for f in fs)
    print(f"{name}: {len(tensors)} tensors, {size / 1e6:.1f} MB, {summary}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (e.g. target/oracle/reference)")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="only this case (repeatable)")
    ap.add_argument("--force", action="store_true", help="redo cases whose manifest.json exists")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.case or list(CASES):
        run_case(name, args.out, args.force)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"{args.out}: {total / 1e6:.1f} MB in all", file=sys.stderr)


if __name__ == "__main__":
    main()
