#!/usr/bin/env python3
"""The Python side of worker/tests/e2e.rs (the end-to-end run of `coordinator submit` ... `results`).

    .oracle/bin/python scripts/oracle/e2e_check.py unsupported-model --out tiny.onnx
        writes a tiny ONNX model whose one op (NonZero) no worker runs, for the refused submission;

    .oracle/bin/python scripts/oracle/e2e_check.py results DIR --data-dir D --label-file F [eval_reference options]
        checks what `coordinator results RUN --out DIR` wrote:
        - sen.pickle, read with pickle.load(f) and with pickle.load(f, encoding='bytes'), is exactly the dict
          that sensitivities.json implies: {group key: {ratio: (baseline - metric) / baseline}} for every group
          not skipped, at every ratio of the run, the losses recomputed here from the metric dicts (so the
          pickled floats must be bit-equal to Python's own arithmetic), and no skipped group in it;
        - pruned.onnx, run in onnxruntime and scored with PaddleOCR's rules by eval_reference.py (the remaining
          options are passed to it: the run's DetResizeForTest and DBPostProcess settings) on the same set,
          has the hmean that prune_report.json's metric_after states, within --tolerance.
        With --max-model-loss X --original-model M (a measured Prune target, worker/tests/probe.rs): the
        original model M is scored the same way, and pruned.onnx's loss against it in onnxruntime,
        (original - pruned) / original, must be at most X, with fewer FLOPs than the original
        (prune_report.json).
        Prints one summary line; exits 1 with the first mismatch otherwise.
"""

import argparse
import json
import os
import pickle
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Mismatch(Exception):
    pass


def require(condition, message):
    if not condition:
        raise Mismatch(message)


def unsupported_model(out):
    # Imported here: the results check needs no onnx package.
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["y"], name="nonzero")],
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [4, None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, out)


def expected_table(sens):
    """{key: {ratio: loss}} from sensitivities.json's metric dicts, and the skipped keys."""
    metric = sens["metric"]
    require(sens["state"] == "done", f"the run is {sens['state']}, not done")
    baseline = sens["baseline"][metric]
    ratios = sorted(sens["ratios"])
    table, skipped = {}, []
    for group in sens["groups"]:
        key = group["key"]
        if group["skipped"]:
            require(not group["cells"], f"skipped group {key} has cells")
            skipped.append(key)
            continue
        cells = {cell["ratio"]: cell for cell in group["cells"]}
        require(sorted(cells) == ratios, f"group {key}: ratios {sorted(cells)}, expected {ratios}")
        losses = {}
        for ratio, cell in cells.items():
            require(cell["state"] == "done", f"group {key} at {ratio}: {cell['state']}")
            loss = (baseline - cell["metrics"][metric]) / baseline
            require(cell["loss"] == loss, f"group {key} at {ratio}: sensitivities.json loss {cell['loss']}, "
                                          f"recomputed {loss}")
            losses[ratio] = loss
        table[key] = losses
    require(table, "no analysed group")
    require(skipped, "no skipped group: the config's Sensitivity.skip should skip one")
    return table, skipped


def check_pickle(path, expected):
    loads = {"pickle.load(f)": pickle.load, "pickle.load(f, encoding='bytes')":
             lambda f: pickle.load(f, encoding="bytes")}
    for how, load in loads.items():
        with open(path, "rb") as f:
            loaded = load(f)
        require(type(loaded) is dict, f"{how}: a {type(loaded).__name__}, not a dict")
        for key, losses in loaded.items():
            require(type(key) is str, f"{how}: the key {key!r} is not a str")
            require(type(losses) is dict, f"{how}: {key}: a {type(losses).__name__}, not a dict")
            for ratio, loss in losses.items():
                require(type(ratio) is float and type(loss) is float, f"{how}: {key}: {ratio!r}: {loss!r}")
        missing = sorted(set(expected) - set(loaded))
        extra = sorted(set(loaded) - set(expected))
        require(not missing and not extra, f"{how}: groups missing {missing}, not expected {extra}")
        for key, losses in expected.items():
            require(loaded[key] == losses, f"{how}: {key}: {loaded[key]} != {losses}")


