#!/usr/bin/env python3
"""Two independent references for sensgrid's `eval` crate: a PP-OCR ONNX model evaluated on a PaddleOCR
SimpleDataSet (data_dir + tab-separated label file), with PaddleOCR's eval transforms, post-processing and metric.

    .oracle/bin/python scripts/oracle/eval_reference.py --kind det|rec|cls --model MODEL.onnx \\
        --data-dir DIR --label-file FILE [FILE ...] --out OUT.json [options, see --help] [--dump-outputs DIR]

Both references run the same preprocessing and the same onnxruntime outputs; they differ in the post-processing:
  paddle_rules  PaddleOCR's rules written anew (paddle_rules.py): DBPostProcess, CTCLabelDecode, ClsPostProcess;
  rapidocr      the classes shipped in rapidocr-onnxruntime==1.4.4 (the wheel that scripts/setup.sh caches,
                sha256-checked against scripts/model-wheels.txt), imported from the wheel itself, not copied:
                ch_ppocr_det/utils.py DBPostProcess, ch_ppocr_rec/utils.py CTCLabelDecode,
                ch_ppocr_cls/utils.py ClsPostProcess.
rapidocr has no metric: both use paddle_rules' DetMetric, RecMetric and ClsMetric.

Per line of the label files, as PaddleOCR's SimpleDataSet does in eval mode: the image is read as bytes and
decoded with cv2.imdecode(IMREAD_COLOR) (BGR); a line whose image is missing or undecodable, or whose label
encodes to nothing (det: an empty list; rec: empty, longer than --max-text-length or no dictionary character;
cls: not in --label-list), is replaced by the next line that loads (wrapping), so the set keeps its size.

det: DetLabelEncode, DetResizeForTest (default limit_side_len 736, limit_type min), NormalizeImage (scale 1/255,
     ImageNet mean/std, hwc), ToCHWImage; batch 1; DBPostProcess (PaddleOCR's defaults unless given); DetMetric.
rec: CTCLabelEncode (--label-encode multi adds MultiLabelEncode's SAR/NRTR limit), RecResizeImg (padding),
     batches of --batch-size; CTCLabelDecode; RecMetric (ignore_space, is_filter). Without --dict the
     dictionary comes from the model's ONNX metadata key `character` (str.splitlines(), as rapidocr reads it).
cls: ClsLabelEncode, ClsResizeImg; batches; ClsPostProcess (argmax over --label-list); ClsMetric.

OUT.json: {"paddle_rules": {metrics, "num_samples"}, "rapidocr": {...}, "agreement": {...},
           "substituted": [[line, line used], ...], "options": {...}, "dict": {...} (rec),
           "per_image": [...] (when at most --per-image-limit samples)}.
--dump-outputs DIR writes, per batch k, DIR/NNNNN.input.npy and DIR/NNNNN.output.npy (float32, the model's
first input and output) and DIR/index.json:
    {"config": {"kind", "db": DBPostProcess options | "dict": {"entries", "use_space_char", "reverse"},
                "ignore_space", "is_filter" | "label_list"},
     "model", "num_samples",
     "batches": [{"input", "output", "samples": [{"line", "used_line", "file" (the image evaluated),
                  det: "shape" [src_h, src_w, ratio_h, ratio_w], "gt" [{"points", "ignore"}] | rec/cls: "target",
                  "paddle_rules", "rapidocr": each side's prediction
                  (det: boxes; rec/cls: [text or label, score])}]}]}
so that post-processing and metric can be rerun without the model (bench/eval/baseline.py does) and compared
sample by sample.

Runs in the oracle venv (scripts/oracle-requirements.txt). Fails loudly on a broken setup.
"""

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import zipimport

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import paddle_rules as pr  # noqa: E402
from oracle_common import REPO, save_npy, write_json  # noqa: E402

CACHE_ROOT = os.environ.get("SENSGRID_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sensgrid")
RAPIDOCR_WHEEL = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"


# --- rapidocr's classes, from the wheel --------------------------------------------------------------------------


