"""Measured speed of a run's dense and pruned networks: `pfs bench RUN` -> RUN/speed.json.

Fewer MACs need not mean faster ("FLOPs are not latency"), so the pruned network is timed
against the dense one it came from, in PyTorch (eval, channels_last, torch.compile kept
where it is faster) and in onnxruntime on the exported ONNX. The two networks are timed in
one process, interleaved call by call (so a busy neighbour slows both alike), and every
figure is a median over repeats with warm-up calls excluded. Each call's CPU time is kept
beside its wall time: on a shared machine the process waits for a core, which inflates the
wall clock but not the CPU time, so the CPU-time speed-up is the cross-check (and a timing
that got under BUSY_SHARE of a core says so). A structure without trained weights is timed
at a fresh init: the time of a forward pass does not depend on the values.
"""
from __future__ import annotations

import copy
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.errors import PfsError, PfsWarning
from engine.flops import count_macs
from engine.prune import pruned_model
from engine.runs import RunDir, load_structure
from engine.runs.artifacts import check_structure
from engine.runs.export import WEIGHTS, deployable, load_pruned
from engine.runs.speed_record import BUSY_SHARE, SPEED_FILE
from engine.search import Structure

DEVICES = ("cpu", "cuda")
FRESH_NOTE = "fresh init: the structure has no trained weights yet, and timing does not depend on their values"


def check_device(device: str) -> None:
    """Refuse a device name pfs cannot time on, or CUDA where PyTorch sees none."""
    if device not in DEVICES:
        raise PfsError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise PfsError("--device cuda: PyTorch sees no CUDA device here; use --device cpu")


@dataclass
class BenchOptions:
    """How `pfs bench` times: device, batch sizes (the smallest gives latency), threads, repeats."""

    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (1, 64)
    threads: int | None = None  # default: torch's current count (OMP_NUM_THREADS)
    repeats: int = 20
    warmup: int = 3
    compile: bool = True  # try torch.compile and keep it where it is faster
    onnx: bool = True

    def check(self) -> None:
        check_device(self.device)
        if not self.batch_sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                                       for b in self.batch_sizes):
            raise PfsError(f"--batch-sizes must be positive whole numbers, got {list(self.batch_sizes)}")
        if self.threads is not None and self.threads < 1:
            raise PfsError(f"--threads must be a positive whole number, got {self.threads}")
        if self.repeats < 3:
            raise PfsError(f"--repeats must be at least 3 (a median of fewer is noise), got {self.repeats}")


def bench_run(run_path: str | os.PathLike, options: BenchOptions | None = None, *,
              on_progress: Callable[[str], None] | None = None) -> dict:
    """Time the run's dense and pruned networks and write RUN/speed.json; returns its payload."""
    options = options or BenchOptions()
    options.check()
    say = on_progress or (lambda _text: None)
    run = RunDir.open(run_path)
    structure = load_structure(run.path)
    check_structure(structure, run.config, run.file("structure.json"))
    run.check_not_in_use()  # a training beside the benchmark would time the training
    dense, pruned, weights, pruned_macs = _networks(run, structure)
    with torch_threads(options.threads) as threads:
        results, skipped = [], {}
        for batch in sorted(set(options.batch_sizes)):
            say(f"torch, batch {batch}")
            results.append(_torch_row(dense, pruned, structure.input_size, batch, options))
        if options.onnx:
            rows, why = _onnx_rows(dense, pruned, structure.input_size, options, threads, say)
            results += rows
            if why:
                skipped["onnxruntime"] = why
        share = cpu_share(results, threads, options.device)
        _warn_if_busy(share)
        payload = {"version": 1, "created": time.time(), "device": options.device, "weights": weights,
                   "input_size": list(structure.input_size),
                   "macs": {"dense": structure.dense_macs, "pruned": pruned_macs},
                   "macs_ratio": structure.dense_macs / pruned_macs,
                   "repeats": options.repeats, "warmup": options.warmup,
                   "machine": machine(options.device, threads), "cpu_share": share,
                   "results": results, "skipped": skipped}
    with run.owned("bench"):
        run.write_json(SPEED_FILE, payload)
    return payload


def cpu_share(results: list[dict], threads: int, device: str) -> float | None:
    """CPU time over wall time of the median calls, one thread on the CPU: 1.0 on an idle core,
    lower when the process waited for a core (None where CPU time is not a latency)."""
    if device != "cpu" or threads != 1 or not results:
        return None
    timed = [row[n] for row in results for n in ("dense", "pruned")]
    return sum(s["cpu_median_ms"] for s in timed) / sum(s["median_ms"] for s in timed)


