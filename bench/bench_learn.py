"""Benchmark: one gate-learning step against a forward pass, a training step and the paper's way.

All variants run on the same random batch in one process, interleaved round by round, and
the table reports medians and ratios, so that a shared, noisy machine moves them together.

  forward          dense forward pass, BN batch statistics (as in learning), no autograd
  learn (engine)   engine.learn's step: frozen weights, gates-only Adam, clamp, metrics, event
  learn (NCHW)     the same frozen-weight step on the default memory format (a plain prototype)
  paper's way      weights left requiring grad (their gradients are computed), only gates in Adam
  full training    forward + backward + SGD (momentum, weight decay), every weight trainable

Peak memory is the peak RSS of a child process that runs only that variant.

    .venv/bin/python bench/bench_learn.py [--repeats 10] [--threads 2] [--model resnet56]
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from engine.data import synthetic_dataset
from engine.events import StepEnd
from engine.gating import create_model
from engine.learn import LearnConfig, _Loop, learn_gates
from engine.learn_distributed import global_batch_norm

CL = torch.channels_last
NCHW = torch.contiguous_format


def tune_malloc() -> bool:
    """Keep freed activations in glibc's heap instead of returning them to the OS.

    By default glibc serves the 8 MB activations of ResNet's first stage with mmap or trims
    them from the heap on free, so each step page-faults fresh memory (tens of thousands
    of minor faults for a forward pass). Real runs get the same with MALLOC_MMAP_THRESHOLD_
    / MALLOC_TRIM_THRESHOLD_ in the environment, or jemalloc/tcmalloc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 31))


# -- the variants -------------------------------------------------------------------------
def make_forward(model, x, fmt):
    model = copy.deepcopy(model).to(memory_format=fmt).train()
    x = x.contiguous(memory_format=fmt)

    def step():
        with torch.no_grad():
            model(x)
    return step


def make_engine_learn(model, x, y):
    """engine.learn's own training step (the code learn_gates runs), on a fixed batch."""
    model = copy.deepcopy(model).to(memory_format=CL)
    data = synthetic_dataset(n_train=256, n_test=8, size=tuple(x.shape[1:]))
    loop = _Loop(model, data, data, LearnConfig(batch_size=x.shape[0], steps=10**6), lambda e: None,
                 torch.device("cpu"))
    return lambda: loop._train_step(x, y, time.perf_counter())


def make_world_invariant_learn(model, x, y):
    """The engine's step inside the BatchNorm that `pfs learn` runs (world-invariant sums)."""
    step = make_engine_learn(model, x, y)

    def run():
        with global_batch_norm():
            step()
    return run


def make_plain_learn(model, x, y, fmt):
    """Frozen weights, gates in Adam, clamp: the straightforward version, in format `fmt`."""
    model = copy.deepcopy(model).to(memory_format=fmt).train()
    x = x.contiguous(memory_format=fmt)
    gates = [g.weight for g in model.gates().values()]
    for p in model.parameters():
        p.requires_grad_(False)
    for g in gates:
        g.requires_grad_(True)
    opt = torch.optim.Adam(gates, lr=0.01)
    return lambda: _gate_step(model, x, y, gates, opt)


def make_paper_way(model, x, y, fmt):
    """As the paper's code: every weight still requires grad, only the gates are optimised."""
    model = copy.deepcopy(model).to(memory_format=fmt).train()
    x = x.contiguous(memory_format=fmt)
    gates = [g.weight for g in model.gates().values()]
    opt = torch.optim.Adam(gates, lr=0.01)

    def step():
        model.zero_grad(set_to_none=True)
        _gate_step(model, x, y, gates, opt)
    return step


def _gate_step(model, x, y, gates, opt):
    flat = torch.cat(gates)
    loss = F.cross_entropy(model(x), y) + 0.5 * (flat.abs().mean() - 0.2) ** 2
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        for g in gates:
            g.clamp_(0, 1)


