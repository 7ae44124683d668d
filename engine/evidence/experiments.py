"""Experiment directories: a grid of cells, each a run directory, resumable after a kill.

Layout of EXP/: config.json (format, version, kind and the settings: a rerun must
repeat them), cells/<name>/ (one run directory per cell), pretrain/<name>/ (shared
pre-trainings) and results.json (rewritten after every finished cell, so a report of a
half-done grid is possible and a kill loses at most the cell in progress). A rerun of
the same command skips finished cells and resumes the one that was interrupted.
"""
from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PfsError, RunError, plural
from engine.evidence.arms import EXPERIMENTS
from engine.runs import RunDir, atomic_write_json, read_json
from engine.training import CHECKPOINT, TrainOptions, train_run

FORMAT = "pfs-experiment"
# 2: settings["learn"] holds the whole gate-learning schedule, resolved when the grid was made
# (engine.learn_schedule). 1: only the flags given; the rest meant LearnConfig's own defaults
# then, and still does for such a grid, so that its cells go on learning as they began.
VERSION = 2
READABLE = (1, 2)


@dataclass
class Experiment:
    """An experiment directory: its settings and its cells."""

    path: Path
    kind: str
    settings: dict
    version: int = VERSION
    on_start: Callable[[str, int, int], None] | None = None  # told of each cell as it starts

    @classmethod
    def open(cls, path: str | Path) -> Experiment:
        """An existing experiment; another version or a half-written one is a PfsError naming the fix."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise PfsError(f"{path} is not a pfs experiment (no config.json); point at a folder made by "
                           "`pfs experiment ... --out EXP`")
        try:
            config = read_json(path / "config.json")
        except RunError:
            raise PfsError(f"{path}/config.json is corrupt (half-written?); move it aside and rerun the "
                           "`pfs experiment` command that made it: finished cells are kept") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise PfsError(f"{path} is not a pfs experiment directory (config.json has no format "
                           f"{FORMAT!r}); pick another folder")
        if config.get("version") not in READABLE:
            raise PfsError(f"{path} was written by another pfs version (experiment format "
                           f"{config.get('version')}, this pfs reads {VERSION}); rerun the experiment "
                           "into a new --out with this pfs")
        if config.get("kind") not in EXPERIMENTS or not isinstance(config.get("settings"), dict):
            raise PfsError(f"{path}/config.json lacks kind/settings (half-written?); rerun the `pfs "
                           "experiment` command into a new --out")
        return cls(path, config["kind"], config["settings"], config["version"])

    @classmethod
    def open_or_create(cls, path: str | Path, kind: str, settings: dict, given_learn: dict | None = None) -> Experiment:
        """The experiment at `path`, created when absent; a rerun must repeat the same settings,
        except that it may add seeds (the grid grows; finished cells stay). `given_learn` (the
        learning flags as given) is what a version-1 grid recorded instead of the whole schedule."""
        path = Path(path)
        if (path / "config.json").is_file():
            exp = cls.open(path)
            if exp.version == 1 and "learn" in settings:
                settings = {**settings, "learn": given_learn or {}}
            if exp.kind == kind and _only_more_seeds(exp.settings, settings):
                exp.settings = {**exp.settings, "seeds": settings["seeds"]}
                exp._write_config()
            if exp.kind != kind or exp.settings != settings:
                diff = sorted(k for k in {**exp.settings, **settings} if exp.settings.get(k) != settings.get(k))
                what = f"a {exp.kind} experiment" if exp.kind != kind else f"other settings ({', '.join(diff)})"
                raise PfsError(f"{path} holds {what}; repeat its own command to resume it "
                               f"(see {path}/config.json; --seeds may add seeds), or pick another --out")
            return exp
        if path.exists() and any(p.name != "cells" for p in path.iterdir()):  # cells/ alone: copied in to adopt
            raise PfsError(f"{path} exists and is not a pfs experiment (no config.json); pick another --out")
        exp = cls(path, kind, settings)
        exp._write_config()
        return exp

    def _write_config(self) -> None:
        atomic_write_json(self.path / "config.json", {"format": FORMAT, "version": self.version, "kind": self.kind,
                                                      "settings": self.settings})

    def cell(self, name: str) -> Path:
        return self.path / "cells" / name

    def pretraining(self, name: str) -> Path:
        return self.path / "pretrain" / name

    def results(self) -> dict:
        """results.json, or an empty one before the first cell finished."""
        p = self.path / "results.json"
        return read_json(p) if p.is_file() else {"kind": self.kind, "cells": {}}

    def pending(self, seeds: list[int], items: list[str]) -> Iterator[tuple[int, str, str, Path]]:
        """(seed, item, cell name, cell path) of every cell not finished yet, seed by seed; tells
        `on_start` (cell name, its number, how many) before each, and how many were already done."""
        names = [(seed, item, f"{item}-s{seed}") for seed in seeds for item in items]
        done = [n for _, _, n in names if n in self.results()["cells"]]
        if done and self.on_start is not None:
            self.on_start(f"{len(done)} of {plural(len(names), 'cell')} already finished, skipped", 0, len(names))
        for number, (seed, item, name) in enumerate(names, 1):
            if name not in self.results()["cells"]:
                if self.on_start is not None:
                    self.on_start(f"cell {number} of {len(names)}: {item} seed {seed}", number, len(names))
                if _copied_unfinished(self.cell(name)):
                    if self.on_start is not None:
                        self.on_start(f"{name} was copied unfinished, without its weights: started again",
                                      number, len(names))
                    shutil.rmtree(self.cell(name))
                yield seed, item, name, self.cell(name)

    def record(self, name: str, result: dict, aggregate: Callable[[dict], dict],
               on_cell: Callable[[str, dict], None] | None = None) -> None:
        """Add a finished cell to results.json (with the aggregates recomputed), then tell `on_cell`."""
        results = self.results()
        cells = {**results.get("cells", {}), name: result}
        atomic_write_json(self.path / "results.json", {"kind": self.kind, "settings": self.settings,
                                                       "cells": cells, **aggregate(cells)})
        if on_cell is not None:
            on_cell(name, result)


def _only_more_seeds(old: dict, new: dict) -> bool:
    """True when `new` repeats `old` but for seeds, listing every old seed first, in order."""
    seeds = new.get("seeds") or []
    return ({**old, "seeds": None} == {**new, "seeds": None} and len(seeds) > len(old["seeds"])
            and seeds[:len(old["seeds"])] == old["seeds"])


def _copied_unfinished(path: Path) -> bool:
    """True for a cell whose structure was being found elsewhere and that was copied without its
    weights (git carries records, not init.pt): it cannot continue, only start again. A cell
    with a structure goes on without init.pt (a scratch training does not need it)."""
    return (path.is_dir() and not (path / "init.pt").is_file() and not (path / "structure.json").is_file()
            and not cell_trained(path))


def cell_trained(path: Path) -> bool:
    """True when a cell's training finished (its summary.json says so)."""
    if not (path / "config.json").is_file():
        return False
    summary = RunDir(path).read_json_or_empty("summary.json")
    return summary.get("stage") == "train" and summary.get("status") == "finished"


