#!/usr/bin/env python3
"""Exports a small PyTorch CNN to ONNX (opset 17, weights as initializers) as a committed test fixture.

Writes worker/tests/fixtures/small_cnn/ (or --out DIR):
    model.onnx      torch.onnx.export with the legacy TorchScript exporter (dynamo=False): plain Conv, Gemm,
                    BatchNormalization, ... nodes whose weights are graph initializers, not Constant nodes
    input.npy       float32 [1, 3, 32, 32] from numpy's default_rng(20240)
    expected.npy    onnxruntime's output for input.npy (CPU, 2 threads, graph optimizations disabled),
                    checked against PyTorch's own output

The network: conv+bn+relu, a depthwise conv + pointwise conv block with a residual Add, a BatchNormalization
after the Add (so the exporter cannot fold it into a Conv), maxpool, conv+bias+relu, global average pool,
flatten and a linear layer; about 6k parameters, torch.manual_seed(0), BN running stats randomized so BN
is not the identity.

How it was run (torch comes from the setup's torch venv, which must not be changed: onnx and onnxruntime
go into a separate --target directory that is on PYTHONPATH for this one run only):

    T=target/oracle/export-deps
    .oracle/bin/pip install --quiet --no-cache-dir --no-deps --target $T onnx==1.19.1 onnxruntime==1.23.2 \\
        numpy==2.4.6 protobuf==7.36.2 ml_dtypes==0.6.0 flatbuffers==25.12.19 coloredlogs==15.0.1 \\
        humanfriendly==10.0 packaging==26.4
    PYTHONPATH=$T ~/.cache/sensgrid/torch-2.11.0/bin/python scripts/oracle/export_small_cnn.py

(torch 2.11.0+cu130 on the CPU; the legacy exporter needs neither onnxscript nor anything else.)
"""

import argparse
import os
import sys
import warnings

import numpy as np
import onnx
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import REPO, save_npy, session  # noqa: E402

OPSET = 17


class SmallCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.pw = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.post = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.post(x + self.pw(self.dw(x))))
        x = self.conv2(self.pool(x))
        return self.fc(torch.flatten(self.gap(x), 1))


def build():
    torch.manual_seed(0)
    net = SmallCNN()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "worker", "tests", "fixtures", "small_cnn"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    net = build()
    params = sum(p.numel() for p in net.parameters())
    assert params < 50_000, params
    x = np.random.default_rng(20240).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        reference = net(torch.from_numpy(x)).numpy()

    path = os.path.join(args.out, "model.onnx")
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
    torch.onnx.export(net, (torch.from_numpy(x),), path, dynamo=False, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"], do_constant_folding=True)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    consts = [n for n in model.graph.node if n.op_type == "Constant"]
    assert not consts, f"weights should be initializers, found {len(consts)} Constant nodes"

    expected = session(model).run(None, {"input": x})[0]
    diff = float(np.abs(expected - reference).max())
    assert diff < 1e-4, f"onnxruntime and torch differ by {diff}"
    save_npy(os.path.join(args.out, "input.npy"), x)
    save_npy(os.path.join(args.out, "expected.npy"), expected)
    ops = [n.op_type for n in model.graph.node]
    print(f"{args.out}: {params} params, opset {OPSET}, nodes {ops}, "
          f"{len(model.graph.initializer)} initializers, |onnxruntime - torch| <= {diff:.2e}", file=sys.stderr)


if __name__ == "__main__":
    main()
