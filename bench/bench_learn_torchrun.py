"""Gate learning under torchrun: wall time per step of 1 process and of N ranks, and their gates.

Runs `pfs learn` three ways on the same global batch and seed: one process with torch's
native BatchNorm kernel (`learn_run(batch_norm="native")`, what runs made before the
arithmetic was recorded used), one plain `pfs learn` process (its world-invariant
BatchNorm: the bit-for-bit reference), and `torchrun --nproc_per_node N`. A step's wall time is the gap
between consecutive step events in events.jsonl (evaluation steps excluded), median.

    .venv/bin/python bench/bench_learn_torchrun.py [--nproc 2] [--steps 40] [--batch-size 128] [--device cpu]
        [--dataset fashion-mnist]

bench/gpu_smoke.py runs it on CUDA (nccl; 2 ranks need 2 GPUs: nccl takes one GPU a rank).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from engine.cli import main as pfs
from engine.data import load_dataset
from engine.jobs import learn_run
from engine.learn import LearnConfig
from engine.learn_distributed import NATIVE
from engine.runs import load_tensors

TORCHRUN = Path(sys.executable).with_name("torchrun")


def step_seconds(run: Path) -> float:
    """Median wall time between consecutive steps that were not followed by an evaluation."""
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    times = {e["step"]: e["time"] for e in events if e["type"] == "step"}
    evaluated = {e["step"] for e in events if e["type"] == "eval_start"}
    gaps = [times[s] - times[s - 1] for s in sorted(times) if s - 1 in times and s - 1 not in evaluated]
    return statistics.median(gaps)


def gate_diff(a: Path, b: Path) -> float:
    ga, gb = load_tensors(a / "gates.pt"), load_tensors(b / "gates.pt")
    return max((ga[k] - gb[k]).abs().max().item() for k in ga)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dataset", default="fashion-mnist")
    args = p.parse_args()
    learn = ["learn", args.model, "--dataset", args.dataset, "--steps", str(args.steps),
             "--batch-size", str(args.batch_size), "--eval-every", str(args.steps), "--heldout-limit", "1000",
             "--device", args.device, "--quiet"]
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(threads))
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: Path(tmp) / name for name in ("native", "reference", "torchrun")}
        config = LearnConfig(steps=args.steps, batch_size=args.batch_size, eval_every=args.steps,
                             heldout_limit=1000, device=args.device)
        learn_run(runs["native"], model=args.model, dataset=args.dataset, learn=config,
                  data=load_dataset(args.dataset), batch_norm=NATIVE)
        assert pfs([*learn, "--out", str(runs["reference"])]) == 0
        subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", str(args.nproc), "-m", "engine", *learn,
                        "--out", str(runs["torchrun"])], check=True, env={**os.environ, "OMP_NUM_THREADS": threads})
        print(f"{args.model}, global batch {args.batch_size}, {args.steps} steps, {args.device}, "
              f"{threads} thread(s) per process")
        for name, run in runs.items():
            ranks = args.nproc if name == "torchrun" else 1
            print(f"{name:<10} {ranks} process(es): {1e3 * step_seconds(run):7.1f} ms/step (median)")
        print(f"max gate difference, torchrun vs reference: {gate_diff(runs['torchrun'], runs['reference']):.3g}; "
              f"vs native: {gate_diff(runs['torchrun'], runs['native']):.3g}")


if __name__ == "__main__":
    main()
