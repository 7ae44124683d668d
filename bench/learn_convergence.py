"""How gate learning converges with its length: open fraction, mean gate, selection, accuracy.

One run of the longest length per seed answers every shorter length too: the learning
rate is constant and the batch order does not depend on the run's length, so a run of S
steps is exactly the first S steps of a longer one. For each prefix length S this
replays the selection rule (best held-out accuracy among evaluations with open fraction
<= r, else the last) over the evaluations at or before S, and searches a FLOPs budget on
the selected gates so that short and long structures can be compared (Pearson
correlation of per-layer keep ratios, engine.analysis).

    OMP_NUM_THREADS=1 nice -n 10 python bench/learn_convergence.py --dataset fashion-mnist \
        --seeds 0 1 2 --steps 2500 --prefixes 300 600 1000 1500 2500 --out conv.json
    python bench/learn_convergence.py --report conv.json [...] --reference converged.json

Results are written to --out (JSON) after every seed, so a long sweep can be read while
it runs; docs/learning.md holds the table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import create_model  # noqa: E402
from engine.analysis import correlation  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.events import EvalEnd, GateSnapshot, StepEnd  # noqa: E402
from engine.learn import LearnConfig, learn_gates  # noqa: E402
from engine.search import search  # noqa: E402


def one_seed(args, data, seed: int) -> dict:
    """Learn `args.steps` steps; record the trajectory and the gates at every evaluation."""
    torch.manual_seed(seed)
    model = create_model(args.model, in_channels=data.input_size[0], num_classes=data.num_classes)
    trace, evals, snaps = [], [], {}

    def on_event(e) -> None:
        if isinstance(e, StepEnd) and (e.step % 10 == 0 or e.step == 1):
            trace.append({"step": e.step, "open_frac": e.open_frac, "mean_gate": e.mean_gate,
                          "ce": e.ce, "reg": e.reg})
            if e.step % 100 == 0:
                last = evals[-1] if evals else {}
                print(f"  seed {seed} step {e.step}: open {e.open_frac:.3f} mean {e.mean_gate:.3f} "
                      f"held-out {last.get('accuracy', float('nan')):.3f}", flush=True)
        elif isinstance(e, EvalEnd):
            evals.append({"step": e.step, "accuracy": e.accuracy, "open_frac": e.open_frac})
        elif isinstance(e, GateSnapshot):
            snaps[e.step] = {g: torch.tensor(v) for g, v in e.gates.items()}

    config = LearnConfig(sparsity=args.sparsity, gamma=args.gamma, lr=args.lr, steps=args.steps,
                         eval_every=args.eval_every, heldout_limit=args.heldout_limit,
                         snapshot_every=args.eval_every, seed=seed, batch_size=args.batch_size)
    start = time.perf_counter()
    learn_gates(model, data, config, on_event=on_event)
    seconds = time.perf_counter() - start
    prefixes = {}
    for s in args.prefixes:
        upto = [e for e in evals if e["step"] <= s]
        qualifying = [e for e in upto if e["open_frac"] <= args.sparsity]
        # Earliest best wins ties, as engine.learn._Selection does.
        chosen = max(qualifying, key=lambda e: (e["accuracy"], -e["step"])) if qualifying else upto[-1]
        at_s = next(t for t in reversed(trace) if t["step"] <= s)
        gates = snaps[chosen["step"]]
        with torch.no_grad():
            for g, mod in model.gates().items():
                mod.weight.copy_(gates[g])
        structure = search(model, args.flops, data.input_size)
        prefixes[s] = {"open_frac": at_s["open_frac"], "mean_gate": at_s["mean_gate"],
                       "meets_r": bool(qualifying), "first_meets_r": qualifying[0]["step"] if qualifying else None,
                       "selected_step": chosen["step"], "selected_open_frac": chosen["open_frac"],
                       "heldout_acc": chosen["accuracy"], "structure": structure.to_json()}
    return {"seed": seed, "seconds": seconds, "trace": trace, "evals": evals, "prefixes": prefixes}


def summarise(runs: list[dict], prefixes: list[int]) -> list[dict]:
    """Per prefix: the numbers of every seed, and the correlation with the longest prefix."""
    from engine.search import Structure

    longest = max(prefixes)
    rows = []
    for s in prefixes:
        cells = [r["prefixes"][s] for r in runs]
        corr = [correlation(Structure.from_json(r["prefixes"][s]["structure"]),
                            Structure.from_json(r["prefixes"][longest]["structure"])) for r in runs]
        rows.append({"steps": s, "open_frac": [c["open_frac"] for c in cells],
                     "mean_gate": [c["mean_gate"] for c in cells], "meets_r": [c["meets_r"] for c in cells],
                     "first_meets_r": [c["first_meets_r"] for c in cells],
                     "selected_step": [c["selected_step"] for c in cells],
                     "heldout_acc": [c["heldout_acc"] for c in cells], "corr_with_longest": corr})
    return rows


def report(paths: list[str], reference: list[str]) -> None:
    """Markdown rows per result file and prefix (mean over seeds), and the Pearson correlation
    of each prefix's structure with the same seed's structure in `reference` files."""
    from engine.search import Structure

    refs = {}
    for path in reference:
        for run in json.loads(Path(path).read_text())["runs"]:
            longest = max(run["prefixes"], key=int)
            refs[run["seed"]] = Structure.from_json(run["prefixes"][longest]["structure"])
    print("| data | lr | gamma | steps | seeds | open fraction | mean gate | meets r | selected step | "
          "held-out acc | r with reference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        result = json.loads(Path(path).read_text())
        st = result["settings"]
        runs = result["runs"]
        for s in sorted({int(k) for r in runs for k in r["prefixes"]}):
            cells = [(r["seed"], r["prefixes"][str(s)]) for r in runs if str(s) in r["prefixes"]]
            corr = [correlation(Structure.from_json(c["structure"]), refs[seed]) for seed, c in cells if seed in refs]
            print(f"| {st['dataset']} | {st['lr']:g} | {st['gamma']:g} | {s} | {','.join(str(x) for x, _ in cells)} "
                  f"| {_span([c['open_frac'] for _, c in cells])} | {_span([c['mean_gate'] for _, c in cells])} "
                  f"| {sum(c['meets_r'] for _, c in cells)}/{len(cells)} "
                  f"| {', '.join(str(c['selected_step']) for _, c in cells)} "
                  f"| {_span([c['heldout_acc'] for _, c in cells])} | {_span(corr) if corr else '-'} |")


def _span(values: list[float]) -> str:
    """'0.41' or '0.40-0.43' (min-max over seeds)."""
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"


def main() -> None:
    if "--report" in sys.argv:
        p = argparse.ArgumentParser(description="tables from result files")
        p.add_argument("--report", nargs="+", required=True, metavar="RESULT_JSON")
        p.add_argument("--reference", nargs="*", default=[], metavar="RESULT_JSON",
                       help="runs whose longest prefix is the converged structure per seed")
        args = p.parse_args()
        report(args.report, args.reference)
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-root")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--prefixes", type=int, nargs="+", default=[300, 600, 1000, 1500, 2500])
    p.add_argument("--sparsity", type=float, default=0.2)
    p.add_argument("--gamma", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--heldout-limit", type=int, default=1000)
    p.add_argument("--flops", type=float, default=0.5, help="budget searched on the selected gates")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    args.prefixes = sorted(s for s in args.prefixes if s <= args.steps)
    torch.set_num_threads(1)
    data = load_dataset(args.dataset, args.data_root)
    runs = []
    for seed in args.seeds:
        runs.append(one_seed(args, data, seed))
        result = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "runs": runs,
                  "summary": summarise(runs, args.prefixes)}
        tmp = Path(args.out + ".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(args.out)
        print(f"seed {seed}: {runs[-1]['seconds']:.0f}s", flush=True)
        for row in result["summary"]:
            print(json.dumps({k: v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
