"""Listing runs: what `pfs runs` and the explorer's Runs page show of each run directory."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RunError
from engine.events import EpochEnd, EvalEnd, RunFailed, RunFinished, RunStarted, StepEnd, StructureFound
from engine.runs.rundir import DEFAULT_ROOT, STALE_S, RunDir


@dataclass
class RunInfo:
    """What `pfs runs` and the TUI's runs screen show of one run."""

    name: str
    path: str
    model: str
    dataset: str
    stage: str
    status: str  # running | finished | failed | stopped | killed
    progress: float  # of the current stage, 0..1
    budget: float | None
    macs: int | None
    accuracy: float | None  # test accuracy of the trained structure (None before training)
    updated: float
    best_accuracy: float | None = None
    epoch: int | None = None
    total_epochs: int | None = None
    heldout_accuracy: float | None = None  # of the learned gates, on the held-out split

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def run_info(path: str | os.PathLike) -> RunInfo:
    """Summarise a run from its files and the tail of its events."""
    run = RunDir.open(path)
    config = run.config
    events = run.events()
    stage, status, progress, accuracy, heldout = config.get("stage", "learn"), "stopped", 0.0, None, None
    epoch = total_epochs = None
    ended = False  # the latest stage ended with a final event (finished, failed or stopped)
    for e in events:
        if isinstance(e, (StepEnd, EvalEnd, EpochEnd, RunFinished, RunFailed)):
            stage = e.stage
        if isinstance(e, (RunStarted, StepEnd, EpochEnd)):
            ended = False
        elif isinstance(e, (RunFinished, RunFailed)):
            ended = True
        if isinstance(e, StepEnd):
            progress, status = e.step / max(1, e.total_steps), "running"
        elif isinstance(e, EpochEnd):
            progress, status = e.epoch / max(1, e.total_epochs), "running"
            epoch, total_epochs = e.epoch, e.total_epochs
            if math.isfinite(e.test_acc):
                accuracy = e.test_acc
        elif isinstance(e, EvalEnd) and stage != "train" and math.isfinite(e.accuracy):
            heldout = e.accuracy
        elif isinstance(e, StructureFound):  # a new structure: what trained before no longer applies
            stage, status, progress, ended = "search", "finished", 1.0, True
            accuracy = epoch = total_epochs = None
        elif isinstance(e, RunFinished):
            stopped = e.summary.get("status") == "stopped"  # ended early on request, work kept
            status, progress = ("stopped", progress) if stopped else ("finished", 1.0)
        elif isinstance(e, RunFailed):
            status = "stopped" if e.error.startswith("stopped") else "failed"
    summary = run.read_json_or_empty("summary.json")
    structure = run.read_json_or_empty("structure.json")
    learned = summary.get("learn") if summary.get("stage") == "train" else summary
    if isinstance(learned, dict) and learned.get("heldout_acc") is not None:
        heldout = learned["heldout_acc"]  # the selected gates' accuracy, not the last evaluation's
    if summary.get("stage") == "train" and summary.get("test_acc") is not None:
        accuracy = summary["test_acc"]
    mtime = max((p.stat().st_mtime for p in run.path.iterdir() if p.is_file()), default=0.0)
    alive = run.owner_alive()
    if alive:
        status = "running"
    elif alive is False and (status == "running" or not ended):
        status = "killed"  # its process died without a final event: `pfs resume` continues it
    elif alive is None and status == "running" and time.time() - mtime > STALE_S:
        status = "stopped"
    return RunInfo(name=run.name, path=str(run.path), model=config.get("model", "?"),
                   dataset=config.get("dataset", "?"), stage=stage, status=status, progress=progress,
                   budget=structure.get("budget"), macs=structure.get("macs"), accuracy=accuracy,
                   updated=mtime, best_accuracy=summary.get("best_test_acc"), epoch=epoch,
                   total_epochs=total_epochs, heldout_accuracy=heldout)


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run under `root` (default ./runs or $PFS_RUNS), newest first; broken runs skipped."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        return []
    infos = []
    for child in root.iterdir():
        if (child / "config.json").is_file():
            try:
                infos.append(run_info(child))
            except RunError:
                continue
    return sorted(infos, key=lambda i: i.updated, reverse=True)
