"""Zoo sweep: foreign models through the whole pfs path, with numbers for docs/models.md.

For each model: build the dependency graph and gate it (timed), list groups gated and not
gated (with why), check MACs and params against ptflops (aten) on the physically pruned
network at dense and random kept channels, search a budget (timed; within budget and
maximal: one more ranked channel breaks it), check the pruned network equals the gated
one with the dropped gates at zero (eval), and that ONNX (onnxruntime) equals PyTorch.
A model that cannot go through is listed with the reason, never skipped.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_zoo.py [--size 64] [--json out.json] [SPEC ...]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import tempfile
import time
import warnings
from collections import Counter

import numpy as np
import torch
from ptflops import get_model_complexity_info

from engine.gating import build_model, prune_foreign, strip_gates, with_dropped_gates_zeroed
from engine.search import _Ranking, search

ZOO = ["torchvision:resnet18", "torchvision:resnet50", "torchvision:mobilenet_v2",
       "torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0", "torchvision:regnet_x_400mf",
       "torchvision:shufflenet_v2_x1_0", "torchvision:densenet121", "torchvision:convnext_tiny",
       "timm:convnext_atto", "timm:resnet18d"]


def _ptflops(model, size) -> tuple[int, int]:
    net = copy.deepcopy(model.net)
    strip_gates(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_model_complexity_info(net.eval(), (size[0] * model.repeat, *size[1:]), as_strings=False,
                                         backend="aten", print_per_layer_stat=False, verbose=False)


def _scramble(model, gen) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.bias.uniform_(-0.3, 0.3, generator=gen)
        for name, p in model.named_parameters():
            if "layer_scale" in name or name.endswith("gamma"):
                # ConvNeXt's layer scale starts at 1e-6: residual branches would hide any error
                p.uniform_(0.5, 1.0, generator=gen)
        for gate in model.gates().values():
            gate.weight.uniform_(0.3, 1.0, generator=gen)


def _reason_kind(why: str) -> str:
    for key in ("tied by residual", "network output", "grouped conv", "normalised together", "leaks",
                "weights pfs cannot prune", "breaks the forward"):
        if key in why:
            return key
    return why[:40]


def measure(spec: str, size=(3, 64, 64), seed: int = 0) -> dict:
    """One model's row: groups, equalities (booleans with their numbers) and timings."""
    row: dict = {"model": spec}
    try:
        return _measure(row, spec, size, seed)
    except Exception as exc:  # listed with the reason, never skipped
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return row


def _measure(row: dict, spec: str, size, seed: int) -> dict:
    torch.manual_seed(seed)
    t = time.perf_counter()
    model = build_model(spec, num_classes=10, in_channels=size[0], input_size=size)
    row["graph_s"] = time.perf_counter() - t
    plan = model.plan
    row["gated_groups"] = len(plan.groups)
    row["gated_channels"] = sum(g.channels for g in plan.groups)
    row["not_gated"] = dict(Counter(_reason_kind(n.why) for n in plan.not_gated))
    row["not_gated_channels"] = sum(n.channels for n in plan.not_gated)
    dense = dict(model.widths)
    macs, params = model.costs.macs(dense), model.costs.count_params(dense)
    row["dense_macs"], row["dense_params"] = macs, params
    row["dense_equal"] = (macs, params) == _ptflops(model, size)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    _scramble(model, gen)
    keep = {g: sorted(rng.sample(range(c), rng.randint(1, c))) for g, c in dense.items()}
    widths = {g: len(k) for g, k in keep.items()}
    pruned = prune_foreign(model, keep)
    row["random_equal"] = (model.costs.macs(widths), model.costs.count_params(widths)) == _ptflops(pruned, size)
    zeroed = with_dropped_gates_zeroed(model, keep)
    with torch.no_grad():
        x = torch.rand(2, *size, generator=gen)
        a, b = pruned.eval()(x), zeroed(x)
    row["pruned_vs_gated_maxdiff"] = float((a - b).abs().max())
    row["output_scale"] = float(b.abs().max())
    # search: within budget and maximal
    gates = {g: torch.rand(w, generator=gen) for g, w in dense.items()}
    smallest = model.costs.macs({g: 1 for g in dense}) / macs
    row["budget"] = 0.5 if smallest <= 0.5 else round((1 + smallest) / 2, 4)  # 0.5 unless out of reach
    t = time.perf_counter()
    s = search(model, row["budget"], size, gates=gates)
    row["search_s"] = time.perf_counter() - t
    ranking = _Ranking(dense, gates, 1)
    k = sum(s.widths.values()) - int(ranking.forced_counts.sum())
    nxt = model.costs.macs(ranking.widths(k + 1)) if k < ranking.size else None
    row["search_within"] = s.macs <= s.budget_macs
    row["search_maximal"] = nxt is None or nxt > s.budget_macs
    row["search_macs_ratio"] = s.macs / s.dense_macs
    # ONNX of the deployable pruned network
    deploy = copy.deepcopy(pruned)
    strip_gates(deploy)
    deploy.eval()
    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = os.path.join(tmp, "m.onnx")
            torch.onnx.export(deploy, (x[:1],), path, dynamo=False, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            with torch.no_grad():
                expected = deploy(x).numpy()
            row["onnx_maxdiff"] = float(np.abs(sess.run(None, {"input": x.numpy()})[0] - expected).max())
    except Exception as exc:
        row["onnx_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return row


def markdown(rows: list[dict], size) -> str:
    lines = [f"Input {size[0]}x{size[1]}x{size[2]}, 10 classes, CPU, one thread. MACs/params: engine vs ptflops "
             "(aten) on the physically pruned network, dense and at random kept channels. pruned-gated: max |diff| "
             "of logits, pruned network vs gated network with dropped gates at 0 (eval). ONNX: max |diff| "
             "onnxruntime vs PyTorch. Search: budget 0.5 of dense MACs (or halfway between the smallest "
             "structure and dense where 0.5 is out of reach).", "",
             "| model | gated groups (channels) | not gated (why: count) | dense MACs | MACs=ptflops dense/random "
             "| search in budget, maximal | pruned-gated | ONNX | graph s | search ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | cannot work: {r['error']} | | | | | | | | |")
            continue
        why = ", ".join(f"{k}: {v}" for k, v in r["not_gated"].items())
        onnx = f"{r['onnx_maxdiff']:.1e}" if "onnx_maxdiff" in r else r.get("onnx_error", "")
        lines.append(
            f"| {r['model']} | {r['gated_groups']} ({r['gated_channels']:,}) | {why} | {r['dense_macs'] / 1e6:.1f}M "
            f"| {'yes' if r['dense_equal'] else 'NO'}/{'yes' if r['random_equal'] else 'NO'} "
            f"| {'yes' if r['search_within'] else 'NO'}, {'yes' if r['search_maximal'] else 'NO'} at {r['budget']} "
            f"| {r['pruned_vs_gated_maxdiff']:.1e} | {onnx} | {r['graph_s']:.1f} | {r['search_s'] * 1e3:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="*", default=ZOO)
    p.add_argument("--size", type=int, default=64, help="input height and width (default 64)")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    size = (3, args.size, args.size)
    rows = []
    for spec in args.specs:
        rows.append(measure(spec, size))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    print(markdown(rows, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
