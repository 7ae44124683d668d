"""Latency as a budget: the largest structure whose measured latency is at most T ms.

The same global gate ranking as the FLOPs search (engine.search.Candidates), bisected over
the number of kept channels; each probe is the pruned network built at fresh init (timing
does not depend on the weights) and timed (eager PyTorch, eval, channels_last, medians
over repeats after warm-up) in turn with the dense network, so that a machine whose load
changes during the search still ranks the probes as an idle one would. The structure
found is timed again on its own at the end: both numbers are reported and recorded in
structure.json.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from engine.errors import BudgetError, PfsError, StopRequested
from engine.jobs.search_job import check_searchable, write_structure
from engine.jobs.speed import check_device, median_latency_ms, median_time_ratio, torch_threads
from engine.prune import pruned_model
from engine.runs import RunDir, load_gated_model
from engine.runs.export import deployable
from engine.search import Candidates, Structure

REPEATS = 30  # per probe: a median of 30 calls moves by a few percent at most on a busy machine
BACKEND = "torch eager, eval, channels_last, float32"


@dataclass
class LatencyResult:
    """The structure found and its measured latency (during the search, and timed again after)."""

    structure: Structure
    budget_ms: float
    search_ms: float  # the final probe's median during the bisection
    measured_ms: float  # timed again once the search ended
    dense_ms: float
    smallest_ms: float
    probes: int
    device: str
    batch_size: int
    threads: int
    seconds: float  # wall time of the whole search

    def record(self) -> dict:
        """What structure.json keeps of the search beside the MACs."""
        return {"budget_ms": self.budget_ms, "measured_ms": self.measured_ms, "search_ms": self.search_ms,
                "dense_ms": self.dense_ms, "device": self.device, "batch_size": self.batch_size,
                "threads": self.threads, "backend": BACKEND, "probes": self.probes, "seconds": self.seconds}

    def caveats(self) -> list[str]:
        """What a user should know before trusting the result, one line each (none when all is well)."""
        out = []
        if self.structure.widths == self.structure.dense_widths:
            out.append(f"the dense network already meets {self.budget_ms:g} ms (it took {self.dense_ms:.3f} ms in "
                       "the search): nothing was pruned; lower --latency-ms to prune")
        if self.measured_ms > self.budget_ms:
            out.append(f"timed again, the structure took {self.measured_ms:.3f} ms, over the {self.budget_ms:g} ms "
                       f"budget it met in the search ({self.search_ms:.3f} ms): timings on this machine vary by "
                       f"{abs(self.measured_ms / self.search_ms - 1):.0%}; lower --latency-ms for a margin, or "
                       "search again on a quieter machine")
        return out


def search_by_latency(model, latency_ms: float, input_size=None, *, device: str = "cpu", batch_size: int = 1,
                      min_channels: int = 1, gates: Mapping[str, torch.Tensor] | None = None,
                      repeats: int = REPEATS, should_stop: Callable[[], bool] = lambda: False,
                      on_probe: Callable[[int, Structure, float], None] | None = None,
                      measure: Callable[[Structure], float] | None = None) -> LatencyResult:
    """The largest structure of the gated `model` whose median latency is <= `latency_ms`.

    `measure` gives a structure's latency in ms. By default each probe is timed in turn with
    the dense network, and its latency is the dense network's median times the median
    per-repeat ratio: a load that rises or falls during the search slows both alike, so
    it cannot reorder the probes. The structure found is then timed again on its own.
    """
    _check(latency_ms, device, batch_size)
    started = time.perf_counter()
    candidates = Candidates(model, input_size, min_channels=min_channels, gates=gates)
    size, probes = candidates.input_size, 0
    timing = {"batch_size": batch_size, "device": device, "repeats": repeats}
    if measure is None:
        reference = _built(candidates.structure(candidates.size))
        dense_ms = median_latency_ms(reference, size, **timing)

        def measure(structure: Structure) -> float:
            return dense_ms * median_time_ratio(_built(structure), reference, size, **timing)

        def again(structure: Structure) -> float:
            return median_latency_ms(_built(structure), size, **timing)
    else:
        again = measure

    def latency_at(k: int) -> float:
        nonlocal probes
        if should_stop():
            raise StopRequested("latency search stopped; nothing was written")
        structure = candidates.structure(k)
        ms = measure(structure)
        probes += 1
        if on_probe is not None:
            on_probe(k, structure, ms)
        return ms

    smallest = latency_at(0)
    if smallest > latency_ms:
        raise BudgetError(f"latency budget {latency_ms:g} ms is below the smallest structure's measured latency "
                          f"({smallest:.3f} ms at batch {batch_size} on {device}); raise --latency-ms to at "
                          f"least {math.ceil(smallest * 100) / 100:g}")
    dense = latency_at(candidates.size)
    lo, lo_ms, hi = 0, smallest, candidates.size  # invariant: latency_at(lo) <= budget
    if dense <= latency_ms:
        lo, lo_ms = hi, dense
    while lo < hi:
        mid = (lo + hi + 1) // 2
        ms = latency_at(mid)
        if ms <= latency_ms:
            lo, lo_ms = mid, ms
        else:
            hi = mid - 1
    structure = candidates.structure(lo)
    final = again(structure)
    return LatencyResult(structure=structure, budget_ms=float(latency_ms), search_ms=lo_ms, measured_ms=final,
                         dense_ms=dense, smallest_ms=smallest, probes=probes, device=device, batch_size=batch_size,
                         threads=torch.get_num_threads(), seconds=time.perf_counter() - started)


def _built(structure: Structure):
    """The structure's network as it is deployed (fresh init: timing does not depend on the values)."""
    return deployable(pruned_model(structure, seed=0))


def dense_latency_ms(model, input_size=None, *, device: str = "cpu", batch_size: int = 1,
                     repeats: int = REPEATS) -> float:
    """Median latency of the gated `model`'s network with every channel kept (a latency target's 1.0)."""
    _check(1.0, device, batch_size)
    ones = {g: torch.ones(w) for g, w in model.widths.items()}  # every channel is kept: values do not matter
    candidates = Candidates(model, input_size, gates=ones)
    return median_latency_ms(_built(candidates.structure(candidates.size)), candidates.input_size,
                             batch_size=batch_size, device=device, repeats=repeats)


def latency_search_run(run_path: str | os.PathLike, latency_ms: float, *, device: str = "cpu", batch_size: int = 1,
                       threads: int | None = None, min_channels: int = 1, overwrite: bool = False,
                       on_probe: Callable[[int, Structure, float], None] | None = None) -> LatencyResult:
    """Search the run's learned gates for a latency budget and write structure.json (with the latency)."""
    _check(latency_ms, device, batch_size)
    if threads is not None and threads < 1:
        raise PfsError(f"--threads must be a positive whole number, got {threads}")
    run = RunDir.open(run_path)
    check_searchable(run, overwrite)
    net = load_gated_model(run.path)
    with torch_threads(threads):
        result = search_by_latency(net, latency_ms, run.config.get("input_size"), device=device,
                                   batch_size=batch_size, min_channels=min_channels, on_probe=on_probe)
    write_structure(run, result.structure, {"latency": result.record()})
    return result


def _check(latency_ms: float, device: str, batch_size: int) -> None:
    """Refuse a bad budget, device or batch before anything is built or timed."""
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)) or not 0 < latency_ms < math.inf:
        raise PfsError(f"--latency-ms must be a positive number of milliseconds, got {latency_ms!r}")
    check_device(device)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PfsError(f"--batch-size must be a positive whole number, got {batch_size!r}")
