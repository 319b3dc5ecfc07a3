#!/usr/bin/env python3
"""The Python side of coordinator/tests/it/paddleslim.rs: what `coordinator results` writes, read by the real
PaddleSlim and paddlepaddle (the `.paddle` venv that scripts/setup.sh, setup_paddle, makes from the exact pins of
scripts/paddle-requirements.txt).

    .paddle/bin/python scripts/oracle/paddleslim_interop.py CASES.json

CASES.json, written by the Rust test:

    {"input_shape": [1, 3, H, W],
     "convs": [[param name, out channels], ...],  # a chain of 3x3 convs with ReLUs; the last is a leaf
     "plan_file": a plan.json written by RunResults,
     "cases": [{"name": ..., "dir": a `coordinator results` directory (sen.pickle, sen_status.pickle),
                "table": {param: [[ratio, loss], ...]},
                "plans": [{"max_loss": t, "ratios": sensgrid's plan, 0.0 kept, "cut": without the 0.0}]}]}

Checks, failing with the first mismatch:

- sen.pickle: `paddleslim.prune.load_sensitivities` gives exactly the table;
- sen_status.pickle: `pickletools` disassembles it (no memo opcode), `pickle.load` gives a
  `paddleslim.dygraph.prune.filter_pruner.Status` with exactly the table in `sensitivies`, and the attributes,
  `accumulates` and `is_ckp` of the file that PaddleSlim's own `sensitive()` saves after a whole analysis of
  the same model (run here);
- `FPGMFilterPruner(model, input_shape).sensitive(eval_func=..., sen_file=sen_status.pickle,
  target_vars=[the table's params], skip_vars=[])`, as PaddleOCR's deploy/slim/prune/sensitivity_anal.py calls it,
  evaluates one baseline and each (param, ratio) of PaddleSlim's grid (0.1 to 0.9) that the table lacks, and
  nothing else (every call of eval_func is identified by the weight shapes it sees); it returns the table plus
  those cells;
- per plan: `paddleslim.prune.get_ratios_by_loss(table, t)` (static, PaddleSlim 2.6 gives 0.0 where no ratio
  qualifies) equals sensgrid's plan, and the dygraph `pruner._get_ratios_by_loss(sensitivities, loss=t)` that
  sensitivity_anal.py uses (which leaves such groups out) equals the plan without its 0.0 entries, to 1e-9;
- plan_file, handed to `pruner.prune_vars(plan, [0])` as sensitivity_anal.py does, prunes the model, which
  still runs.

Prints one JSON line on stdout: {"cases": {name: {"evaluations": ["baseline" | [param, ratio], ...]}},
"own_status": {...}, "pruned_channels": {param: out channels after prune_vars}}.
"""

# Before paddle: paddlepaddle 2.6's libpaddle.so exports the symbols of the zlib it bundles, and Python's zlib
# module, when it is first imported after paddle, binds to them and crashes (SIGSEGV in inflateReset2, seen
# here with the system's zlib 1.2.13). Imported first, it binds to the system's libz.
import zlib  # noqa: F401  isort: skip

import json
import math
import os
import pickle
import pickletools
import shutil
import sys
import tempfile

import numpy as np
import paddle
from paddleslim.dygraph import FPGMFilterPruner
from paddleslim.dygraph.prune.filter_pruner import Status
from paddleslim.prune import get_ratios_by_loss, load_sensitivities

TOLERANCE = 1e-9
# The grid of FilterPruner._cal_sensitive in PaddleSlim 2.6: np.arange(0.1, 1, step=0.1), each rounded to 2.
PADDLESLIM_RATIOS = [round(r, 2) for r in np.arange(0.1, 1, step=0.1)]


class Mismatch(Exception):
    pass


def require(condition, message):
    if not condition:
        raise Mismatch(message)


class Net(paddle.nn.Layer):
    """A chain of 3x3 convs with ReLUs whose weights carry the given names (no bias, as in PP-OCR's
    conv + batch norm blocks)."""

    def __init__(self, in_channels, convs):
        super().__init__()
        layers = []
        for name, out_channels in convs:
            conv = paddle.nn.Conv2D(
                in_channels, out_channels, 3, padding=1, weight_attr=paddle.ParamAttr(name=name), bias_attr=False
            )
            layers += [conv, paddle.nn.ReLU()]
            in_channels = out_channels
        self.body = paddle.nn.Sequential(*layers[:-1])

    def forward(self, x):
        return self.body(x)

    def weights(self):
        return {p.name: p for p in self.parameters()}


def build(spec):
    """A fresh model and its FPGM pruner, constructed as sensitivity_anal.py does (no sen_file yet)."""
    paddle.seed(0)
    model = Net(spec["input_shape"][1], [tuple(c) for c in spec["convs"]])
    require(
        sorted(model.weights()) == sorted(name for name, _ in spec["convs"]),
        f"the weights are named {sorted(model.weights())}",
    )
    return model, FPGMFilterPruner(model, spec["input_shape"])


def recording_eval(model, channels):
    """An eval_func that records what it is asked to score: "baseline" when no weight is pruned, else
    [param, ratio] of the one pruned weight (ratio = share of its out channels gone, which names PaddleSlim's
    ratio exactly when the channel counts are multiples of 10)."""
    calls = []

    def eval_func():
        pruned = [
            (name, channels[name], w.shape[0]) for name, w in model.weights().items() if w.shape[0] != channels[name]
        ]
        if not pruned:
            calls.append("baseline")
            return 0.8
        require(len(pruned) == 1, f"eval_func sees several weights pruned at once: {pruned}")
        name, before, after = pruned[0]
        calls.append([name, round((before - after) / before, 2)])
        return 0.7

    return eval_func, calls