def wheel_sha256(name):
    with open(os.path.join(REPO, "scripts", "model-wheels.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] == name:
                return parts[2]
    raise SystemExit(f"{name} is not listed in scripts/model-wheels.txt")


_checked = set()  # wheels whose sha256 was checked


def rapidocr_module(sub, wheel=None):
    """rapidocr_onnxruntime/<sub>/utils.py imported straight from the wheel (zipimport), without the package's
    __init__ (which would import the whole OCR pipeline). The wheel's sha256 must match model-wheels.txt."""
    wheel = wheel or os.path.join(CACHE_ROOT, "wheels", RAPIDOCR_WHEEL)
    if not os.path.isfile(wheel):
        raise SystemExit(f"no {wheel}: run make setup (it downloads the rapidocr wheel)")
    if wheel not in _checked:
        with open(wheel, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != wheel_sha256(os.path.basename(wheel)):
            raise SystemExit(f"{wheel}: sha256 {digest} does not match scripts/model-wheels.txt")
        _checked.add(wheel)
    importer = zipimport.zipimporter(f"{wheel}/rapidocr_onnxruntime/{sub}/")
    spec = importer.find_spec("utils")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



# --- options -------------------------------------------------------------------------------------------------------


def ints(text):
    return [int(v) for v in text.split(",")]


def floats(text):
    return [float(v) for v in text.split(",")]


def boolean(text):
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kind", required=True, choices=["det", "rec", "cls"])
    p.add_argument("--model", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--label-file", required=True, nargs="+", help="one or more (label_file_list)")
    p.add_argument("--out", required=True, help="the JSON to write")
    p.add_argument("--dump-outputs", metavar="DIR", help="save each batch's model input and output as .npy")
    p.add_argument("--delimiter", default="\t")
    p.add_argument("--img-mode", default="BGR", choices=["BGR", "RGB", "GRAY"])
    p.add_argument("--batch-size", type=int, default=8, help="rec/cls batch size (det is always 1)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    p.add_argument("--max-samples", type=int, help="only the first N lines of the label files")
    p.add_argument("--per-image-limit", type=int, default=500, help="write per_image up to this many samples")
    p.add_argument("--rapidocr-wheel", help=f"default: $SENSGRID_CACHE/wheels/{RAPIDOCR_WHEEL}")
    g = p.add_argument_group("det")
    g.add_argument("--limit-side-len", type=int, default=736)
    g.add_argument("--limit-type", default="min", choices=["min", "max", "resize_long"])
    g.add_argument("--max-side-limit", type=int, default=4000)
    g.add_argument("--det-image-shape", type=ints, help="H,W: DetResizeForTest image_shape (resize type 1)")
    g.add_argument("--keep-ratio", action="store_true", help="with --det-image-shape")
    g.add_argument("--resize-long", type=int, help="DetResizeForTest resize_long (resize type 2)")
    g.add_argument("--scale", type=float, default=1.0 / 255.0)
    g.add_argument("--mean", type=floats, default=pr.DET_MEAN)
    g.add_argument("--std", type=floats, default=pr.DET_STD)
    for key, value in pr.DB_DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            g.add_argument(flag, action="store_true")
        elif key == "score_mode":
            g.add_argument(flag, default=value, choices=["fast", "slow"])
        elif key == "box_type":
            g.add_argument(flag, default=value, choices=["quad", "poly"])
        else:
            g.add_argument(flag, type=type(value), default=value)
    g = p.add_argument_group("rec")
    g.add_argument("--dict", help="character_dict_path (default: the model's `character` metadata)")
    g.add_argument("--use-space-char", action="store_true")
    g.add_argument("--rec-image-shape", type=ints, default=[3, 48, 320])
    g.add_argument("--max-text-length", type=int, default=25)
    g.add_argument("--label-encode", default="ctc", choices=["ctc", "multi"],
                   help="CTCLabelEncode, or MultiLabelEncode (PP-OCRv3/v4 configs)")
    g.add_argument("--ignore-space", type=boolean, default=True, help="RecMetric ignore_space (default true)")
    g.add_argument("--is-filter", type=boolean, default=False, help="RecMetric is_filter (default false)")
    g = p.add_argument_group("cls")
    g.add_argument("--cls-image-shape", type=ints, default=[3, 48, 192])
    g.add_argument("--label-list", default="0,180", help="comma-separated")
    return p.parse_args(argv)


def db_options(args):
    return {key: getattr(args, key) for key in pr.DB_DEFAULTS}


# --- the data set --------------------------------------------------------------------------------------------------


def lazy_substitute(load, n):
    """SimpleDataSet.__getitem__ in eval mode, line by line: yields (line, line used, sample). A failed line
    (load returns None or raises) takes the next one that loads, wrapping around. Only the latest sample is
    kept in memory."""
    ok, last = {}, (None, None)

    def get(i):
        nonlocal last
        if last[0] == i:
            return last[1]
        if ok.get(i) is False:
            return None
        try:
            sample = load(i)
        except Exception:  # noqa: BLE001 (PaddleOCR catches everything there too)
            sample = None
        ok[i] = sample is not None
        if sample is not None:
            last = (i, sample)
        return sample

    for i in range(n):
        j = i
        while (sample := get(j)) is None:
            j = (j + 1) % n
            if j == i:
                raise SystemExit("no line of the eval set loads (missing images, or labels that encode to nothing)")
        yield i, j, sample


def read_image(path, img_mode):
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    with open(path, "rb") as f:
        return pr.decode_image(f.read(), img_mode)


def rec_dictionary(args, session):
    """(entries, description): the dictionary file's entries, or the model's `character` metadata split with
    str.splitlines() as rapidocr reads it."""
    if args.dict:
        return pr.read_dict_file(args.dict), {"source": args.dict}
    meta = session.get_modelmeta().custom_metadata_map
    if "character" not in meta:
        raise SystemExit(f"{args.model}: no --dict and no 'character' key in the ONNX metadata")
    return meta["character"].splitlines(), {"source": "onnx metadata 'character'"}


def loader(args, lines, extra):
    """load(i) for the kind: a sample dict, or None when PaddleOCR's transforms give None."""
    label_list = args.label_list.split(",")

    def load(i):
        path, label = pr.split_line(lines[i], args.data_dir, args.delimiter)
        rel = os.path.relpath(path, args.data_dir)
        if args.kind == "det":
            img = read_image(path, args.img_mode)
            if img is None:
                return None
            gt = pr.det_label_encode(label)
            if gt is None:
                return None
            resized, shape = pr.det_resize_for_test(
                img, args.limit_side_len, args.limit_type, args.max_side_limit,
                image_shape=args.det_image_shape, keep_ratio=args.keep_ratio, resize_long=args.resize_long)
            x = pr.to_chw(pr.normalize_image(resized, args.scale, args.mean, args.std))
            return {"file": rel, "gt": gt, "shape": shape.tolist(), "input": np.ascontiguousarray(x, np.float32)}
        img = read_image(path, args.img_mode)
        if img is None:
            return None
        if args.kind == "rec":
            encoded = extra["dict"].encode(label, args.max_text_length, multi=args.label_encode == "multi")
            if encoded is None:
                return None
            x, _ = pr.resize_norm_img(img, args.rec_image_shape)
            return {"file": rel, "target": extra["dict"].target(encoded), "input": x}
        if label not in label_list:
            return None
        x, _ = pr.resize_norm_img(img, args.cls_image_shape)
        return {"file": rel, "target": label_list[label_list.index(label)], "input": x}

    return load


# --- post-processing and metric of both references, shared with bench/eval/baseline.py ----------------------------


class Evaluator:
    """Post-processing and metric of one side ("paddle_rules" or "rapidocr") over batches of model outputs.
    config is what index.json's "config" holds: kind, db options, dictionary entries, label_list, metric flags."""

    def __init__(self, side, config, wheel=None):
        self.side, self.kind = side, config["kind"]
        if self.kind == "det":
            self.db = dict(config["db"])
            if side == "rapidocr":
                module = rapidocr_module("ch_ppocr_det", wheel)
                b = {k: self.db[k] for k in ("thresh", "box_thresh", "max_candidates", "unclip_ratio",
                                             "score_mode", "use_dilation")}
                self.rapid = module.DBPostProcess(**b)  # no box_type: rapidocr has quad boxes only
            self.counts = []
        elif self.kind == "rec":
            d = config["dict"]
            if side == "paddle_rules":
                self.dictionary = pr.CtcDictionary(d["entries"], d["use_space_char"], d["reverse"])
            else:
                module = rapidocr_module("ch_ppocr_rec", wheel)
                entries = d["entries"] if d["entries"] is not None else list(pr.DEFAULT_CHARACTERS)
                # rapidocr appends " " and puts "blank" in front itself (and changes the list it is given).
                self.rapid = module.CTCLabelDecode(character=list(entries))
            self.metric = pr.RecMetric(config["ignore_space"], config["is_filter"])
        else:
            self.label_list = list(config["label_list"])
            if side == "rapidocr":
                self.rapid = rapidocr_module("ch_ppocr_cls", wheel).ClsPostProcess(self.label_list)
            self.metric = pr.ClsMetric()

    def batch(self, output, samples):
        """Post-processes one batch's output and adds it to the metric; returns the per-sample predictions
        (det: boxes as lists; rec: (text, confidence); cls: (label, probability))."""
        if self.kind == "det":
            preds = []
            for b, s in enumerate(samples):
                if self.side == "paddle_rules":
                    boxes, _ = pr.db_postprocess(output[b, 0], np.asarray(s["shape"]), self.db)
                else:
                    src = (int(s["shape"][0]), int(s["shape"][1]))
                    boxes, _ = self.rapid(output[b:b + 1], src)
                    boxes = boxes.tolist()
                self.counts.append(pr.evaluate_image(s["gt"], boxes))
                preds.append(boxes)
            return preds
        if self.kind == "rec":
            preds = (pr.ctc_decode(output, self.dictionary) if self.side == "paddle_rules"
                     else self.rapid(output))
        else:
            preds = (pr.cls_postprocess(output, self.label_list) if self.side == "paddle_rules"
                     else self.rapid(output))
        self.metric.batch([p[0] for p in preds], [s["target"] for s in samples])
        return preds

    def result(self):
        if self.kind == "det":
            return pr.combine(self.counts)
        return self.metric.get()


def evaluator_config(args, entries=None):
    config = {"kind": args.kind}
    if args.kind == "det":
        config["db"] = db_options(args)
    elif args.kind == "rec":
        config["dict"] = {"entries": entries, "use_space_char": args.use_space_char,
                          "reverse": bool(args.dict and "arabic" in args.dict)}
        config["ignore_space"], config["is_filter"] = args.ignore_space, args.is_filter
    else:
        config["label_list"] = args.label_list.split(",")
    return config


# --- the run -------------------------------------------------------------------------------------------------------


def jsonable(pred):
    """A prediction as JSON: det boxes as they are, (text or label, score) as [str, float]."""
    if isinstance(pred, tuple):
        return [pred[0], float(pred[1])]
    return pred


def batches(stream, size):
    chunk = []
    for item in stream:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def main(argv=None):
    args = parse_args(argv)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(args.model, sess_options=opts, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    lines = pr.read_label_lines(args.label_file)
    if args.max_samples is not None:
        lines = lines[: args.max_samples]
    if not lines:
        raise SystemExit(f"{args.label_file}: no lines")

    extra, dict_info, entries = {}, None, None
    if args.kind == "rec":
        entries, dict_info = rec_dictionary(args, session)
        extra["dict"] = pr.CtcDictionary(entries, args.use_space_char, bool(args.dict and "arabic" in args.dict))
        dict_info.update(entries=len(entries), use_space_char=args.use_space_char,
                         classes=len(extra["dict"].character))
    config = evaluator_config(args, entries)
    sides = {side: Evaluator(side, config, args.rapidocr_wheel) for side in ("paddle_rules", "rapidocr")}

    if args.dump_outputs:
        os.makedirs(args.dump_outputs, exist_ok=True)
    dump_batches, per_image, substituted = [], [], []
    agree = {"samples": 0, "same": 0}
    size = 1 if args.kind == "det" else args.batch_size
    stream = lazy_substitute(loader(args, lines, extra), len(lines))
    for k, chunk in enumerate(batches(stream, size)):
        samples = [s for _, _, s in chunk]
        x = np.stack([s["input"] for s in samples]).astype(np.float32)
        output = session.run(None, {input_name: x})[0]
        if args.kind == "rec" and output.shape[2] != len(extra["dict"].character):
            raise SystemExit(f"{args.model}: {output.shape[2]} classes, but the dictionary gives "
                             f"{len(extra['dict'].character)} (blank + {len(entries)} entries"
                             f"{' + space' if args.use_space_char else ''}): check --dict/--use-space-char")
        preds = {side: ev.batch(output, samples) for side, ev in sides.items()}
        for b, (i, j, s) in enumerate(chunk):
            if i != j:
                substituted.append([i, j])
            a, r = preds["paddle_rules"][b], preds["rapidocr"][b]
            same = a == r if args.kind == "det" else a[0] == r[0]
            agree["samples"] += 1
            agree["same"] += bool(same)
            entry = {"line": i, "file": s["file"]}
            if i != j:
                entry["used_line"] = j
            if args.kind == "det":
                entry.update(gt=len(s["gt"]), paddle_rules=sides["paddle_rules"].counts[-1],
                             rapidocr=sides["rapidocr"].counts[-1], boxes_a=len(a), boxes_b=len(r))
            else:
                entry.update(target=s["target"], paddle_rules=a[0], rapidocr=r[0])
            per_image.append(entry)
        if args.dump_outputs:
            save_npy(os.path.join(args.dump_outputs, f"{k:05d}.input.npy"), x)
            save_npy(os.path.join(args.dump_outputs, f"{k:05d}.output.npy"), output.astype(np.float32))
            dump_batches.append({
                "input": f"{k:05d}.input.npy", "output": f"{k:05d}.output.npy",
                "samples": [{key: v for key, v in s.items() if key != "input"}
                            | {"line": i, "used_line": j, "paddle_rules": jsonable(preds["paddle_rules"][b]),
                               "rapidocr": jsonable(preds["rapidocr"][b])}
                            for b, (i, j, s) in enumerate(chunk)]})

    n = len(lines)
    result = {
        "kind": args.kind,
        "model": os.path.relpath(os.path.abspath(args.model), REPO),
        "paddle_rules": sides["paddle_rules"].result() | {"num_samples": n},
        "rapidocr": sides["rapidocr"].result() | {"num_samples": n},
        "agreement": {"samples": agree["samples"], "identical_predictions": agree["same"]},
        "substituted": substituted,
        "options": {k: v for k, v in vars(args).items() if k not in ("out",)},
    }
    if args.kind == "det" and args.box_type == "poly":
        result["rapidocr"]["note"] = "rapidocr 1.4.4's DBPostProcess has quad boxes only: not comparable"
    if dict_info is not None:
        result["dict"] = dict_info
    if n <= args.per_image_limit:
        result["per_image"] = per_image
    if args.dump_outputs:
        with open(os.path.join(args.dump_outputs, "index.json"), "w", encoding="utf-8") as f:
            json.dump({"config": config, "model": result["model"], "num_samples": n, "batches": dump_batches},
                      f, ensure_ascii=False)
            f.write("\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, result, expand=2)
    short = {side: {k: round(v, 6) if isinstance(v, float) else v for k, v in result[side].items()}
             for side in ("paddle_rules", "rapidocr")}
    print(f"{args.out}: {args.kind} {result['model']}: paddle_rules {short['paddle_rules']}, "
          f"rapidocr {short['rapidocr']}, identical predictions {agree['same']}/{agree['samples']}, "
          f"{len(substituted)} lines substituted")


if __name__ == "__main__":
    main()
