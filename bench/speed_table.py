"""docs/benchmarks.md's speed table from runs that `pfs bench` has timed (their speed.json).

    .venv/bin/python bench/speed_table.py runs/r56 runs/r18

One row per network, engine and batch size: dense and pruned (latency at batch 1 as median
and p90 ms, throughput otherwise), the wall-clock speed-up, that speed-up over the MACs
ratio (1.0 = as fast as the MACs promise), and the CPU-time speed-up, the cross-check on a
busy machine (the share of a core the timing got is printed under the table).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def cell(stats: dict, batch: int) -> str:
    if batch == 1:
        return f"{stats['median_ms']:.2f} ms (p90 {stats['p90_ms']:.2f})"
    return f"{stats['images_per_s']:,.0f} img/s"


def rows(run: Path) -> list[str]:
    speed = json.loads((run / "speed.json").read_text())
    structure = json.loads((run / "structure.json").read_text())
    out = []
    for r in speed["results"]:
        mode = "/".join(r[n].get("mode", "") for n in ("dense", "pruned")).strip("/") or "-"
        out.append(f"| {structure['model']} | {r['engine']} | {r['batch_size']} | {cell(r['dense'], r['batch_size'])} "
                   f"| {cell(r['pruned'], r['batch_size'])} | {r['speedup']:.2f}x | "
                   f"{r['speedup'] / speed['macs_ratio']:.2f} | {r['cpu_speedup']:.2f}x | {mode} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories holding speed.json")
    args = p.parse_args()
    print("| network | engine | batch | dense | pruned | speed-up | / MACs ratio | CPU-time speed-up | torch mode |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        print("\n".join(rows(run)))
    print()
    for run in args.runs:
        speed = json.loads((run / "speed.json").read_text())
        stats = [r[n] for r in speed["results"] for n in ("dense", "pruned")]
        share = sum(s["cpu_median_ms"] for s in stats) / sum(s["median_ms"] for s in stats)
        m = speed["machine"]
        print(f"- {run.name}: {speed['macs_ratio']:.2f}x fewer MACs; {m['cpu']}, {m['threads']} thread(s), torch "
              f"{m['torch']}, onnxruntime {m['onnxruntime']}; load average {m['load_average'][0]:.1f}; "
              f"the timing got {share:.0%} of a core")


if __name__ == "__main__":
    main()