def as_table(pairs):
    return {param: {float(r): float(loss) for r, loss in losses} for param, losses in pairs.items()}


def same_ratios(got, want, what):
    require(sorted(got) == sorted(want), f"{what}: groups {sorted(got)}, expected {sorted(want)}")
    for key in want:
        require(
            math.isclose(float(got[key]), want[key], rel_tol=0.0, abs_tol=TOLERANCE),
            f"{what}: {key} is {got[key]!r}, expected {want[key]!r}",
        )


def own_status(spec, scratch):
    """The file PaddleSlim's own sensitive() saves after a whole analysis of the model: its attributes."""
    model, pruner = build(spec)
    eval_func, calls = recording_eval(model, dict(spec["convs"]))
    path = os.path.join(scratch, "own_status.pickle")
    pruner.sensitive(eval_func=eval_func, sen_file=path, skip_vars=[])
    with open(path, "rb") as f:
        status = pickle.load(f)
    require(type(status) is Status, f"PaddleSlim saved a {type(status)}")
    return status, len(calls)


def check_status_file(path, table, own):
    with open(path, "rb") as f:
        data = f.read()
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    require(ops[:5] == ["PROTO", "GLOBAL", "EMPTY_TUPLE", "NEWOBJ", "EMPTY_DICT"], f"{path} opens with {ops[:5]}")
    require(ops[-2:] == ["BUILD", "STOP"], f"{path} ends with {ops[-2:]}")
    memo = sorted({op for op in ops if "PUT" in op or op == "MEMOIZE" or "GET" in op})
    require(not memo, f"{path} has memo opcodes {memo}")
    status = pickle.loads(data)
    require(type(status) is Status, f"{path} loads as {type(status)}, not {Status}")
    require(sorted(vars(status)) == sorted(vars(own)), f"{path}: attributes {sorted(vars(status))}")
    require(status.sensitivies == table, f"{path}: sensitivies {status.sensitivies!r}, expected {table!r}")
    require(
        status.accumulates == own.accumulates and status.is_ckp is own.is_ckp,
        f"{path}: accumulates {status.accumulates!r}, is_ckp {status.is_ckp!r}; PaddleSlim saves "
        f"{own.accumulates!r}, {own.is_ckp!r}",
    )
    # What FilterPruner and sensitive() call.
    require(Status(path).sensitivies == table, f"Status({path}) does not read the table")


def check_case(spec, case, own):
    table = as_table(case["table"])
    sen = os.path.join(case["dir"], "sen.pickle")
    loaded = load_sensitivities(sen)
    require(loaded == table, f"load_sensitivities({sen}) is {loaded!r}, expected {table!r}")
    status_file = os.path.join(case["dir"], "sen_status.pickle")
    check_status_file(status_file, table, own)

    model, pruner = build(spec)
    masters = sorted(c.master_name for c in pruner.collections)
    require(masters == sorted(table), f"PaddleSlim analyses {masters}, the table holds {sorted(table)}")
    channels = dict(spec["convs"])
    eval_func, calls = recording_eval(model, channels)
    before = open(status_file, "rb").read()
    got = pruner.sensitive(eval_func=eval_func, sen_file=status_file, target_vars=list(table), skip_vars=[])
    missing = [[p, r] for p in masters for r in PADDLESLIM_RATIOS if r not in table[p]]
    expected_calls = (["baseline"] if missing else []) + missing
    require(calls == expected_calls, f"{case['name']}: eval_func scored {calls}, expected {expected_calls}")
    require(isinstance(got, dict), f"sensitive() returned a {type(got)}")
    # The table comes back untouched, plus a loss for each cell scored here.
    require(sorted(got) == sorted(table), f"{case['name']}: sensitive() returned the groups {sorted(got)}")
    for p, losses in table.items():
        ratios = set(losses) | {r for q, r in missing if q == p}
        require(set(got[p]) == ratios, f"{case['name']}: sensitive() returned {p}: {got[p]!r}")
        require(
            all(got[p][r] == loss for r, loss in losses.items()),
            f"{case['name']}: sensitive() changed {p}: {got[p]!r}, the table has {losses!r}",
        )
    if not missing:
        require(open(status_file, "rb").read() == before, f"sensitive() rewrote {status_file} with nothing new")

    for plan in case["plans"]:
        t = plan["max_loss"]
        same_ratios(get_ratios_by_loss(table, t), plan["ratios"], f"get_ratios_by_loss(table, {t})")
        # On the table: in the partial case `got` also holds the cells PaddleSlim scored, which sensgrid's plan
        # never saw (in the full case the two are equal, checked above).
        same_ratios(pruner._get_ratios_by_loss(table, loss=t), plan["cut"], f"FilterPruner._get_ratios_by_loss({t})")
    return {"evaluations": calls}


def check_plan(spec, path):
    with open(path) as f:
        plan = json.load(f)
    model, pruner = build(spec)
    pruner.prune_vars(plan, [0])
    out = model(paddle.rand(spec["input_shape"]))
    require(list(out.shape[:2]) == [1, spec["convs"][-1][1]], f"the pruned model gives {out.shape}")
    return {name: w.shape[0] for name, w in model.weights().items()}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    scratch = tempfile.mkdtemp(prefix="paddleslim_interop.")
    try:
        own, own_evaluations = own_status(spec, scratch)
        summary = {
            "own_status": {
                "attributes": sorted(vars(own)),
                "accumulates": repr(own.accumulates),
                "is_ckp": own.is_ckp,
                "evaluations": own_evaluations,
            },
            "cases": {case["name"]: check_case(spec, case, own) for case in spec["cases"]},
            "pruned_channels": check_plan(spec, spec["plan_file"]),
        }
    except Mismatch as e:
        sys.exit(f"paddleslim_interop: {e}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
