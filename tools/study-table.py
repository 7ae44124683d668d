#!/usr/bin/env python3
"""The schedule study's table (issue 15) from the committed grid cells, as Markdown on stdout.

Rows: each learning schedule x budget under docs/reproduction/grid (study-* plus f30/f50, whose
pfs arm is the default schedule, and f50-x2). Columns: PFS test accuracy (mean +- sd, seeds),
the paired difference against the same seeds' uniform cell of f30/f50 (mean +- se, 95% t
interval, verdict), open fraction and held-out accuracy of the gates, channels decided by the
tie-break, and gate-learning wall time (median). Run from the repository root:

    .venv/bin/python tools/study-table.py > /tmp/study.md
    .venv/bin/python tools/study-table.py --prefix cifar- > /tmp/cifar-study.md   # the CIFAR-shaped set
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.evidence.report import _T975  # noqa: E402 (the report's own t table)

GRID = Path("docs/reproduction/grid")
RANDOM = "random gate values (the control: nothing learned)"
SCHEDULES = [  # (experiment name without its budget, schedule in words[, arm: pfs unless named]); the
    # reference grid (uniform and PFS at lr 0.01 x 300 steps) is PREFIX + "f50" / "f30"
    ("f{f}", "lr 0.01 x 300 steps"), ("study-lr0.01-1000-f{f}", "lr 0.01 x 1,000 steps"),
    ("study-lr0.01-10ep-f{f}", "lr 0.01 x 10 epochs (paper; default)"),
    ("study-lr0.05-300-f{f}", "lr 0.05 x 300 steps"),
    ("study-lr0.2-300-f{f}", "lr 0.2 x 300 steps (former Fashion-MNIST default)"),
    ("f{f}-x2", "lr 0.01 x 300 steps, learned at 2x width"),
    # The control, nothing learned: gate values drawn at random, searched to the same MACs (an
    # arm of Fashion-MNIST's reference grid; a grid of its own on the CIFAR-shaped set).
    ("f{f}", RANDOM, "random"), ("f{f}-random", RANDOM, "random"),
]
PAPER = "study-lr0.01-10ep-f{f}"


def cells(name: str) -> dict:
    path = GRID / name / "results.json"
    return json.loads(path.read_text())["cells"] if path.is_file() else {}


def pfs_acc(name: str) -> dict:
    return {c["seed"]: c["test_acc"] for c in cells(name).values() if c["arm"] == "pfs"}


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
    prefix = sys.argv[sys.argv.index("--prefix") + 1] if "--prefix" in sys.argv else ""
    print("| schedule | budget | PFS test acc (mean +- sd, n) | PFS - uniform, points (se, 95% CI, n) "
          "| PFS - PFS at the paper's schedule, points | open fraction | held-out acc | tied channels "
          "| learning s (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for budget, f in ((0.5, "50"), (0.3, "30")):
        ref = cells(f"{prefix}f{f}")
        uniform = {c["seed"]: c["test_acc"] for c in ref.values() if c["arm"] == "uniform"}
        paper = pfs_acc(prefix + PAPER.format(f=f))
        for template, words, *named in SCHEDULES:
            name = prefix + template.format(f=f)
            arm = named[0] if named else "pfs"
            pfs = {c["seed"]: c for c in cells(name).values() if c["arm"] == arm}
            if not pfs:
                continue
            accs = [c["test_acc"] for c in pfs.values()]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            learned = [c["learn"] for c in pfs.values() if c.get("learn")]
            opens = [f["open_frac"] for f in learned]
            held = [f["heldout_acc"] for f in learned]
            tied = [json.loads((GRID / name / "cells" / f"{arm}-s{s}" / "structure.json").read_text())
                    .get("tied_channels") for s in pfs]
            secs = [c["timing"]["learn"] for c in pfs.values() if "learn" in c.get("timing", {})]
            span = (lambda xs, f: f"{min(xs):{f}}-{max(xs):{f}}" if xs else "n/a")
            own = {s: c["test_acc"] for s, c in pfs.items()}
            versus_paper = "-" if template == PAPER else paired(own, paper)
            print(f"| {words} | {budget} | {statistics.fmean(accs):.4f} +- {sd:.4f} ({len(accs)}) "
                  f"| {paired(own, uniform)} | {versus_paper} | {span(opens, '.2f')} "
                  f"| {span(held, '.2f')} | {span([t for t in tied if t is not None], 'd')} "
                  f"| {f'{statistics.median(secs):.0f}' if secs else 'n/a'} |")


if __name__ == "__main__":
    main()
