"""`pfs bench RUN`: the measured speed of a run's dense and pruned networks (RUN/speed.json)."""
from __future__ import annotations

import sys
from pathlib import Path

from engine.cli.common import positive_int, print_json


def _add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time a run's dense and pruned networks (torch, onnxruntime); "
                       "writes RUN/speed.json")
    p.add_argument("run", help="run directory with a structure (`pfs search`); trained weights are not needed")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to time (default cpu)")
    p.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 64], metavar="N",
                   help="batch sizes: the smallest gives latency, the others throughput (default 1 64)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads for torch and onnxruntime (default: torch's, from OMP_NUM_THREADS)")
    p.add_argument("--repeats", type=positive_int, default=20, metavar="N",
                   help="timed calls per network and batch size; medians are reported (default 20)")
    p.add_argument("--no-compile", action="store_true", help="skip trying torch.compile (it takes a while)")
    p.add_argument("--no-onnx", action="store_true", help="skip onnxruntime")
    p.add_argument("--json", action="store_true", help="print speed.json")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    from engine.jobs import BenchOptions, bench_run
    from engine.runs import speed_summary

    options = BenchOptions(device=args.device, batch_sizes=tuple(args.batch_sizes), threads=args.threads,
                           repeats=args.repeats, compile=not args.no_compile, onnx=not args.no_onnx)
    speed = bench_run(args.run, options, on_progress=lambda text: print(f"pfs: timing {text}", file=sys.stderr))
    if args.json:
        print_json(speed)
        return 0
    m = speed["machine"]
    print(f"{m['gpu'] or m['cpu']}, {m['threads']} threads, torch {m['torch']}, onnxruntime {m['onnxruntime']}")
    print(f"pruned weights: {speed['weights']}")
    print(f"{'engine':<13}{'batch':>6}{'dense':>22}{'pruned':>22}{'speed-up':>10}{'/MACs':>7}{'CPU time':>10}"
          "  torch mode")
    for row in speed["results"]:
        modes = "/".join(row[n].get("mode", "") for n in ("dense", "pruned")).strip("/")
        cpu = f"{row['cpu_speedup']:.2f}x" if row.get("cpu_speedup") else "-"
        print(f"{row['engine']:<13}{row['batch_size']:>6}{_cell(row['dense'], row['batch_size']):>22}"
              f"{_cell(row['pruned'], row['batch_size']):>22}{row['speedup']:>9.2f}x"
              f"{row['speedup'] / speed['macs_ratio']:>7.2f}{cpu:>10}  {modes}")
    for engine, why in speed["skipped"].items():
        print(f"{engine}: skipped, {why}")
    summary = speed_summary(speed)
    if summary is not None:
        print(summary.line())
    print(f"wrote {Path(args.run) / 'speed.json'}", file=sys.stderr)
    return 0


def _cell(stats: dict, batch: int) -> str:
    """Latency at batch 1 (median, p90), throughput at larger batches."""
    if batch == 1:
        return f"{stats['median_ms']:.2f} ms (p90 {stats['p90_ms']:.2f})"
    return f"{stats['images_per_s']:,.0f} img/s"


PARSERS = (_add_bench_parser,)
