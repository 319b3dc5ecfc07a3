#!/usr/bin/env python3
"""The Python side of bench/engine: its input, the onnxruntime and PyTorch eager baselines, and the report.

Runs in the bench venv that bench/engine/run makes (bench/engine/requirements.txt on top of the torch venv).

    baselines.py input        --out IN.npy [--size 640]
    baselines.py onnxruntime  --model M.onnx --input IN.npy --runs N --warmup W --threads T --save-output OUT.npy
    baselines.py torch-eager  --model M.onnx --input IN.npy --runs N --warmup W --threads T --reference OUT.npy
    baselines.py report       --model M.onnx --input IN.npy --sensgrid A.json --onnxruntime B.json
                              --torch-eager C.json [--busy-before PCT]

Each engine command prints one JSON line with the median, min and max ms of its timed runs; every run is the
whole forward of one image, timed alone with time.perf_counter after the warmup runs.
onnxruntime: CPU, intra_op_num_threads T, inter_op_num_threads 1, sequential execution, default graph
optimizations; it saves its output so that torch-eager can check it runs the same network, and it fails when the
probability map's max is under 0.5 (the input would not exercise the model).
torch-eager: onnx2torch.convert of the same ONNX file, model.eval(), torch.set_num_threads(T), every run inside
torch.inference_mode(); it fails when its output differs from onnxruntime's by more than MAX_ABS_DIFF.
report prints a table, then as its last line one JSON object with the figures and the ratios.
"""

import argparse
import importlib.metadata
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "scripts", "oracle"))

# The onnx2torch output may differ from onnxruntime's by at most this much (the det output is a probability map
# in [0, 1]; float32 reorderings of the same convolutions stay around 1e-5).
MAX_ABS_DIFF = 1e-3
# sensgrid_vs_torch_eager must not exceed this (issue 3).
TARGET_RATIO = 1.1
# Issue 16's target: at most this times onnxruntime's latency.
TARGET_RATIO_ONNXRUNTIME = 1.3
DET_LINES = ["Invoice 2024 11 28", "Total 1234.56", "Grid sensor 42", "Batch 7 of 19", "Ready to ship"]


def say(msg):
    print(f"bench/engine: {msg}", file=sys.stderr, flush=True)


def timings(step, runs, warmup):
    """Runs step() warmup times untimed, then runs times; returns (last output, [ms per run])."""
    out = None
    for _ in range(warmup):
        out = step()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = step()
        ms.append((time.perf_counter() - t0) * 1000.0)
    return out, ms


