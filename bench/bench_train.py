"""Benchmark: CPU training and inference speed of a pruned network against its dense original.

The pruned network is a FLOPs-budget structure (default ResNet-56 at 50% MACs, searched
on seeded random gates: uneven widths per layer, as learned gates give). Variants run in
one process, interleaved round by round, and the table reports medians of speeds and of
per-round ratios, so a shared, noisy machine moves both sides together.

  train    engine.training.train.train_step: forward + backward + SGD (momentum, wd), batch 128
  infer    eval-mode forward, no autograd: batch 1 latency and batch 128 throughput

Each in the default (NCHW) memory format and in channels_last.

    .venv/bin/python bench/bench_train.py [--model resnet56] [--flops 0.5] [--repeats 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

from engine.flops import count_macs
from engine.gates import set_gates_enabled
from engine.gating import create_model
from engine.prune import pruned_model
from engine.search import search
from engine.training.train import param_groups, train_step

CL = torch.channels_last
NCHW = torch.contiguous_format


def build(model_name: str, flops: float, size: tuple[int, int, int]) -> tuple[nn.Module, nn.Module, float]:
    """(dense, pruned, MACs ratio): the pruned one at the budget, both freshly initialised."""
    torch.manual_seed(0)
    dense = create_model(model_name, num_classes=10, in_channels=size[0])
    gates = {g: torch.rand(w, generator=torch.Generator().manual_seed(1)) for g, w in dense.widths.items()}
    structure = search(dense, flops, size, gates=gates)
    pruned = pruned_model(structure, seed=0)
    for m in (dense, pruned):
        set_gates_enabled(m, False)
    return dense, pruned, count_macs(pruned, size) / count_macs(dense, size)


def make_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, fmt):
    model = model.to(memory_format=fmt).train()
    x = x.contiguous(memory_format=fmt)
    opt = torch.optim.SGD(param_groups(model, 1e-4, False), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    criterion = nn.CrossEntropyLoss()
    return lambda: train_step(model, opt, scaler, criterion, x, y)


def make_infer(model: nn.Module, x: torch.Tensor, fmt):
    model = model.to(memory_format=fmt).eval()
    x = x.contiguous(memory_format=fmt)

    def run():
        with torch.no_grad():
            model(x)
    return run


def timed(fn, n: int) -> float:
    """Seconds per call, over `n` calls after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet56")
    p.add_argument("--flops", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=2, help="train steps per measurement")
    p.add_argument("--latency-iters", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    size = (3, 32, 32)
    dense, pruned, ratio = build(args.model, args.flops, size)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.batch, *size, generator=g), torch.randint(0, 10, (args.batch,), generator=g)
    x1 = x[:1].clone()
    import copy

    variants = {}
    for fmt_name, fmt in (("nchw", NCHW), ("channels_last", CL)):
        for name, net in (("dense", dense), ("pruned", pruned)):
            variants[("train", fmt_name, name)] = (make_train(copy.deepcopy(net), x, y, fmt), args.steps, args.batch)
            variants[("infer1", fmt_name, name)] = (make_infer(copy.deepcopy(net), x1, fmt), args.latency_iters, 1)
            variants[("infer128", fmt_name, name)] = (make_infer(copy.deepcopy(net), x, fmt), args.steps, args.batch)
    seconds = {k: [] for k in variants}
    for _ in range(args.repeats):  # interleaved: every variant once per round
        for key, (fn, n, _) in variants.items():
            seconds[key].append(timed(fn, n))

    rows = []
    for kind in ("train", "infer1", "infer128"):
        for fmt_name in ("nchw", "channels_last"):
            d, q = seconds[(kind, fmt_name, "dense")], seconds[(kind, fmt_name, "pruned")]
            batch = variants[(kind, fmt_name, "dense")][2]
            speedup = statistics.median(a / b for a, b in zip(d, q))
            rows.append({"what": kind, "format": fmt_name, "dense_ms": 1e3 * statistics.median(d),
                         "pruned_ms": 1e3 * statistics.median(q),
                         "dense_img_s": batch / statistics.median(d), "pruned_img_s": batch / statistics.median(q),
                         "speedup": speedup, "macs_speedup": 1 / ratio, "of_macs_speedup": speedup * ratio})
    if args.json:
        print(json.dumps({"model": args.model, "macs_ratio": ratio, "rows": rows}, indent=2))
        return
    print(f"{args.model} at {ratio:.3f} of dense MACs (MACs speed-up {1 / ratio:.2f}x); "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"batch {args.batch}, {args.repeats} interleaved rounds, medians")
    print("| measure | format | dense | pruned | speed-up | / MACs speed-up |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        label = {"train": "train step, img/s", "infer1": "inference latency, batch 1",
                 "infer128": "inference, batch 128, img/s"}[r["what"]]
        if r["what"] == "infer1":
            d, q = f"{r['dense_ms']:.2f} ms", f"{r['pruned_ms']:.2f} ms"
        else:
            d, q = f"{r['dense_img_s']:.1f}", f"{r['pruned_img_s']:.1f}"
        print(f"| {label} | {r['format']} | {d} | {q} | {r['speedup']:.2f}x | {r['of_macs_speedup']:.2f} |")


if __name__ == "__main__":
    main()