def make_train(model, x, y, fmt):
    model = copy.deepcopy(model).to(memory_format=fmt).train()
    x = x.contiguous(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def make_compiled_forward(model, x, y):
    """torch.compile'd forward (inductor fuses BN, ReLU and adds around the oneDNN convs)."""
    model = torch.compile(copy.deepcopy(model).to(memory_format=CL).train())
    x = x.contiguous(memory_format=CL)

    def step():
        with torch.no_grad():
            model(x)
    return step


def make_compiled_learn(model, x, y):
    """The frozen-weight gate step with the network torch.compile'd (not what the engine runs)."""
    model = copy.deepcopy(model).to(memory_format=CL).train()
    gates = [g.weight for g in model.gates().values()]
    for p in model.parameters():
        p.requires_grad_(False)
    for g in gates:
        g.requires_grad_(True)
    compiled = torch.compile(model)
    opt = torch.optim.Adam(gates, lr=0.01)
    return lambda: _gate_step(compiled, x.contiguous(memory_format=CL), y, gates, opt)


VARIANTS = {
    # name: (label, factory(model, x, y))
    "fwd": ("forward, NHWC (channels_last)", lambda m, x, y: make_forward(m, x, CL)),
    "fwd_nchw": ("forward, NCHW (default layout)", lambda m, x, y: make_forward(m, x, NCHW)),
    "learn": ("learn step, engine (NHWC, frozen weights), native BatchNorm", make_engine_learn),
    "learn_wi": ("learn step, engine, world-invariant BatchNorm (pfs learn's)", make_world_invariant_learn),
    "learn_nchw": ("learn step, plain NCHW prototype", lambda m, x, y: make_plain_learn(m, x, y, NCHW)),
    "paper": ("paper's way, NHWC (weight grads computed)", lambda m, x, y: make_paper_way(m, x, y, CL)),
    "paper_nchw": ("paper's way, NCHW", lambda m, x, y: make_paper_way(m, x, y, NCHW)),
    "train": ("full training step, NHWC (fwd+bwd+SGD)", lambda m, x, y: make_train(m, x, y, CL)),
    "train_nchw": ("full training step, NCHW", lambda m, x, y: make_train(m, x, y, NCHW)),
    # Only with --compile (minutes of compilation on 2 cores):
    "fwd_compiled": ("forward, NHWC, torch.compile", make_compiled_forward),
    "learn_compiled": ("learn step, NHWC, torch.compile (not in the engine)", make_compiled_learn),
}
COMPILED = ("fwd_compiled", "learn_compiled")


def build(args):
    torch.manual_seed(0)
    model = create_model(args.model)
    c, h, w = model.default_input_size
    x = torch.randn(args.batch, c, h, w)
    y = torch.randint(0, model.num_classes, (args.batch,))
    return model, x, y


def measure(args, names: list[str]) -> dict[str, list[float]]:
    model, x, y = build(args)
    steps = {n: VARIANTS[n][1](model, x, y) for n in names}
    for _ in range(args.warmup):
        for n in names:
            steps[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.repeats):
        # Rotate the order each round so that no variant always follows the same one.
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            start = time.perf_counter()
            steps[n]()
            times[n].append(time.perf_counter() - start)
    return times


def end_to_end(args) -> float:
    """Median seconds per step of learn_gates itself (batching and augmentation included)."""
    model, x, _ = build(args)
    data = synthetic_dataset(n_train=args.batch * (args.e2e_steps + 2), n_test=8, size=tuple(x.shape[1:]))
    stamps = []
    cfg = LearnConfig(batch_size=args.batch, steps=args.e2e_steps, heldout_limit=8, snapshot_every=0)
    learn_gates(model, data, cfg, on_event=lambda e: stamps.append(time.perf_counter())
                if isinstance(e, StepEnd) else None)
    return statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:]))


