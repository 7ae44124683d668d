"""The search job: a run's learned gates -> structure.json at a FLOPs budget (and the checks and
the writing that the latency search shares)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.errors import PfsError, RunError, shell_path
from engine.events import Event, StructureFound
from engine.runs import RunDir, load_gated_model
from engine.runs.export import WEIGHTS
from engine.runs.speed_record import SPEED_FILE
from engine.search import Structure, search
from engine.training import CHECKPOINT as TRAIN_CHECKPOINT


def search_run(run_path: str | Path, budget: float, *, min_channels: int = 1,
               on_event: Callable[[Event], None] | None = None, overwrite: bool = False) -> Structure:
    """Search the run's learned gates for a FLOPs budget and write structure.json.

    A run that has been trained keeps its structure: a new one would sit beside the old
    training's accuracy, so it is refused unless `overwrite`, which discards that training.
    """
    run = RunDir.open(run_path)
    if not isinstance(budget, (int, float)) or not 0 < budget <= 1:
        raise PfsError(f"--flops must be a fraction of the dense model's MACs in (0, 1], got {budget}")
    check_searchable(run, overwrite)
    net = load_gated_model(run.path)
    structure = search(net, budget, run.config.get("input_size"), min_channels=min_channels)
    event = write_structure(run, structure)
    if on_event is not None:
        on_event(event)
    return structure


def check_searchable(run: RunDir, overwrite: bool) -> None:
    """Refuse a run without learned gates, or a trained one unless `overwrite` (before any work)."""
    if not run.exists("gates.pt"):
        raise RunError(f"{run.path} has no learned gates yet; finish `pfs learn` "
                       f"(or `pfs resume {shell_path(run.path)}`) first")
    if trained(run) and not overwrite:
        raise RunError(f"{run.path} has been trained on its current structure; search a copy instead "
                       f"(`pfs train {shell_path(run.path)} --out NEW ...` keeps several trainings) or add --overwrite "
                       "to replace the structure and discard that training")


def write_structure(run: RunDir, structure: Structure, extra: dict | None = None) -> StructureFound:
    """Write structure.json (with `extra` fields beside the structure's) and its event.

    A new structure discards the training of the old one (its checkpoint, weights, summary)
    and the old one's measured speed.
    """
    with run.owned("search"):
        if trained(run):
            _discard_training(run)
        run.file(SPEED_FILE).unlink(missing_ok=True)
        run.write_json("structure.json", {**structure.to_json(), "dataset": run.config.get("dataset"),
                                          **(extra or {})})
        event = StructureFound(widths=structure.widths, macs=structure.macs, params=structure.params,
                               dense_macs=structure.dense_macs, budget=structure.budget,
                               threshold=structure.threshold, tied=structure.tied)
        with run.event_sink() as sink:
            sink(event)
    return event


def trained(run: RunDir) -> bool:
    """Whether the run holds a training of its structure (started or finished)."""
    return ("train" in run.config or run.exists(TRAIN_CHECKPOINT)
            or run.read_json_or_empty("summary.json").get("stage") == "train")


def _discard_training(run: RunDir) -> None:
    """Forget a training whose structure is being replaced (its checkpoint, options, summary)."""
    summary = run.read_json_or_empty("summary.json")  # first: a damaged one is refused before anything goes
    run.file(TRAIN_CHECKPOINT).unlink(missing_ok=True)
    run.file(WEIGHTS).unlink(missing_ok=True)  # trained for the old structure: never exported again
    config = {k: v for k, v in run.config.items() if k != "train"}
    run.write_json("config.json", config)
    if summary.get("stage") == "train":
        learn = summary.get("learn")
        if learn:
            run.write_json("summary.json", learn)
        else:
            run.file("summary.json").unlink(missing_ok=True)