def _warn_if_busy(share: float | None) -> None:
    if share is not None and share < BUSY_SHARE:
        warnings.warn(f"while timing, this process got {share:.0%} of a core (load average "
                      f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores): wall-clock times are inflated; "
                      "trust the CPU-time speed-ups, or time again on a quieter machine", PfsWarning, stacklevel=3)


def _networks(run: RunDir, structure: Structure) -> tuple[nn.Module, nn.Module, str, int]:
    """(dense, pruned, where the pruned weights come from, pruned MACs): plain eval networks.

    The dense network is the run's model at its dense widths, built as the pruned one is;
    model code a run names runs only when trusted (the builders check it). A training with
    --expand widened the pruned network, so its MACs are counted at that width.
    """
    summary = run.read_json_or_empty("summary.json")
    trained = summary.get("stage") == "train" and summary.get("status") == "finished" and run.exists(WEIGHTS)
    torch.manual_seed(0)
    full = {g: list(range(w)) for g, w in structure.dense_widths.items()}
    dense = deployable(pruned_model(replace(structure, widths=dict(structure.dense_widths), keep=full)))
    if not trained:
        return dense, deployable(pruned_model(structure, seed=0)), FRESH_NOTE, structure.macs
    expand = float(summary.get("expand") or run.config.get("train", {}).get("expand") or 1.0)  # as load_pruned
    macs = structure.macs if expand == 1.0 else count_macs(pruned_model(structure, expand=expand),
                                                             structure.input_size)
    return dense, load_pruned(run.path), "trained (model.safetensors)", macs


@contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op thread count set for the block (and restored), yielding the count used."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# -- timing -------------------------------------------------------------------------------


@dataclass
class Samples:
    """Seconds per timed call: wall clock, and this process's CPU time over the same call.

    Wall time is the latency a user sees. CPU time is the cross-check on a shared machine:
    with one thread it is the latency an idle core would give, untouched by the time the
    process waited for a core (with more threads it sums them, and is not a latency).
    """

    wall: list[float]
    cpu: list[float]


def time_interleaved(calls: dict[str, Callable[[], object]], repeats: int, warmup: int,
                     sync: Callable[[], None] = lambda: None) -> dict[str, Samples]:
    """Each callable's timed calls, called in turn each repeat (order reversed every other
    repeat, so neither always runs first), after `warmup` untimed calls of each."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    sync()
    times = {name: Samples([], []) for name in calls}
    names = list(calls)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            calls[name]()
            sync()
            times[name].cpu.append(time.process_time() - cpu)
            times[name].wall.append(time.perf_counter() - wall)
    return times


def stats(samples: Samples, batch: int) -> dict:
    """Median and p90 milliseconds per call, images per second at the median, median CPU ms."""
    median = float(np.median(samples.wall))
    return {"median_ms": median * 1e3, "p90_ms": float(np.percentile(samples.wall, 90)) * 1e3,
            "images_per_s": batch / median, "cpu_median_ms": float(np.median(samples.cpu)) * 1e3,
            "repeats": len(samples.wall)}


def _speedups(row: dict) -> dict:
    """The row with dense/pruned ratios of the median wall time and of the median CPU time."""
    dense, pruned = row["dense"], row["pruned"]
    return {**row, "speedup": dense["median_ms"] / pruned["median_ms"],
            "cpu_speedup": dense["cpu_median_ms"] / pruned["cpu_median_ms"] if pruned["cpu_median_ms"] > 0 else None}


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _prepared(model: nn.Module, device: str) -> nn.Module:
    """A copy of the network as it is timed in PyTorch: eval, on the device, channels_last."""
    return copy.deepcopy(model).eval().to(device=device, memory_format=torch.channels_last)


def _forward(model: Callable, x: torch.Tensor) -> Callable[[], object]:
    def call():
        with torch.no_grad():
            return model(x)
    return call


def _input(batch_size: int, input_size: Sequence[int], device: str) -> torch.Tensor:
    return torch.randn(batch_size, *input_size, device=device).contiguous(memory_format=torch.channels_last)


def median_latency_ms(model: nn.Module, input_size: Sequence[int], *, batch_size: int = 1, device: str = "cpu",
                      repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of one eager forward pass (eval, channels_last) of `model`."""
    x = _input(batch_size, input_size, device)
    samples = time_interleaved({"net": _forward(_prepared(model, device), x)}, repeats, warmup, _sync(device))["net"]
    return float(np.median(samples.wall)) * 1e3


