#!/usr/bin/env python3
"""The schedule study's table (issue 15) from the committed grid cells, as Markdown on stdout.

Rows: each learning schedule x budget under docs/reproduction/grid (study-* plus f30/f50, whose
pfs arm is the default schedule, and f50-x2). Columns: PFS test accuracy (mean +- sd, seeds),
the paired difference against the same seeds' uniform cell of f30/f50 (mean +- se, 95% t
interval, verdict), open fraction and held-out accuracy of the gates, channels decided by the
tie-break, and gate-learning wall time (median). Run from the repository root:

    .venv/bin/python tools/study-table.py > /tmp/study.md
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.evidence.report import _T975  # noqa: E402 (the report's own t table)

GRID = Path("docs/reproduction/grid")
ROWS = [  # (experiment, schedule in words, budget)
    ("f50", "lr 0.01 x 300 steps (default)", 0.5), ("f30", "lr 0.01 x 300 steps (default)", 0.3),
    ("study-lr0.01-1000-f50", "lr 0.01 x 1,000 steps", 0.5), ("study-lr0.01-1000-f30", "lr 0.01 x 1,000 steps", 0.3),
    ("study-lr0.01-10ep-f50", "lr 0.01 x 10 epochs (paper)", 0.5),
    ("study-lr0.01-10ep-f30", "lr 0.01 x 10 epochs (paper)", 0.3),
    ("study-lr0.05-300-f50", "lr 0.05 x 300 steps", 0.5), ("study-lr0.05-300-f30", "lr 0.05 x 300 steps", 0.3),
    ("study-lr0.2-300-f50", "lr 0.2 x 300 steps (former default)", 0.5),
    ("study-lr0.2-300-f30", "lr 0.2 x 300 steps (former default)", 0.3),
    ("f50-x2", "lr 0.01 x 300 steps, learned at 2x width", 0.5),
]


def cells(name: str) -> dict:
    path = GRID / name / "results.json"
    return json.loads(path.read_text())["cells"] if path.is_file() else {}


def paired(pfs: dict, uniform: dict) -> str:
    seeds = sorted(set(pfs) & set(uniform))
    d = [100 * (pfs[s] - uniform[s]) for s in seeds]
    if len(d) < 2:
        return "n/a"
    mean, se = statistics.fmean(d), statistics.stdev(d) / len(d) ** 0.5
    t = _T975[len(d) - 2] if len(d) - 1 <= len(_T975) else 1.96
    lo, hi = mean - t * se, mean + t * se
    verdict = "ahead" if lo > 0 else "behind" if hi < 0 else "level"
    return f"{mean:+.2f} +- {se:.2f} ({lo:+.2f}..{hi:+.2f}, {len(d)}): {verdict}"


def main() -> None:
    print("| schedule | budget | PFS test acc (mean +- sd, n) | PFS - uniform, points (se, 95% CI, n) "
          "| open fraction | held-out acc | tied channels | learning s (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, words, budget in ROWS:
        cs = cells(name)
        pfs = {c["seed"]: c for c in cs.values() if c["arm"] == "pfs"}
        if not pfs:
            continue
        ref = cells("f50" if budget == 0.5 else "f30")
        uniform = {c["seed"]: c["test_acc"] for c in ref.values() if c["arm"] == "uniform"}
        accs = [c["test_acc"] for c in pfs.values()]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        learned = [c["learn"] for c in pfs.values() if c.get("learn")]
        opens = [f["open_frac"] for f in learned]
        held = [f["heldout_acc"] for f in learned]
        tied = [json.loads((GRID / name / "cells" / f"pfs-s{s}" / "structure.json").read_text()).get("tied_channels")
                for s in pfs]
        secs = [c["timing"].get("learn") for c in pfs.values() if c.get("timing")]
        span = (lambda xs, f: f"{min(xs):{f}}-{max(xs):{f}}" if xs else "n/a")
        print(f"| {words} | {budget} | {statistics.fmean(accs):.4f} +- {sd:.4f} ({len(accs)}) "
              f"| {paired({s: c['test_acc'] for s, c in pfs.items()}, uniform)} | {span(opens, '.2f')} "
              f"| {span(held, '.2f')} | {span([t for t in tied if t is not None], 'd')} "
              f"| {statistics.median(secs):.0f} |")


if __name__ == "__main__":
    main()
