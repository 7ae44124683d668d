"""GPU smoke test: one short CIFAR-shaped training through engine.training.train, epoch time and images/s,
then `pfs bench --device cuda` of the same pruned network.

Runs the real `train_run` path (device auto-selection, AMP, channels_last, the data set
held on the GPU, non-blocking copies) on a synthetic CIFAR-10-shaped set (50,000 train,
10,000 test images, 3x32x32), for the dense network and for a pruned one at a FLOPs
budget, and prints one line per epoch plus a summary table. CI has no GPU; run this by
hand on a CUDA machine:

    .venv/bin/python bench/gpu_smoke.py [--model resnet56] [--flops 0.5] [--epochs 3] [--no-amp]

The bench part (engine.jobs.speed, as `pfs bench RUN --device cuda`) times the dense and the
pruned network at batch 1 and --batch-size in PyTorch (channels_last, torch.compile where
it is faster) and in onnxruntime where it has the CUDA provider, and prints its rows.

Then gate learning under torchrun on the same device (bench/bench_learn_torchrun.py: nccl,
2 ranks where 2 GPUs are visible, else 1): ms per step and the gates against one process.

With --device cpu and --images 512 it also runs (slowly) anywhere, as a syntax check.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from engine.data import synthetic_dataset
from engine.events import EpochEnd
from engine.gating import create_model
from engine.jobs import BenchOptions, bench_run
from engine.runs import RunDir
from engine.search import search
from engine.training.train import TrainOptions, train_run


def make_run(path: Path, model: str, flops: float) -> RunDir:
    """A run directory holding the budget's structure (searched on seeded random gates)."""
    torch.manual_seed(0)
    net = create_model(model, num_classes=10, in_channels=3)
    gates = {g: torch.rand(w, generator=torch.Generator().manual_seed(1)) for g, w in net.widths.items()}
    run = RunDir.create(path, {"model": model, "dataset": "synthetic", "model_spec": net.spec, "seed": 0})
    run.write_json("structure.json", search(net, flops, (3, 32, 32), gates=gates).to_json())
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet56")
    p.add_argument("--flops", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-amp", action="store_true")
    args = p.parse_args()
    cuda = torch.cuda.is_available() and args.device != "cpu"
    print(f"torch {torch.__version__}, device: {torch.cuda.get_device_name() if cuda else 'cpu'}")
    data = synthetic_dataset(n_train=args.images, n_test=max(1000, args.images // 5), size=(3, 32, 32))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, flops in (("dense", 1.0), (f"pruned {args.flops:.0%}", args.flops)):
            run = make_run(Path(tmp) / name.split()[0], args.model, flops)

            def show(event, name=name):
                if isinstance(event, EpochEnd):
                    print(f"{name:<12} epoch {event.epoch}/{event.total_epochs}: {event.seconds:6.2f} s, "
                          f"{event.images_per_s:9.0f} images/s, test acc {event.test_acc:.3f}", flush=True)

            options = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                                   amp=cuda and not args.no_amp, workers=0)
            summary = train_run(run.path, options, on_event=show, data=data)
            # The first epoch includes cuDNN autotuning and allocator warm-up: report the rest.
            steady = summary["history"][1:] or summary["history"]
            rows.append((name, summary["macs"], sum(h["seconds"] for h in steady) / len(steady),
                         sum(h["images_per_s"] for h in steady) / len(steady)))
    print(f"\n{'network':<14}{'MACs':>12}{'s/epoch':>10}{'images/s':>12}")
    for name, macs, sec, ips in rows:
        print(f"{name:<14}{macs / 1e6:>11.1f}M{sec:>10.2f}{ips:>12.0f}")
    print(f"speed-up {rows[1][3] / rows[0][3]:.2f}x at {rows[1][1] / rows[0][1]:.2f} of the MACs")
    bench_speed(args.model, args.flops, "cuda" if cuda else "cpu", args.batch_size)
    learn_under_torchrun("cuda" if cuda else "cpu")


def bench_speed(model: str, flops: float, device: str, batch_size: int) -> None:
    """`pfs bench --device DEVICE` of a run at the budget: one line per engine and batch size."""
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "bench", model, flops)
        speed = bench_run(run.path, BenchOptions(device=device, batch_sizes=(1, batch_size), repeats=30))
    print(f"\npfs bench --device {device} ({speed['machine']['gpu'] or speed['machine']['cpu']})")
    for row in speed["results"]:
        d, p = row["dense"], row["pruned"]
        print(f"{row['engine']:<12} batch {row['batch_size']:>4}: dense {d['median_ms']:8.3f} ms "
              f"({d.get('mode', '')}), pruned {p['median_ms']:8.3f} ms ({p.get('mode', '')}), "
              f"speed-up {row['speedup']:.2f}x")
    for engine, why in speed["skipped"].items():
        print(f"{engine}: skipped, {why}")



def learn_under_torchrun(device: str) -> None:
    """Gate learning under torchrun on `device` (nccl on CUDA; a rank per GPU, at most 2)."""
    nproc = min(2, torch.cuda.device_count()) if device == "cuda" else 2
    print(f"\ngate learning under torchrun, {nproc} process(es) on {device}", flush=True)
    subprocess.run([sys.executable, str(Path(__file__).with_name("bench_learn_torchrun.py")), "--device", device,
                    "--nproc", str(nproc), "--steps", "30", "--dataset", "synthetic", "--model", "resnet56"],
                   check=True)


if __name__ == "__main__":
    main()