def train_cell(path: Path, options: TrainOptions, *, data=None, on_event=None, should_stop=None) -> dict:
    """Train a cell's structure, resuming its checkpoint when a previous attempt was killed."""
    run = RunDir.open(path)
    if cell_trained(path):
        _check_training(run, options)
        return run.read_json("summary.json")
    started = "train" in run.config and run.exists(CHECKPOINT)
    return train_run(path, None if started else options, resume=started, overwrite=not started, data=data,
                     on_event=on_event, should_stop=should_stop)


# Options that do not change what a cell's training computes (where and how it is logged).
_NOT_THE_RESULT = ("device", "workers", "log_every")


def _check_training(run: RunDir, options: TrainOptions) -> None:
    """A finished cell copied in from elsewhere must have been trained as this grid trains its
    cells; otherwise its accuracy is not comparable and it is refused with one line."""
    done = run.config.get("train") or {}
    wanted = options.to_json()
    diff = sorted(k for k in wanted if k not in _NOT_THE_RESULT and k in done and done[k] != wanted[k])
    if diff:
        raise PfsError(f"{run.path} was trained with other settings ({', '.join(diff)}) than this grid trains "
                       "its cells; remove that cell to train it again, or pick another --out")


def mean_sd(values: list[float]) -> dict:
    """{"mean", "sd", "n"} of a list (sd 0 for one value; None values left out)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


__all__ = ["EXPERIMENTS", "Experiment", "cell_trained", "mean_sd", "train_cell"]
