#!/usr/bin/env python3
"""The Python side of bench/eval: its data, the post-processing + metric baseline, and the report.

Runs in the oracle venv (.oracle, scripts/oracle-requirements.txt) and uses scripts/oracle/eval_reference.py's
Evaluator, so the baseline is exactly reference B of the eval crate's checks: rapidocr-onnxruntime 1.4.4's
post-processing classes (imported from the cached wheel) with paddle_rules' metric.

    baseline.py data   --out DIR [--pages 24] [--seed 5]
    baseline.py time   --dump DIR [--side rapidocr|paddle_rules] [--runs 10] [--warmup 1]
    baseline.py report --baseline B.json [--paddle-rules P.json] [--sensgrid S.json] [--busy-before PCT]

data renders det pages (PIL, DejaVuSans; dark text lines of mixed sizes on light backgrounds, a "###" region on
every third page) with a PaddleOCR det label file DIR/label.txt.
time reads a dump written by `eval_reference.py --dump-outputs DIR` (index.json and every batch's output .npy,
all loaded before timing) and, per run, post-processes every batch and feeds the metric, then combines it:
ms_per_image is the run's wall time (time.perf_counter) over the number of samples. It prints one JSON line
with the median, min and max of ms_per_image over the timed runs and the metric the last run gave. OpenCV is held
to one thread (cv2.setNumThreads(1)).
report prints a table, then as its last line one JSON object: the figures, speedup = baseline ms / sensgrid ms,
"target": 5 and "meets_target" (speedup >= 5; false while there is no sensgrid figure). When the sensgrid JSON
carries metric keys, they are compared with the paddle_rules metric of the same dump (at most 0.005 apart).
"""

import argparse
import json
import os
import random
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "scripts", "oracle"))

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# sensgrid's post-processing + metric must be at least this many times faster than the baseline.
TARGET_SPEEDUP = 5
# The metrics sensgrid reports must be this close to paddle_rules' on the same outputs.
METRIC_TOLERANCE = 0.005
METRIC_KEYS = {"det": ("precision", "recall", "hmean"), "rec": ("acc", "norm_edit_dis"), "cls": ("acc",)}
WORDS = ["Invoice", "Total", "Grid", "sensor", "Batch", "Ready", "to", "ship", "Order", "Station", "North", "Level",
         "Open", "hours", "Exit", "Receipt", "Amount", "Thank", "you", "Pruned", "model", "Speed", "Quick", "fox",
         "Rust", "Delta", "River", "Omega", "Signal", "Cargo", "Train", "Alpha", "Metro", "Sample", "Window"]


def say(msg):
    print(f"bench/eval: {msg}", file=sys.stderr, flush=True)


