#!/usr/bin/env python3
"""The Python side of bench/e2e: PaddleSlim's sensitivity loop on one process, and the report.

    baseline.py grid   --model M.onnx --groups GROUPS.json --data-dir D --label-file L --ratios 0.1,0.2,...
                       [--max-groups N] [--threads 2] [--flush-denormal] --out-json OUT.json --out-pickle sen.pickle
    baseline.py report --baseline OUT.json --sensgrid DIR --sensgrid-no-incremental DIR
                       --sensgrid-s S --sensgrid-no-incremental-s S --baseline-s S --images N
                       [--baseline-flushed OUT.json --baseline-flushed-s S] [--cpu MODEL]
                       [--tolerance 1e-3] [--mask-check OUT.txt] [--busy-before PCT]
    baseline.py mask-check --model M.onnx --groups GROUPS.json --data-dir D --label-file L --out-dir DIR
                       [--ratio 0.5] [--worker target/release/worker]

grid is the baseline: the grid sensgrid runs, done the way PaddleSlim's `sensitivity()` does it, whole model per
cell. The ONNX model is converted once with onnx2torch (eval(), `torch.set_num_threads(--threads)`, every
forward inside `torch.inference_mode()`). Then the eval function runs once for the baseline and once per
(group, ratio) cell; like PaddleSlim's, the eval function reads the eval set every time it is called: the label
file, each image's bytes, cv2 decoding and PaddleOCR's eval transforms (scripts/oracle/eval_reference.py's loader:
DetLabelEncode, DetResizeForTest limit_side_len 960 max, NormalizeImage, ToCHWImage), then the model, then the
reference post-processing and metric (eval_reference.py's Evaluator "rapidocr": rapidocr-onnxruntime 1.4.4's
DBPostProcess with PaddleOCR's DetectionIoUEvaluator as paddle_rules.py writes it). Per cell, as PaddleSlim's
pruner does with lazy=True: rank the group's channels (l1_norm: the mean |w| of each filter of the group's key
conv; the lowest pruned, ties to the lower index; `min(C - 1, round(C * r))` of them, Python's round), zero them
in every tensor slice of the group (`worker inspect --groups --json`'s members: each tensor, axis and index map),
evaluate, and put the saved values back. loss = (baseline hmean - cell hmean) / baseline hmean.
It writes OUT.json (per cell the metric dict, loss, channels pruned and seconds; the baseline's; the phases'
seconds) and sen.pickle ({group key: {ratio: loss}}, PaddleSlim's format), and prints one JSON line.
--flush-denormal first calls `torch.set_flush_denormal(True)`, which the baseline's users do not write: PP-OCRv3
det holds 13,895 subnormal weights, and on Intel CPUs every multiplication by one costs a microcode assist, a
handicap sensgrid's engine does not carry (it flushes them at load). bench/e2e times the baseline both ways.

The group file is `worker inspect MODEL --groups --json --input-shape 1,3,640,640`: sensgrid's own analysis, so
both sides prune the same groups (worker/tests/it/depgraph.rs checks those groups against Torch-Pruning's).
Member tensors are ONNX constants (Constant nodes or initializers), or the output of a Reshape of one (the
conv biases Paddle adds through `Reshape(bias, [1, C, 1, 1])`, which sensgrid folds at load): a reshape keeps
the element order, so the same flat positions are zeroed in the source constant.

mask-check checks "the same masking" directly: on the first eval image it runs `worker infer --mask` (one group
at --ratio) and the onnx2torch model masked here, for the unmasked model and four groups that cover every kind of
member (the first group, one with a folded Reshape bias, the ConvTranspose group, the group with most members),
and prints the max abs difference of the outputs (one JSON line).

report compares the runs: the sensgrid runs' sensitivities.json with each other (incremental cells on and off
must give the same metrics) and with each baseline's (max abs difference of the losses and of the hmeans),
prints the wall times and their ratios to both baselines, then as its last line one JSON object. It never fails
on a figure.

Runs in the oracle venv (.oracle: onnx2torch, onnxruntime, OpenCV, shapely, pyclipper on the torch venv's torch).
"""

import argparse
import importlib.metadata
import json
import os
import pickle
import sys
import time

T_START = time.perf_counter()

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "scripts", "oracle"))
sys.path.insert(0, os.path.join(REPO, "bench", "engine"))