def peak_rss_mib(args, name: str) -> float:
    """Peak RSS (MiB) of a child process that builds the model and runs only `name`."""
    cmd = [sys.executable, __file__, "--peak-of", name, "--model", args.model, "--batch", str(args.batch),
           "--threads", str(torch.get_num_threads())] + (["--no-malloc-tuning"] if args.no_malloc_tuning else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def _child_peak(args) -> None:
    model, x, y = build(args)
    step = VARIANTS[args.peak_of][1](model, x, y)
    for _ in range(3):
        step()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from the parent.
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    print(int(status["VmHWM"].split()[0]) / 1024)  # kB


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet56")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10, help="timed rounds (each runs every variant once)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--variants", default=",".join(v for v in VARIANTS if v not in COMPILED),
                   help="comma-separated subset of: " + ",".join(VARIANTS))
    p.add_argument("--compile", action="store_true", help="add the torch.compile variants (slow to build)")
    p.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default mmap/trim thresholds")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--e2e-steps", type=int, default=6, help="learn_gates steps for the end-to-end row (0: skip)")
    p.add_argument("--profile", action="store_true", help="also print the profiler's top ops of a learn step")
    p.add_argument("--peak-of", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = False if args.no_malloc_tuning else tune_malloc()
    if args.peak_of:
        _child_peak(args)
        return 0

    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    if args.compile:
        names += [n for n in COMPILED if n not in names]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    times = measure(args, names)
    med = {n: statistics.median(v) for n, v in times.items()}
    e2e = end_to_end(args) if args.e2e_steps > 2 else None
    peaks = {} if args.no_memory else {n: peak_rss_mib(args, n) for n in names
                                        if n.startswith(("learn", "paper", "train")) and n not in COMPILED}
    report(args, names, med, times, e2e, peaks, tuned)
    if args.profile:
        profile(args)
    return 0


def report(args, names, med, times, e2e, peaks, tuned) -> None:
    base = {"fwd": med.get("fwd"), "train": med.get("train"), "learn": med.get("learn")}
    print(f"Gate learning step, {args.model}, batch {args.batch}, torch threads {torch.get_num_threads()}, "
          f"glibc malloc tuned: {'yes' if tuned else 'no'}, {args.repeats} rounds (medians)\n")
    print("| variant | median ms | min ms | x forward NHWC | x training NHWC | x learn | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def ratio(a, b):
        return f"{a / b:.2f}" if a and b else "-"
    for n in names:
        print(f"| {VARIANTS[n][0]} | {med[n] * 1e3:.0f} | {min(times[n]) * 1e3:.0f} | {ratio(med[n], base['fwd'])} | "
              f"{ratio(med[n], base['train'])} | {ratio(med[n], base['learn'])} | "
              f"{peaks.get(n, float('nan')):.0f} |")
    if e2e is not None:
        print(f"| learn_gates end to end (batching, augmentation, events) | {e2e * 1e3:.0f} | - | "
              f"{ratio(e2e, base['fwd'])} | {ratio(e2e, base['train'])} | {ratio(e2e, base['learn'])} | - |")
    if all(base.values()):
        goals = [("learn / forward <= 2.0", med["learn"] / med["fwd"], lambda v: v <= 2.0),
                 ("learn / full training <= 0.35", med["learn"] / med["train"], lambda v: v <= 0.35)]
        if "paper" in med:
            goals.append(("paper's way / learn >= 1.5", med["paper"] / med["learn"], lambda v: v >= 1.5))
        if "learn_compiled" in med and "fwd_compiled" in med:
            goals.append(("(info) compiled learn / compiled forward", med["learn_compiled"] / med["fwd_compiled"],
                          lambda v: v <= 2.0))
        if "learn" in peaks:
            goals.append(("learn peak RSS < 2048 MiB", peaks["learn"], lambda v: v < 2048))
        print("\n| goal | measured | met |\n|---|---:|---|")
        for label, value, ok in goals:
            print(f"| {label} | {value:.2f} | {'yes' if ok(value) else 'NO'} |")


def profile(args) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model, x, y = build(args)
    step = make_engine_learn(model, x, y)
    for _ in range(2):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    print("\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    sys.exit(main())