def cmd_data(args):
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(args.seed)
    os.makedirs(os.path.join(args.out, "img"), exist_ok=True)
    sizes = [(720, 960), (960, 720), (600, 1000), (800, 800), (540, 960), (1000, 760)]
    lines = []
    for i in range(args.pages):
        h, w = sizes[i % len(sizes)]
        img = Image.new("RGB", (w, h), tuple(rng.randint(205, 250) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        ann, y = [], rng.randint(8, 30)
        while True:
            f = ImageFont.truetype(FONT, rng.randint(16, 42))
            words = [rng.choice(WORDS) if rng.random() < 0.7 else str(rng.randint(0, 99999))
                     for _ in range(rng.randint(1, 4))]
            text = " ".join(words)
            while draw.textlength(text, font=f) > 0.85 * w and " " in text:
                text = text.rsplit(" ", 1)[0]
            x = rng.randint(10, max(11, int(w - draw.textlength(text, font=f) - 10)))
            left, top, right, bottom = draw.textbbox((x, y), text, font=f)
            if bottom + 10 > h:
                break
            draw.text((x, y), text, fill=tuple(rng.randint(0, 70) for _ in range(3)), font=f)
            pts = [[left - 2, top - 2], [right + 2, top - 2], [right + 2, bottom + 2], [left - 2, bottom + 2]]
            ann.append({"transcription": text, "points": pts})
            y = bottom + rng.randint(10, 36)
        if ann and i % 3 == 2:
            ann[-1]["transcription"] = "###"
        name = f"img/page{i:03d}.png"
        img.save(os.path.join(args.out, name))
        lines.append(f"{name}\t{json.dumps(ann)}\n")
    with open(os.path.join(args.out, "label.txt"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    say(f"{args.pages} det pages -> {args.out}/label.txt")


def cmd_time(args):
    import cv2

    from eval_reference import Evaluator

    cv2.setNumThreads(1)
    with open(os.path.join(args.dump, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    batches = [(np.load(os.path.join(args.dump, b["output"])), b["samples"]) for b in index["batches"]]
    n = sum(len(s) for _, s in batches)
    if n == 0:
        raise SystemExit(f"bench/eval: {args.dump} holds no samples")
    config = index["config"]
    ms, result = [], None
    for r in range(args.warmup + args.runs):
        ev = Evaluator(args.side, config)  # module import and dictionary set-up stay out of the timing
        t0 = time.perf_counter()
        for output, samples in batches:
            ev.batch(output, samples)
        result = ev.result()
        elapsed = time.perf_counter() - t0
        if r >= args.warmup:
            ms.append(elapsed * 1000.0 / n)
    print(json.dumps({
        "side": args.side, "kind": config["kind"], "model": index.get("model"), "samples": n,
        "runs": args.runs, "warmup": args.warmup,
        "ms_per_image": round(statistics.median(ms), 4), "min_ms_per_image": round(min(ms), 4),
        "max_ms_per_image": round(max(ms), 4), "metric": result}))


def read_line(path, what):
    """The last JSON object line of path."""
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip().startswith("{")]
    if not lines:
        raise SystemExit(f"bench/eval: no JSON line from {what} in {path}")
    return json.loads(lines[-1])


def cmd_report(args):
    base = read_line(args.baseline, "the baseline")
    paddle = read_line(args.paddle_rules, "paddle_rules") if args.paddle_rules else None
    sg = None
    if args.sensgrid and os.path.exists(args.sensgrid) and os.path.getsize(args.sensgrid) > 0:
        sg = read_line(args.sensgrid, "sensgrid")
        if "ms_per_image" not in sg:
            raise SystemExit(f"bench/eval: {args.sensgrid} has no ms_per_image")
    b = float(base["ms_per_image"])
    s = float(sg["ms_per_image"]) if sg else None
    speedup = round(b / s, 3) if s else None
    meets = speedup is not None and speedup >= TARGET_SPEEDUP

    print(f"{base['kind']} {base['model']}: {base['samples']} samples, {base['runs']} timed runs after "
          f"{base['warmup']} warmup (post-processing + metric, ms per image)")
    print(f"{'implementation':<46}{'median':>10}{'min':>10}{'max':>10}")
    rows = [("rapidocr 1.4.4 post + paddle_rules metric", base)]
    if paddle:
        rows.append(("paddle_rules post + metric (info)", paddle))
    for name, r in rows:
        print(f"{name:<46}{r['ms_per_image']:>10.3f}{r['min_ms_per_image']:>10.3f}{r['max_ms_per_image']:>10.3f}")
    if sg:
        print(f"{'sensgrid':<46}{s:>10.3f}")
        print(f"speedup {speedup:.2f}x, target >= {TARGET_SPEEDUP}x: {'met' if meets else 'NOT met'}")
    else:
        print("sensgrid: no figure (no SENSGRID_CMD and the worker has no eval-bench subcommand yet)")

    metric_check = None
    reference = (paddle or {}).get("metric") or base.get("metric")
    if sg and reference and any(k in sg for k in METRIC_KEYS[base["kind"]]):
        diffs = {k: abs(float(sg[k]) - float(reference[k])) for k in METRIC_KEYS[base["kind"]] if k in sg}
        metric_check = {"max_abs_diff": max(diffs.values()), "within": max(diffs.values()) <= METRIC_TOLERANCE}
        print(f"sensgrid metric vs paddle_rules: max diff {metric_check['max_abs_diff']:.3g} "
              f"({'within' if metric_check['within'] else 'NOT within'} {METRIC_TOLERANCE})")
    print(json.dumps({
        "kind": base["kind"],
        "model": base["model"],
        "samples": base["samples"],
        "runs": base["runs"],
        "baseline_ms_per_image": b,
        "paddle_rules_ms_per_image": paddle["ms_per_image"] if paddle else None,
        "sensgrid_ms_per_image": s,
        "speedup": speedup,
        "target": TARGET_SPEEDUP,
        "meets_target": meets,
        "metric": reference,
        "sensgrid_metric_check": metric_check,
        "cpu_busy_before_pct": args.busy_before,
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("data")
    c.add_argument("--out", required=True)
    c.add_argument("--pages", type=int, default=24)
    c.add_argument("--seed", type=int, default=5)
    c = sub.add_parser("time")
    c.add_argument("--dump", required=True, help="an eval_reference.py --dump-outputs directory")
    c.add_argument("--side", default="rapidocr", choices=["rapidocr", "paddle_rules"])
    c.add_argument("--runs", type=int, default=10)
    c.add_argument("--warmup", type=int, default=1)
    c = sub.add_parser("report")
    c.add_argument("--baseline", required=True, help="`time --side rapidocr` output")
    c.add_argument("--paddle-rules", help="`time --side paddle_rules` output (shown for information)")
    c.add_argument("--sensgrid", help='the Rust command\'s output: a JSON line with "ms_per_image"')
    c.add_argument("--busy-before", type=int, help="percent of CPU time busy in the second before the run")
    args = p.parse_args()
    if getattr(args, "runs", 1) < 1:
        p.error("--runs must be at least 1")
    {"data": cmd_data, "time": cmd_time, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
