"""Benchmark: FLOPs-budget structure search on ResNet-110, engine.search vs ptflops in the loop.

The baseline is how the paper's code finds a structure: binary search over the number of
kept channels, building the pruned network and counting its FLOPs with ptflops at every
probe. engine.search counts MACs analytically from a cached per-layer table instead.
Both search the same global ranking, so they must return the same widths (checked).

    .venv/bin/python bench/bench_search.py [--repeats 50] [--baseline-repeats 3] [--budget 0.5]

Prints a markdown table (medians; the baseline is measured in the same run).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from ptflops import get_model_complexity_info

from engine.gating import create_model
from engine.search import search


def learned_like_gates(model, seed: int = 0) -> dict[str, torch.Tensor]:
    """Distinct random gate values (no ties, so both searches must agree exactly)."""
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(w, generator=g) for name, w in model.widths.items()}


def ptflops_macs(name: str, widths: dict[str, int], size: tuple[int, int, int]) -> int:
    model = create_model(name, widths=widths).eval()
    macs, _ = get_model_complexity_info(model, size, as_strings=False, backend="aten",
                                        print_per_layer_stat=False, verbose=False)
    return int(macs)


def ptflops_search(name: str, gates: dict[str, torch.Tensor], budget: float,
                   size: tuple[int, int, int]) -> dict[str, int]:
    """The baseline: binary search on kept channels, building + counting each probe with ptflops."""
    groups = list(gates)
    dense = ptflops_macs(name, {g: v.numel() for g, v in gates.items()}, size)
    limit = int(budget * dense)
    # Each group's best channel is always kept (min_channels=1); the rest rank globally.
    rest = []
    for i, g in enumerate(groups):
        values = gates[g].tolist()
        best = max(range(len(values)), key=lambda c: values[c])
        rest += [(v, i) for c, v in enumerate(values) if c != best]
    rest.sort(key=lambda t: -t[0])

    def widths(k: int) -> dict[str, int]:
        counts = [1] * len(groups)
        for _, i in rest[:k]:
            counts[i] += 1
        return dict(zip(groups, counts))

    lo, hi = 0, len(rest)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ptflops_macs(name, widths(mid), size) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return widths(lo)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet110")
    p.add_argument("--budget", type=float, default=0.5, help="fraction of dense MACs (default 0.5)")
    p.add_argument("--repeats", type=int, default=50, help="timed engine.search calls after warm-up")
    p.add_argument("--baseline-repeats", type=int, default=3, help="timed ptflops searches")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = create_model(args.model)
    size = model.default_input_size
    gates = learned_like_gates(model)
    run_engine = lambda: search(model, args.budget, gates=gates)
    cold, structure = timed(run_engine)  # builds the per-layer cost table (cached afterwards)
    engine_times = [timed(run_engine)[0] for _ in range(args.repeats)]
    base_times, base_widths = [], None
    for _ in range(args.baseline_repeats):
        t, base_widths = timed(lambda: ptflops_search(args.model, gates, args.budget, size))
        base_times.append(t)

    engine_ms = statistics.median(engine_times) * 1e3
    base_ms = statistics.median(base_times) * 1e3
    same = base_widths == structure.widths
    print(f"Structure search, {args.model} {list(size)}, budget {args.budget} of dense MACs "
          f"({structure.macs:,} MACs kept, {sum(structure.widths.values())} channels), "
          f"torch threads {torch.get_num_threads()}\n")
    print("| method | median ms | runs | faster than ptflops loop |")
    print("|---|---:|---:|---:|")
    rows = [("engine.search (warm)", engine_ms, len(engine_times)),
            ("engine.search (first call, builds the cost table)", cold * 1e3, 1),
            ("ptflops in the loop (binary search, baseline)", base_ms, len(base_times))]
    for label, ms, n in rows:
        print(f"| {label} | {ms:.2f} | {n} | {base_ms / ms:.0f}x |")
    print(f"\nsame widths from both: {'yes' if same else 'NO'}; goal < 5 ms warm: "
          f"{'met' if engine_ms < 5 else 'NOT met'} ({engine_ms:.2f} ms)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