def reference_metric(model, out, metric, reference_args):
    """The metric of `model` in onnxruntime under PaddleOCR's rules (eval_reference.py)."""
    command = [sys.executable, os.path.join(HERE, "eval_reference.py"), "--kind", "det",
               "--model", model, "--out", out, *reference_args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)["paddle_rules"][metric]


def check_model_loss(results, report, pruned_metric, original, max_model_loss, reference_args):
    """The measured target held in the oracle: the pruned model's loss against the original, both scored in
    onnxruntime, is at most max_model_loss, and the prune removed FLOPs."""
    metric = report["metric"]
    baseline = reference_metric(original, os.path.join(results, "original_reference.json"), metric,
                                reference_args)
    require(baseline > 0, f"the original model scores {metric} {baseline} in onnxruntime")
    loss = (baseline - pruned_metric) / baseline
    require(loss <= max_model_loss,
            f"pruned.onnx loses {loss:.4f} of {metric} in onnxruntime ({baseline:.4f} -> {pruned_metric:.4f}), "
            f"above max_model_loss {max_model_loss}")
    require(report["flops_after"] < report["flops_before"],
            f"FLOPs {report['flops_before']} -> {report['flops_after']}: nothing removed")
    return baseline, loss


def check_pruned(results, reference_args, tolerance):
    with open(os.path.join(results, "prune_report.json")) as f:
        report = json.load(f)
    with open(os.path.join(results, "plan.json")) as f:
        plan = json.load(f)
    metric = report["metric"]
    pruned_groups = sum(1 for ratio in plan.values() if ratio > 0)
    require(pruned_groups > 0, f"plan.json prunes no group: {plan}")
    require(report["params_after"] < report["params_before"],
            f"params {report['params_before']} -> {report['params_after']}")
    require(report["metrics_after"][metric] == report["metric_after"], "metrics_after and metric_after differ")
    ours = reference_metric(os.path.join(results, "pruned.onnx"), os.path.join(results, "pruned_reference.json"),
                            metric, reference_args)
    after = report["metric_after"]
    require(abs(ours - after) <= tolerance,
            f"pruned.onnx: {metric} {ours} in onnxruntime, prune_report.json's metric_after {after}")
    return report, pruned_groups, ours


def results(args, reference_args):
    with open(os.path.join(args.dir, "sensitivities.json")) as f:
        sens = json.load(f)
    table, skipped = expected_table(sens)
    check_pickle(os.path.join(args.dir, "sen.pickle"), table)
    report, pruned_groups, ours = check_pruned(args.dir, reference_args, args.tolerance)
    require(report["metric_before"] == sens["baseline"][sens["metric"]], "metric_before is not the baseline's")
    if args.max_model_loss is not None:
        require(args.original_model, "--max-model-loss needs --original-model")
        baseline, loss = check_model_loss(args.dir, report, ours, args.original_model, args.max_model_loss,
                                          reference_args)
        print(f"e2e_check: max_model_loss {args.max_model_loss} holds in onnxruntime: {report['metric']} "
              f"{baseline:.4f} -> {ours:.4f}, loss {loss:.4f}; FLOPs {report['flops_before']} -> "
              f"{report['flops_after']}")
    print(f"e2e_check: sen.pickle (str and bytes loads) == sensitivities.json: {len(table)} groups x "
          f"{len(sens['ratios'])} ratios, {len(skipped)} skipped groups absent; pruned.onnx ({pruned_groups} "
          f"groups pruned, params {report['params_before']} -> {report['params_after']}): {report['metric']} "
          f"{ours:.4f} in onnxruntime vs metric_after {report['metric_after']:.4f} "
          f"(before {report['metric_before']:.4f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("unsupported-model")
    p.add_argument("--out", required=True)
    p = commands.add_parser("results")
    p.add_argument("dir", help="the folder `coordinator results --out` wrote")
    p.add_argument("--tolerance", type=float, default=0.005)
    p.add_argument("--max-model-loss", type=float)
    p.add_argument("--original-model")
    # Everything else goes to eval_reference.py.
    args, rest = parser.parse_known_args()
    if args.command == "unsupported-model":
        require(not rest, f"unknown arguments {rest}")
        unsupported_model(args.out)
        return
    try:
        results(args, rest)
    except Mismatch as mismatch:
        print(f"e2e_check: {args.dir}: {mismatch}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
