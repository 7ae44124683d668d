"""Listing runs: what `pfs runs` and the explorer's Runs page show of each run directory.

Listing never fails and never hides a run: a file that cannot be read (bad bytes, not
JSON, wrong types, a torn events log) is named in `RunInfo.corrupt` and the rest of the
run is shown as usual. Only the tail of events.jsonl is read: the summary needs the last
event of a few kinds, and a 160-epoch training log is long.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.events import (
    CheckpointSaved,
    EpochEnd,
    EvalEnd,
    Event,
    RunFailed,
    RunFinished,
    RunStarted,
    StepEnd,
    StructureFound,
    parse_event,
)
from engine.runs.rundir import DEFAULT_ROOT, STALE_S, RunDir
from engine.runs.schema import config_problem, structure_problem
from engine.runs.speed_record import SPEED_FILE, speed_summary

TAIL_BLOCK = 64 * 1024  # bytes read per step backwards through events.jsonl
WRITING_S = 10.0  # a log touched this recently may end in a line its writer is still finishing


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
    corrupt: str | None = None  # the run's unreadable files ("events.jsonl, structure.json"), else None
    speedup: float | None = None  # measured by `pfs bench`: dense / pruned time in torch at the smallest batch
    world_size: int = 1  # processes its latest stage ran on (torchrun), from summary.json or config.json

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


FIELDS = ("stage", "ended", "status", "progress", "accuracy", "epoch", "heldout", "checkpoint", "total")


@dataclass
class _Tail:
    """What the events decide, taken from the newest event backwards: the first of a kind wins.

    The same answer as folding the whole log forwards (latest event of each kind), where a
    StructureFound clears what an earlier training showed (a new structure is not trained yet).
    """

    stage: str | None = None
    ended: bool = False  # the latest stage ended with a final event (finished, failed or stopped)
    status: str | None = None
    progress: float | None = None
    accuracy: float | None = None
    epoch: EpochEnd | None = None
    heldout: float | None = None
    checkpoint: CheckpointSaved | None = None  # the newest: where `pfs resume` continues a killed run
    total: int | None = None  # total steps of the newest StepEnd's stage
    corrupt: bool = False
    found: set = field(default_factory=set)

    def done(self) -> bool:
        # Where a killed run resumes matters only to a log without a final event at its end.
        needed = set(FIELDS) - ({"checkpoint", "total"} if self.ended else set())
        return self.found >= needed

    def offer(self, e: Event) -> None:
        if isinstance(e, (StepEnd, EvalEnd, EpochEnd, RunFinished, RunFailed)):
            self._set("stage", e.stage)
        if isinstance(e, (RunStarted, StepEnd, EpochEnd)):
            self._set("ended", False)
        elif isinstance(e, (RunFinished, RunFailed, StructureFound)):
            self._set("ended", True)
        if isinstance(e, CheckpointSaved):
            self._set("checkpoint", e)
        if isinstance(e, StepEnd):
            self._set("total", e.total_steps)
            self._set("status", "running")
            self._set("progress", e.step / max(1, e.total_steps))
        elif isinstance(e, EpochEnd):
            self._set("status", "running")
            self._set("progress", e.epoch / max(1, e.total_epochs))
            self._set("epoch", e)
            if e.stage != "train":  # learning's epochs measure held-out gates, not the test split
                self._set("accuracy", None)
            elif math.isfinite(e.test_acc):
                self._set("accuracy", e.test_acc)
        elif isinstance(e, EvalEnd) and e.stage != "train" and math.isfinite(e.accuracy):
            self._set("heldout", e.accuracy)
        elif isinstance(e, StructureFound):  # a new structure: what trained before no longer applies
            for name, value in (("stage", "search"), ("status", "finished"), ("progress", 1.0),
                                ("accuracy", None), ("epoch", None)):
                self._set(name, value)
        elif isinstance(e, RunFinished):
            stopped = e.summary.get("status") == "stopped"  # ended early on request, work kept
            self._set("status", "stopped" if stopped else "finished")
            if not stopped:
                self._set("progress", 1.0)
        elif isinstance(e, RunFailed):
            self._set("status", "stopped" if e.error.startswith("stopped") else "failed")

    def _set(self, name: str, value) -> None:
        if name not in self.found:
            self.found.add(name)
            setattr(self, name, value)


def run_info(path: str | os.PathLike) -> RunInfo:
    """Summarise a run from its files and the tail of its events; never raises for a run folder."""
    run = RunDir(path)
    corrupt: list[str] = []
    config = _json_object(run, "config.json", corrupt)
    if config_problem(config):
        corrupt.append("config.json")
        config = {k: v for k, v in config.items() if k not in ("model", "dataset") or isinstance(v, str)}
    summary = _json_object(run, "summary.json", corrupt)
    learned = summary.get("learn", {}) if summary.get("stage") == "train" else summary
    if not (isinstance(learned, dict) and all(_number(d.get(k)) for d in (summary, learned)
                                              for k in ("test_acc", "best_test_acc", "heldout_acc"))):
        corrupt.append("summary.json")
        summary = learned = {}
    heldout, best = learned.get("heldout_acc"), summary.get("best_test_acc")
    accuracy = summary.get("test_acc") if summary.get("stage") == "train" else None
    # What summary.json gives, the events need not: a trained run's log is not read back
    # to its learning stage for the gates' accuracy.
    known = {name for name, value in (("accuracy", accuracy), ("heldout", heldout)) if value is not None}
    tail = _read_tail(run.events_path, known)
    if tail.corrupt:
        corrupt.append("events.jsonl")
    structure = _json_object(run, "structure.json", corrupt)
    budget, macs = structure.get("budget"), structure.get("macs")
    if (not _number(budget) or not (macs is None or (isinstance(macs, int) and not isinstance(macs, bool)))
            or structure_problem(structure, config)):
        corrupt.append("structure.json")
        budget = macs = None
    speed = _json_object(run, SPEED_FILE, corrupt)
    measured = speed_summary(speed) if speed else None
    if speed and measured is None:
        corrupt.append(SPEED_FILE)
    status = tail.status or "stopped"
    progress = tail.progress or 0.0
    mtime = _mtime(run.path)
    alive = run.owner_alive()
    if alive:
        status = "running"
    elif alive is False and (status == "running" or not tail.ended):
        status = "killed"  # its process died without a final event: `pfs resume` continues it
        progress = _resumable(tail)
    elif alive is None and status == "running" and time.time() - mtime > STALE_S:
        status = "stopped"
    stage = tail.stage or config.get("stage", "learn")
    return RunInfo(name=run.name, path=str(run.path), model=_text(config.get("model")),
                   dataset=_text(config.get("dataset")), stage=stage if isinstance(stage, str) else "?",
                   status=status, progress=progress, budget=budget, macs=macs,
                   accuracy=accuracy if accuracy is not None else tail.accuracy, updated=mtime, best_accuracy=best,
                   epoch=tail.epoch.epoch if tail.epoch else None,
                   total_epochs=tail.epoch.total_epochs if tail.epoch else None,
                   heldout_accuracy=heldout if heldout is not None else tail.heldout,
                   corrupt=", ".join(dict.fromkeys(corrupt)) or None,
                   speedup=measured.speedups.get("torch") if measured else None,
                   world_size=_world_size(summary.get("world_size", config.get("world_size"))))


def _resumable(tail: _Tail) -> float:
    """A killed run's progress as `pfs resume` will find it: its newest checkpoint's, not past it."""
    ckpt = tail.checkpoint
    if ckpt is None or ckpt.stage != tail.stage or not tail.total:
        return 0.0  # no checkpoint of this stage: it starts again from its first step
    return min(1.0, ckpt.step / tail.total)


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run under `root` (default ./runs or $PFS_RUNS), newest first, broken ones included."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        return []
    infos = [run_info(child) for child in root.iterdir() if (child / "config.json").is_file()]
    return sorted(infos, key=lambda i: i.updated, reverse=True)


def _number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _world_size(v) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else 1


def _text(v) -> str:
    return v if isinstance(v, str) else "?"


def _mtime(path: Path) -> float:
    try:
        return max((p.stat().st_mtime for p in path.iterdir() if p.is_file()), default=0.0)
    except OSError:
        return 0.0


def _json_object(run: RunDir, name: str, corrupt: list[str]) -> dict:
    """A run's JSON file as a dict; {} when missing, and {} noted in `corrupt` when unreadable."""
    path = run.file(name)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        corrupt.append(name)
        return {}
    return data


