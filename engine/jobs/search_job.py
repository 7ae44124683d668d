"""The search job: a run's learned gates -> structure.json at a FLOPs budget."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.errors import PfsError, RunError
from engine.events import Event, StructureFound
from engine.runs import RunDir, load_gated_model
from engine.search import Structure, search


def search_run(run_path: str | Path, budget: float, *, min_channels: int = 1,
               on_event: Callable[[Event], None] | None = None) -> Structure:
    """Search the run's learned gates for a FLOPs budget and write structure.json."""
    run = RunDir.open(run_path)
    if not run.exists("gates.pt"):
        raise RunError(f"{run.path} has no learned gates yet; finish `pfs learn` (or `pfs resume {run.path}`) first")
    if not isinstance(budget, (int, float)) or not 0 < budget <= 1:
        raise PfsError(f"--flops must be a fraction of the dense model's MACs in (0, 1], got {budget}")
    net = load_gated_model(run.path)
    structure = search(net, budget, run.config.get("input_size"), min_channels=min_channels)
    run.write_json("structure.json", {**structure.to_json(), "dataset": run.config.get("dataset")})
    event = StructureFound(widths=structure.widths, macs=structure.macs, params=structure.params,
                           dense_macs=structure.dense_macs, budget=structure.budget,
                           threshold=structure.threshold, tied=structure.tied)
    with run.event_sink() as sink:
        sink(event)
    if on_event is not None:
        on_event(event)
    return structure