def median_time_ratio(model: nn.Module, reference: nn.Module, input_size: Sequence[int], *, batch_size: int = 1,
                      device: str = "cpu", repeats: int = 20, warmup: int = 3) -> float:
    """Median over repeats of `model`'s time over `reference`'s, the two called in turn (eager,
    eval, channels_last): a load that changes while they are timed slows both alike."""
    x = _input(batch_size, input_size, device)
    calls = {"reference": _forward(_prepared(reference, device), x), "model": _forward(_prepared(model, device), x)}
    times = time_interleaved(calls, repeats, warmup, _sync(device))
    return float(np.median(np.array(times["model"].wall) / np.array(times["reference"].wall)))


def _torch_row(dense: nn.Module, pruned: nn.Module, input_size: Sequence[int], batch: int,
               options: BenchOptions) -> dict:
    """One batch size in PyTorch: eager and (where it compiles) compiled, the faster kept per network."""
    device = options.device
    x = _input(batch, input_size, device)
    calls, notes = {}, {}
    for name, model in (("dense", dense), ("pruned", pruned)):
        net = _prepared(model, device)
        calls[f"{name}/eager"] = _forward(net, x)
        if options.compile:
            compiled, note = _compiled(net, x)
            if compiled is not None:
                calls[f"{name}/compiled"] = compiled
            notes[name] = note
    times = time_interleaved(calls, options.repeats, options.warmup, _sync(device))
    row = {"engine": "torch", "batch_size": batch}
    for name in ("dense", "pruned"):
        tried = {mode.split("/")[1]: float(np.median(t.wall)) * 1e3 for mode, t in times.items()
                 if mode.startswith(name + "/")}
        mode = min(tried, key=tried.get)
        row[name] = {**stats(times[f"{name}/{mode}"], batch), "mode": mode, "tried_ms": tried,
                     **({"compile": notes[name]} if name in notes else {})}
    return _speedups(row)


def _compiled(net: nn.Module, x: torch.Tensor) -> tuple[Callable | None, str]:
    """torch.compile's forward of `net` at x's shape, compiled now, and what happened ('12.3 s' or why not)."""
    start = time.perf_counter()
    try:
        fn = _forward(torch.compile(net, dynamic=False), x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
    except Exception as exc:  # no C++ compiler, an unsupported op, ...: eager it is, and the reason is kept
        return None, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    return fn, f"compiled in {time.perf_counter() - start:.1f} s"


def _onnx_rows(dense: nn.Module, pruned: nn.Module, input_size: Sequence[int], options: BenchOptions,
               threads: int, say: Callable[[str], None]) -> tuple[list[dict], str]:
    """Rows for onnxruntime on each network's exported ONNX, or ([], why it was skipped)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return [], "onnxruntime is not installed (pip install onnxruntime)"
    provider = "CUDAExecutionProvider" if options.device == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        return [], f"this onnxruntime has no {provider} (pip install onnxruntime-gpu)"
    rows = []
    with tempfile.TemporaryDirectory(prefix="pfs-bench-") as tmp:
        sessions = {name: _session(ort, model, input_size, Path(tmp) / f"{name}.onnx", provider, threads)
                    for name, model in (("dense", dense), ("pruned", pruned))}
        for batch in sorted(set(options.batch_sizes)):
            say(f"onnxruntime, batch {batch}")
            x = np.random.default_rng(0).standard_normal((batch, *input_size)).astype(np.float32)
            calls = {name: (lambda s=s, x=x: s.run(None, {"input": x})) for name, s in sessions.items()}
            times = time_interleaved(calls, options.repeats, options.warmup)
            rows.append(_speedups({"engine": "onnxruntime", "batch_size": batch, "provider": provider,
                                   **{name: stats(times[name], batch) for name in sessions}}))
    return rows, ""


def _session(ort, model: nn.Module, input_size: Sequence[int], path: Path, provider: str, threads: int):
    """An onnxruntime session on the network exported to `path` (batch axis dynamic)."""
    x = torch.randn(1, *input_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(copy.deepcopy(model).cpu().eval(), (x,), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=[provider])


def machine(device: str, threads: int) -> dict:
    """What the numbers were measured on: CPU model, threads, library versions, GPU, load."""
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "onnxruntime": ort_version, "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "python": platform.python_version(), "load_average": list(os.getloadavg())}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