def summary(engine, args, ms, **extra):
    return {
        "engine": engine,
        "model": os.path.relpath(os.path.abspath(args.model), REPO),
        "threads": args.threads,
        "runs": len(ms),
        "warmup": args.warmup,
        "median_ms": round(statistics.median(ms), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
        **extra,
    }


def cmd_rounds(args):
    """One engine's rounds as one line: the median of the round medians, the extremes, the runs summed."""
    rounds = [read_line(path, path) for path in args.files]
    merged = dict(rounds[0])
    merged.update({
        "runs": sum(r["runs"] for r in rounds),
        "rounds": len(rounds),
        "round_medians_ms": [r["median_ms"] for r in rounds],
        "median_ms": round(statistics.median(float(r["median_ms"]) for r in rounds), 3),
        "min_ms": min(float(r["min_ms"]) for r in rounds),
        "max_ms": max(float(r["max_ms"]) for r in rounds),
    })
    print(json.dumps(merged))


def cmd_input(args):
    from reference import det_input, render_det  # scripts/oracle/reference.py

    x = det_input(render_det(args.size, args.size, DET_LINES))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".part.npy"
    np.save(tmp, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
    os.replace(tmp, args.out)
    say(f"input {list(x.shape)} float32 (rendered text, det preprocessing) -> {args.out}")


def cmd_onnxruntime(args):
    import onnxruntime as ort

    x = np.load(args.input)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    # graph_optimization_level stays at its default (ORT_ENABLE_ALL).
    sess = ort.InferenceSession(args.model, sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = {sess.get_inputs()[0].name: x}
    out, ms = timings(lambda: sess.run(None, feeds)[0], args.runs, args.warmup)
    max_prob = float(out.max())
    if max_prob < 0.5:
        raise SystemExit(f"bench/engine: onnxruntime's max probability is {max_prob:.4f} < 0.5: the input finds no text")
    np.save(args.save_output, out, allow_pickle=False)
    print(json.dumps(summary("onnxruntime", args, ms, version=ort.__version__,
                             graph_optimization_level=str(opts.graph_optimization_level).split(".")[-1],
                             max_prob=round(max_prob, 6))))


def constants_as_initializers(model):
    """The same network with every tensor-valued Constant node turned into a graph initializer.

    The PP-OCR exports keep their weights in Constant nodes, while onnx2torch looks up a Conv's weights, a
    Reshape's shape, a Clip's bounds, ... among the initializers only."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    nodes = []
    for node in graph.node:
        attrs = list(node.attribute)
        if node.op_type == "Constant" and len(attrs) == 1 and attrs[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attrs[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return out


def cmd_torch_eager(args):
    import onnx
    import onnx2torch
    import torch

    torch.set_num_threads(args.threads)
    model = onnx2torch.convert(constants_as_initializers(onnx.load(args.model)))
    model.eval()
    x = torch.from_numpy(np.load(args.input))

    def step():
        y = model(x)
        return y[0] if isinstance(y, (tuple, list)) else y

    with torch.inference_mode():
        out, ms = timings(step, args.runs, args.warmup)
    out = out.numpy()
    ref = np.load(args.reference)
    if out.shape != ref.shape:
        raise SystemExit(f"bench/engine: onnx2torch output shape {list(out.shape)}, onnxruntime {list(ref.shape)}")
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    max_diff, mean_diff = float(diff.max()), float(diff.mean())
    if not max_diff <= MAX_ABS_DIFF:
        raise SystemExit(f"bench/engine: onnx2torch's output differs from onnxruntime's by up to {max_diff:.3g} "
                         f"(> {MAX_ABS_DIFF:g}): the eager baseline is not the same network")
    print(json.dumps(summary("torch_eager", args, ms, version=torch.__version__,
                             onnx2torch=importlib.metadata.version("onnx2torch"),
                             torch_threads=torch.get_num_threads(),
                             max_abs_diff_vs_onnxruntime=max_diff, mean_abs_diff_vs_onnxruntime=mean_diff)))


def read_line(path, what):
    """The last JSON object line of path."""
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip().startswith("{")]
    if not lines:
        raise SystemExit(f"bench/engine: no JSON line from {what} in {path}")
    return json.loads(lines[-1])


def cmd_report(args):
    shape = list(np.load(args.input, mmap_mode="r").shape)
    sg = read_line(args.sensgrid, "the sensgrid worker")
    rt = read_line(args.onnxruntime, "onnxruntime")
    te = read_line(args.torch_eager, "torch eager")
    runs = {sg.get("runs"), rt["runs"], te["runs"]}
    threads = {sg.get("threads"), rt["threads"], te["threads"]}
    if len(runs) != 1 or len(threads) != 1:
        raise SystemExit(f"bench/engine: the engines disagree on runs {sorted(map(str, runs))} "
                         f"or threads {sorted(map(str, threads))}")
    s, o, t = round(float(sg["median_ms"]), 3), rt["median_ms"], te["median_ms"]
    vs_torch, vs_ort = round(s / t, 3), round(s / o, 3)
    model = os.path.relpath(os.path.abspath(args.model), REPO)

    rows = [("sensgrid (worker bench)", sg), ("onnxruntime " + rt["version"], rt),
            ("torch eager " + te["version"].split("+")[0], te)]
    print(f"model {model}, input {'x'.join(map(str, shape))} float32, {rt['threads']} threads, "
          f"{rt['runs']} timed runs after {rt['warmup']} warmup (ms per image)")
    print(f"{'engine':<26}{'median':>10}{'min':>10}{'max':>10}{'vs torch eager':>16}")
    for name, r in rows:
        ratio = float(r["median_ms"]) / t
        print(f"{name:<26}{float(r['median_ms']):>10.1f}{float(r['min_ms']):>10.1f}{float(r['max_ms']):>10.1f}"
              f"{ratio:>15.3f}x")
    print(f"onnx2torch vs onnxruntime output: max abs diff {te['max_abs_diff_vs_onnxruntime']:.3g}, "
          f"mean {te['mean_abs_diff_vs_onnxruntime']:.3g}")
    meets = vs_torch <= TARGET_RATIO
    print(f"target sensgrid <= {TARGET_RATIO}x torch eager: {vs_torch:.3f}x, {'met' if meets else 'NOT met'}")
    meets_ort = vs_ort <= TARGET_RATIO_ONNXRUNTIME
    print(f"target sensgrid <= {TARGET_RATIO_ONNXRUNTIME}x onnxruntime: {vs_ort:.3f}x, "
          f"{'met' if meets_ort else 'NOT met'}")
    print("round medians (ms): " + "; ".join(f"{name.split(' ')[0]} {r.get('round_medians_ms', [r['median_ms']])}"
                                             for name, r in rows))
    print(json.dumps({
        "model": model,
        "input_shape": shape,
        "threads": rt["threads"],
        "runs": rt["runs"],
        "sensgrid_ms": s,
        "onnxruntime_ms": o,
        "torch_eager_ms": t,
        "sensgrid_vs_torch_eager": vs_torch,
        "sensgrid_vs_onnxruntime": vs_ort,
        "target": f"sensgrid_vs_torch_eager <= {TARGET_RATIO}",
        "meets_target": meets,
        "target_onnxruntime": f"sensgrid_vs_onnxruntime <= {TARGET_RATIO_ONNXRUNTIME}",
        "meets_target_onnxruntime": meets_ort,
        "rounds": sg.get("rounds", 1),
        "onnx2torch_max_abs_diff": te["max_abs_diff_vs_onnxruntime"],
        "cpu_busy_before_pct": args.busy_before,
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("input")
    c.add_argument("--out", required=True)
    c.add_argument("--size", type=int, default=640)
    for name in ("onnxruntime", "torch-eager"):
        c = sub.add_parser(name)
        c.add_argument("--model", required=True)
        c.add_argument("--input", required=True)
        c.add_argument("--runs", type=int, default=20)
        c.add_argument("--warmup", type=int, default=3)
        c.add_argument("--threads", type=int, default=2)
        if name == "onnxruntime":
            c.add_argument("--save-output", required=True)
        else:
            c.add_argument("--reference", required=True)
    c = sub.add_parser("rounds")
    c.add_argument("files", nargs="+")
    c = sub.add_parser("report")
    for flag in ("--model", "--input", "--sensgrid", "--onnxruntime", "--torch-eager"):
        c.add_argument(flag, required=True)
    c.add_argument("--busy-before", type=int, help="percent of CPU time busy in the second before the run")
    args = p.parse_args()
    if getattr(args, "runs", 1) < 1:
        p.error("--runs must be at least 1")
    {"input": cmd_input, "onnxruntime": cmd_onnxruntime, "torch-eager": cmd_torch_eager,
     "rounds": cmd_rounds, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