TARGET = 0.5  # sensgrid's wall time at most this share of the flushed baseline's (the plain one's without it)
# The det post-processing of examples/configs/det_ppocrv3.yml (PaddleOCR's ch_PP-OCRv3_det_cml.yml eval config).
DET_OPTIONS = ["--limit-side-len", "960", "--limit-type", "max", "--thresh", "0.3", "--box-thresh", "0.6",
               "--max-candidates", "1000", "--unclip-ratio", "1.5"]
METRIC = "hmean"


def say(msg):
    print(f"bench/e2e: {msg}", file=sys.stderr, flush=True)


# --- the groups and the mask ---------------------------------------------------------------------------------------


def pruned_count(channels, ratio):
    """model/src/prune/criterion.rs pruned_count: Python's round (half to even), at least one channel kept."""
    return min(channels - 1, max(0, round(channels * ratio)))


class Pruner:
    """The group masks of PaddleSlim's lazy pruning on the onnx2torch model, in ONNX terms.

    `targets[name]` is [(torch tensor, ONNX shape)] for every ONNX constant a group member names: the torch
    parameter or buffer that holds it (the same values, checked), or, for a folded Reshape of a constant, the
    constant's own tensor (flat positions are the same)."""

    def __init__(self, onnx_model, gm, groups):
        import numpy as np
        import torch
        from onnx import numpy_helper
        from torch import nn

        self.np, self.torch = np, torch
        graph = onnx_model.graph
        values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        producer = {o: n for n in graph.node for o in n.output}
        self.groups = groups

        # ONNX constant name -> the torch tensors holding it.
        held = {}

        def hold(name, tensor):
            if name and tensor is not None:
                held.setdefault(name, [])
                if not any(t is tensor for t in held[name]):
                    held[name].append(tensor)

        for fx_node in gm.graph.nodes:
            if fx_node.op != "call_module":
                continue
            module = gm.get_submodule(fx_node.target)
            mapping = getattr(module, "onnx_mapping", None)
            if mapping is None:
                continue
            node = producer[mapping.outputs[0]]
            inputs = list(node.input) + [""] * 5
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                                   nn.ConvTranspose3d, nn.Linear)):
                hold(inputs[1], module.weight)
                hold(inputs[2], module.bias)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                for k, attr in ((1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")):
                    hold(inputs[k], getattr(module, attr))
            for arg, name in zip(fx_node.args, mapping.inputs):
                if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
                    obj = gm
                    for part in arg.target.split("."):
                        obj = getattr(obj, part)
                    hold(name, obj)

        self.targets = {}
        for group in groups:
            for member in group["members"]:
                name = member["tensor"]
                if name in self.targets:
                    continue
                source, shape = name, None
                if name not in values:
                    node = producer.get(name)
                    if node is None or node.op_type != "Reshape" or node.input[0] not in values:
                        raise SystemExit(f"bench/e2e: group {group['key']}: member {name} is neither a constant "
                                         "nor a Reshape of one")
                    source = node.input[0]
                    target_shape = [int(d) for d in values[node.input[1]]]
                    shape = tuple(values[source].shape[i] if d == 0 else d for i, d in enumerate(target_shape))
                    shape = values[source].reshape(shape).shape  # resolves a -1
                else:
                    shape = values[name].shape
                tensors = held.get(source)
                if not tensors:
                    raise SystemExit(f"bench/e2e: no torch tensor of the onnx2torch model holds {source}")
                want = values[source]
                for t in tensors:
                    got = t.detach().cpu().numpy()
                    if got.size != want.size or not np.array_equal(got.reshape(-1), want.reshape(-1)):
                        raise SystemExit(f"bench/e2e: the torch tensor mapped to {source} has other values")
                    if not t.is_contiguous():
                        raise SystemExit(f"bench/e2e: the torch tensor of {source} is not contiguous")
                self.targets[name] = (tensors, tuple(shape))

    def key_member(self, group, key_op):
        axis = 1 if key_op == "ConvTranspose" else 0
        for member in group["members"]:
            if member["tensor"] == group["key"] and member["axis"] == axis:
                return member
        raise SystemExit(f"bench/e2e: group {group['key']}: no member holds its key conv's output channels")

    def select(self, group, key_op, ratio):
        """criterion.rs Criterion::L1Norm select: the pruned_count lowest mean |w| filters of the key conv, ties
        to the lower channel index; sorted. Ranked on the current (unmasked) weights, as PaddleSlim does per
        cell."""
        np = self.np
        member = self.key_member(group, key_op)
        tensors, shape = self.targets[member["tensor"]]
        w = tensors[0].detach().cpu().numpy().reshape(shape)
        importance = []
        for k in member["index_map"]:
            if k is None:
                importance.append(0.0)
                continue
            f = np.take(w, k, axis=member["axis"]).astype(np.float64)
            importance.append(float(np.abs(f).sum()) / max(f.size, 1))
        order = sorted(range(group["channels"]), key=lambda g: (importance[g], g))
        return sorted(order[: pruned_count(group["channels"], ratio)])

    def removed(self, group, channels):
        """prune/mod.rs Cut::removed: (tensor, axis) -> the indices these group channels take there."""
        removed = {}
        for member in group["members"]:
            indices = {member["index_map"][g] for g in channels if member["index_map"][g] is not None}
            if indices:
                removed.setdefault((member["tensor"], member["axis"]), set()).update(indices)
        return removed

    def mask(self, removed):
        """prune/mod.rs mask: zeroes the removed indices in place; returns what it overwrote."""
        np, torch = self.np, self.torch
        saved = []
        with torch.no_grad():
            for (name, axis), indices in sorted(removed.items()):
                tensors, shape = self.targets[name]
                positions = np.take(np.arange(int(np.prod(shape))).reshape(shape), sorted(indices), axis=axis)
                flat = torch.from_numpy(positions.reshape(-1).astype(np.int64))
                for t in tensors:
                    if not any(s is t for s, _ in saved):
                        saved.append((t, t.detach().clone()))
                    t.view(-1).index_fill_(0, flat, 0.0)
        return saved

    def restore(self, saved):
        with self.torch.no_grad():
            for t, value in saved:
                t.copy_(value)


# --- grid ----------------------------------------------------------------------------------------------------------


def load_model(path, groups):
    """(the onnx2torch GraphModule in eval mode, its Pruner, {conv weight: "Conv" | "ConvTranspose"}): the model
    converted once, its Constant nodes made initializers first (bench/engine's constants_as_initializers)."""
    import onnx
    import onnx2torch

    from baselines import constants_as_initializers

    model = constants_as_initializers(onnx.load(path))
    gm = onnx2torch.convert(model, attach_onnx_mapping=True)
    gm.eval()
    ops = {n.input[1]: n.op_type for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")}
    return gm, Pruner(model, gm, groups), ops


def cmd_grid(args):
    import numpy as np
    import torch

    import eval_reference as er
    import paddle_rules as pr

    torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        raise SystemExit("bench/e2e: torch.set_flush_denormal(True) is not supported on this CPU")
    ratios = [float(r) for r in args.ratios.split(",")]
    with open(args.groups, encoding="utf-8") as f:
        groups = json.load(f)["groups"]
    if args.max_groups:
        groups = groups[: args.max_groups]
    ref_args = er.parse_args(["--kind", "det", "--model", args.model, "--data-dir", args.data_dir,
                              "--label-file", args.label_file, "--out", os.devnull, *DET_OPTIONS])
    config = er.evaluator_config(ref_args)

    t_load = time.perf_counter()
    gm, pruner, ops = load_model(args.model, groups)
    load_s = time.perf_counter() - t_load

    def eval_func():
        """The eval function PaddleSlim's sensitivity() calls per cell: reads the set, runs, scores."""
        lines = pr.read_label_lines([args.label_file])
        evaluator = er.Evaluator("rapidocr", config)
        for _, _, sample in er.lazy_substitute(er.loader(ref_args, lines, {}), len(lines)):
            with torch.inference_mode():
                out = gm(torch.from_numpy(sample["input"][None]))
            evaluator.batch(out.numpy(), [sample])
        return evaluator.result() | {"num_samples": float(len(lines))}

    t0 = time.perf_counter()
    base = eval_func()
    base_s = time.perf_counter() - t0
    b = base[METRIC]
    if b == 0:
        say(f"the baseline's {METRIC} is 0: every loss is undefined (the cells are still run and timed)")
    say(f"baseline: {METRIC} {b:.6f} in {base_s:.2f} s; {len(groups)} groups x {len(ratios)} ratios")

    out_groups, sen, cells = [], {}, 0
    t_grid = time.perf_counter()
    for group in groups:
        key = group["key"]
        entry = {"key": key, "channels": group["channels"], "cells": []}
        for ratio in ratios:
            t = time.perf_counter()
            channels = pruner.select(group, ops[key], ratio)
            saved = pruner.mask(pruner.removed(group, channels))
            try:
                metrics = eval_func()
            finally:
                pruner.restore(saved)
            p = metrics[METRIC]
            loss = (b - p) / b if b else float("nan")
            sen.setdefault(key, {})[ratio] = float(loss)
            entry["cells"].append({"ratio": ratio, "pruned": len(channels), "metrics": metrics, "loss": loss,
                                   "seconds": round(time.perf_counter() - t, 4)})
            cells += 1
        out_groups.append(entry)
        done = entry["cells"]
        say(f"{key}: " + ", ".join(f"{c['ratio']:g}: {c['loss']:.4f}" for c in done)
            + f" ({sum(c['seconds'] for c in done):.1f} s)")
    grid_s = time.perf_counter() - t_grid

    with open(args.out_pickle, "wb") as f:
        pickle.dump(sen, f)
    result = {
        "side": "baseline", "model": os.path.relpath(os.path.abspath(args.model), REPO),
        "images": len(pr.read_label_lines([args.label_file])), "threads": args.threads,
        "flush_denormal": args.flush_denormal, "ratios": ratios,
        "cells": cells, "metric": METRIC, "baseline": base,
        "seconds": {"start_to_load": round(t_load - T_START, 3), "load_and_convert": round(load_s, 3),
                    "baseline_eval": round(base_s, 3), "cells": round(grid_s, 3),
                    "in_process": round(time.perf_counter() - T_START, 3)},
        "versions": {"torch": torch.__version__, "onnx2torch": importlib.metadata.version("onnx2torch"),
                     "numpy": np.__version__},
        "groups": out_groups,
    }
    with open(args.out_json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps({k: result[k] for k in ("side", "images", "cells", "threads", "flush_denormal", "seconds")}))


# --- mask check ----------------------------------------------------------------------------------------------------


def check_groups(groups, producer_ops, conv_ops):
    """A few groups that cover the kinds of member: the first group, the first with a folded Reshape member (a
    Paddle conv bias), the first keyed by a ConvTranspose, and the one with the most members."""
    picks = [groups[0]]
    with_reshape = [g for g in groups if any(producer_ops.get(m["tensor"]) == "Reshape" for m in g["members"])]
    transposed = [g for g in groups if conv_ops.get(g["key"]) == "ConvTranspose"]
    picks += with_reshape[:1] + transposed[:1] + [max(groups, key=lambda g: len(g["members"]))]
    seen, out = set(), []
    for g in picks:
        if g["key"] not in seen:
            seen.add(g["key"])
            out.append(g)
    return out


def cmd_mask_check(args):
    """The masked onnx2torch model against `worker infer --mask` on one eval input, a few groups at --ratio:
    the same channels zeroed gives the same output up to float rounding (max abs diff of the probability map)."""
    import subprocess

    import numpy as np
    import onnx
    import torch

    import eval_reference as er
    import paddle_rules as pr

    torch.set_num_threads(args.threads)
    with open(args.groups, encoding="utf-8") as f:
        groups = json.load(f)["groups"]
    ref_args = er.parse_args(["--kind", "det", "--model", args.model, "--data-dir", args.data_dir,
                              "--label-file", args.label_file, "--out", os.devnull, *DET_OPTIONS])
    lines = pr.read_label_lines([args.label_file])
    _, _, sample = next(er.lazy_substitute(er.loader(ref_args, lines, {}), len(lines)))
    x = np.ascontiguousarray(sample["input"][None], np.float32)
    os.makedirs(args.out_dir, exist_ok=True)
    x_path = os.path.join(args.out_dir, "input.npy")
    np.save(x_path, x, allow_pickle=False)

    gm, pruner, ops = load_model(args.model, groups)
    producer_ops = {o: n.op_type for n in onnx.load(args.model).graph.node for o in n.output}
    results = []
    for group in [None] + check_groups(groups, producer_ops, ops):
        key = group["key"] if group else None
        plan = os.path.join(args.out_dir, f"plan-{key or 'none'}.json")
        with open(plan, "w", encoding="utf-8") as f:
            json.dump({key: args.ratio} if key else {}, f)
        y_path = os.path.join(args.out_dir, f"out-{key or 'none'}.npy")
        cmd = [args.worker, "infer", "--model", args.model, "--input", x_path, "--output", y_path,
               "--device", "cpu"] + (["--mask", plan] if key else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            say(f"mask check: {' '.join(cmd)} failed: {done.stderr.strip()[-300:]}")
            results.append({"group": key, "error": done.stderr.strip()[-300:]})
            continue
        saved = pruner.mask(pruner.removed(group, pruner.select(group, ops[key], args.ratio))) if group else []
        try:
            with torch.inference_mode():
                y = gm(torch.from_numpy(x)).numpy()
        finally:
            pruner.restore(saved)
        ours = np.load(y_path)
        diff = float(np.abs(ours - y).max()) if ours.shape == y.shape else float("inf")
        results.append({"group": key, "ratio": args.ratio if key else 0.0, "max_abs_diff": diff,
                        "members": len(group["members"]) if group else 0})
        say(f"mask check: {key or 'unmasked'}" + (f" @ {args.ratio:g}" if key else "")
            + f": worker infer vs onnx2torch max abs diff {diff:.3g}")
    diffs = [r["max_abs_diff"] for r in results if "max_abs_diff" in r]
    print(json.dumps({"mask_check": results, "max_abs_diff": max(diffs) if diffs else None,
                      "errors": sum("error" in r for r in results)}))


# --- report --------------------------------------------------------------------------------------------------------


def sensgrid_cells(out_dir):
    """({(key, ratio): (metrics, loss, state, worker seconds)}, baseline metrics) of a sensgrid run's
    sensitivities.json."""
    path = os.path.join(out_dir, "sensitivities.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        say(f"no readable {path}: {e}")
        return {}, None
    cells = {}
    for group in doc.get("groups", []):
        for cell in group.get("cells", []):
            cells[(group["key"], round(float(cell["ratio"]), 6))] = (
                cell.get("metrics"), cell.get("loss"), cell.get("state"), cell.get("seconds"))
    base = doc.get("baseline")
    if isinstance(base, dict) and "metrics" in base:
        base = base["metrics"]
    return cells, base


def compare(on, on_base, py, tolerance):
    """sensgrid's cells (incremental on) against one baseline's, cell by cell: the max abs loss and hmean
    differences, the baseline hmean's, how many cells agree within `tolerance`, the worst cell and the baseline
    cells sensgrid has no done cell for."""
    py_cells = {(g["key"], round(float(c["ratio"]), 6)): c for g in py["groups"] for c in g["cells"]}
    loss_diffs, hmean_diffs, missing, worst = [], [], [], None
    for k, c in sorted(py_cells.items()):
        s = on.get(k)
        if s is None or s[2] != "done" or s[0] is None or s[1] is None:
            missing.append(k)
            continue
        hd = abs(float(s[0][METRIC]) - float(c["metrics"][METRIC]))
        ld = abs(float(s[1]) - float(c["loss"]))
        hmean_diffs.append(hd)
        loss_diffs.append(ld)
        if worst is None or ld > worst[0]:
            worst = (ld, k, float(s[1]), float(c["loss"]))
    return {
        "cells": len(py_cells),
        "max_loss": max(loss_diffs) if loss_diffs else None,
        "max_hmean": max(hmean_diffs) if hmean_diffs else None,
        "base_diff": (abs(float(on_base[METRIC]) - float(py["baseline"][METRIC]))
                      if isinstance(on_base, dict) and METRIC in on_base else None),
        "within": sum(d <= tolerance for d in loss_diffs),
        "compared": len(loss_diffs),
        "worst": worst,
        "missing": missing,
    }


def print_comparison(name, c, tolerance):
    if c["max_loss"] is not None:
        worst = c["worst"]
        print(f"sensgrid vs {name}: max |loss diff| {c['max_loss']:.3g}, max |{METRIC} diff| {c['max_hmean']:.3g}, "
              f"baseline {METRIC} diff {'-' if c['base_diff'] is None else format(c['base_diff'], '.3g')}; "
              f"{c['within']} of {c['compared']} cells within {tolerance:g}"
              + (f"; worst {worst[1][0]} @ {worst[1][1]:g}: sensgrid {worst[2]:.6f}, baseline {worst[3]:.6f}"
                 if worst and worst[0] > tolerance else ""))
    if c["missing"]:
        print(f"sensgrid vs {name}: {len(c['missing'])} baseline cells have no done sensgrid cell: "
              f"{c['missing'][:5]}")


def cmd_report(args):
    with open(args.baseline, encoding="utf-8") as f:
        py = json.load(f)
    flushed = None
    if args.baseline_flushed:
        with open(args.baseline_flushed, encoding="utf-8") as f:
            flushed = json.load(f)
    on, on_base = sensgrid_cells(args.sensgrid)
    has_off = bool(args.sensgrid_no_incremental)
    off, off_base = sensgrid_cells(args.sensgrid_no_incremental) if has_off else ({}, None)

    # Incremental cells on and off: the same metrics dict, cell by cell, and the same baseline.
    identical, same, differing = None, [], []
    if has_off:
        same = [k for k in on if k in off and on[k][0] == off[k][0] and on[k][2] == off[k][2] == "done"]
        differing = sorted(k for k in set(on) | set(off) if k not in same)
        identical = bool(on) and not differing and on_base == off_base

    # sensgrid (incremental cells on) against each baseline, cell by cell.
    plain = compare(on, on_base, py, args.tolerance)
    flush = compare(on, on_base, flushed, args.tolerance) if flushed else None

    def ratio(a, b):
        return round(a / b, 4) if a is not None and b else None

    off_s = args.sensgrid_no_incremental_s if has_off else None
    flushed_s = args.baseline_flushed_s if flushed else None
    r_on, r_off = ratio(args.sensgrid_s, args.baseline_s), ratio(off_s, args.baseline_s)
    rf_on, rf_off = ratio(args.sensgrid_s, flushed_s), ratio(off_s, flushed_s)

    def row(name, secs, r, rf):
        text = "-" if secs is None else f"{secs:.1f}"
        print(f"{name:<40} {text:>9} {'-' if r is None else r:>11} {'-' if rf is None else rf:>11}")

    print(f"CPU: {args.cpu or 'unknown'}")
    print(f"{'run':<40} {'wall s':>9} {'/ baseline':>11} {'/ flushed':>11}")
    row("sensgrid (incremental cells on)", args.sensgrid_s, r_on, rf_on)
    row("sensgrid (incremental cells off)", off_s, r_off, rf_off)
    row("python baseline (onnx2torch, as run)", args.baseline_s, 1.0, ratio(args.baseline_s, flushed_s))
    row("python baseline (denormals flushed)", flushed_s, ratio(flushed_s, args.baseline_s), 1.0 if flushed else None)
    for name, doc in (("baseline", py), ("flushed baseline", flushed)):
        if doc:
            secs = doc.get("seconds", {})
            print(f"{name} phases: imports {secs.get('start_to_load')} s, load+convert "
                  f"{secs.get('load_and_convert')} s, baseline eval {secs.get('baseline_eval')} s, "
                  f"cells {secs.get('cells')} s")
    print(f"cells: {plain['cells']} ({sum(v[2] == 'done' for v in on.values())} done in sensgrid's results), "
          f"images {args.images}")

    def job_seconds(cells):
        secs = [c[3] for c in cells.values() if isinstance(c[3], (int, float))]
        return round(sum(secs), 2) if secs else None

    cell_s_on, cell_s_off = job_seconds(on), job_seconds(off)
    print(f"sensgrid worker seconds in cells: incremental on {cell_s_on}, off {cell_s_off}")
    if has_off:
        print(f"incremental on vs off: {'identical' if identical else 'DIFFERENT'} "
              f"({len(same)} of {len(set(on) | set(off))} cells equal"
              + (f"; differing: {differing[:5]}" if differing else "") + ")")
    else:
        print("incremental on vs off: no run with incremental cells off")
    print_comparison("baseline", plain, args.tolerance)
    if flush:
        print_comparison("flushed baseline", flush, args.tolerance)
    mask = None
    if args.mask_check:
        try:
            with open(args.mask_check, encoding="utf-8") as f:
                mask = json.loads(f.read().strip().splitlines()[-1])
            print(f"masking: worker infer --mask vs the masked onnx2torch model on {len(mask['mask_check'])} "
                  f"cases, max abs diff {mask['max_abs_diff']}, {mask['errors']} errors")
        except (OSError, ValueError, IndexError, KeyError) as e:
            say(f"no mask check result in {args.mask_check}: {e}")
    # The target is against the flushed baseline, the fair one; against the baseline as run when it alone ran.
    target_ratio = rf_on if flushed else r_on
    print(json.dumps({
        "bench": "e2e", "cpu": args.cpu or None, "images": args.images, "cells": plain["cells"],
        "threads": py.get("threads"),
        "sensgrid_s": round(args.sensgrid_s, 2), "sensgrid_no_incremental_s": None if off_s is None else round(off_s, 2),
        "baseline_s": round(args.baseline_s, 2), "baseline_flushed_s": None if flushed_s is None else round(flushed_s, 2),
        "ratio": r_on, "ratio_no_incremental": r_off, "ratio_flushed": rf_on, "ratio_no_incremental_flushed": rf_off,
        "target": TARGET, "target_against": "flushed baseline" if flushed else "baseline",
        "meets_target": target_ratio is not None and target_ratio <= TARGET,
        "max_loss_diff": plain["max_loss"], "max_hmean_diff": plain["max_hmean"],
        "baseline_hmean_diff": plain["base_diff"],
        "flushed_max_loss_diff": flush["max_loss"] if flush else None,
        "flushed_max_hmean_diff": flush["max_hmean"] if flush else None,
        "cells_within_tolerance": plain["within"], "cells_compared": plain["compared"], "tolerance": args.tolerance,
        "incremental_identical": identical,
        "sensgrid_cell_s": cell_s_on, "sensgrid_no_incremental_cell_s": cell_s_off,
        "baseline_cell_s": py.get("seconds", {}).get("cells"),
        "baseline_flushed_cell_s": flushed.get("seconds", {}).get("cells") if flushed else None,
        "mask_check_max_abs_diff": mask.get("max_abs_diff") if mask else None,
        "busy_before_pct": args.busy_before,
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--model", required=True)
    g.add_argument("--groups", required=True, help="worker inspect --groups --json output")
    g.add_argument("--data-dir", required=True)
    g.add_argument("--label-file", required=True)
    g.add_argument("--ratios", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    g.add_argument("--max-groups", type=int, default=0, help="only the first N groups (0: all)")
    g.add_argument("--threads", type=int, default=2)
    g.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True) first")
    g.add_argument("--out-json", required=True)
    g.add_argument("--out-pickle", required=True)
    m = sub.add_parser("mask-check")
    m.add_argument("--model", required=True)
    m.add_argument("--groups", required=True)
    m.add_argument("--data-dir", required=True)
    m.add_argument("--label-file", required=True)
    m.add_argument("--ratio", type=float, default=0.5)
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--worker", default=os.path.join(REPO, "target", "release", "worker"))
    m.add_argument("--out-dir", required=True)
    r = sub.add_parser("report")
    r.add_argument("--baseline", required=True)
    r.add_argument("--sensgrid", required=True)
    r.add_argument("--sensgrid-no-incremental", default="", help="empty: no such run")
    r.add_argument("--sensgrid-s", type=float, required=True)
    r.add_argument("--sensgrid-no-incremental-s", type=float)
    r.add_argument("--baseline-s", type=float, required=True)
    r.add_argument("--baseline-flushed", default="", help="the flushed baseline's OUT.json (empty: none ran)")
    r.add_argument("--baseline-flushed-s", type=float)
    r.add_argument("--cpu", default="", help="the CPU model, as lscpu names it")
    r.add_argument("--images", type=int, required=True)
    r.add_argument("--tolerance", type=float, default=1e-3)
    r.add_argument("--mask-check", help="the mask-check output (its last line)")
    r.add_argument("--busy-before", type=int)
    args = p.parse_args()
    {"grid": cmd_grid, "mask-check": cmd_mask_check, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