def _read_tail(path: Path, known: set[str] = frozenset()) -> _Tail:
    """The events that decide the listing, read backwards from the end until all are found.

    A last line without its newline in a log written seconds ago is a write in progress
    (skipped); otherwise, like any line that is not an event, it marks the log corrupt.
    """
    tail = _Tail(found=set(known))
    try:
        writing = time.time() - path.stat().st_mtime < WRITING_S
        lines = _lines_backwards(path)
        for k, (line, complete) in enumerate(lines):
            if not line.strip():
                continue
            try:
                tail.offer(parse_event(line.decode("utf-8")))
            except ValueError as exc:
                if k == 0 and not complete and writing:
                    continue
                if "unknown event type" not in str(exc):  # a newer pfs's event: not damage
                    tail.corrupt = True
            except RecursionError:
                tail.corrupt = True
            if tail.done():
                break
    except FileNotFoundError:
        pass
    except OSError:
        tail.corrupt = True
    return tail


def _lines_backwards(path: Path) -> Iterator[tuple[bytes, bool]]:
    """(line, ended by a newline) from the last line of `path` to the first."""
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        if pos == 0:
            return
        f.seek(pos - 1)
        complete = f.read(1) == b"\n"  # only the file's last line can lack its newline
        rest = b""
        while pos > 0:
            step = min(TAIL_BLOCK, pos)
            pos -= step
            f.seek(pos)
            parts = (f.read(step) + rest).split(b"\n")
            rest = parts.pop(0)  # may continue in the block before
            for line in reversed(parts):
                yield line, complete
                complete = True
        yield rest, complete
