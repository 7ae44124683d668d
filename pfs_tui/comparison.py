"""What the Compare page shows, free of widgets: runs' structures side by side.

Each run contributes its structure.json (per-layer keep ratios), the uniform network of
the same MACs (one width multiplier everywhere, the baseline every structure is read
against), its held-out accuracy from gate learning and its test accuracy after
retraining. An experiment directory contributes every run directory inside it. Runs of
different models or data sets are refused: their layers do not line up.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.analysis import keep_ratios, pairwise_correlations, uniform_structure
from engine.errors import PfsError
from engine.gating import is_foreign, rebuild_model
from engine.models.spec import model_code_allowed
from engine.runs import RunDir, load_structure
from engine.search import Structure
from pfs_tui.tasks import run_label
from sample_models import rebuild

EXPERIMENT_DEPTH = 2  # an experiment holds its runs at most this many folders down


@dataclass(frozen=True)
class CompareItem:
    """One run on the Compare page."""

    label: str
    path: Path
    dataset: str
    structure: Structure
    uniform: np.ndarray  # keep ratio per group of the uniform network at the same MACs
    heldout_acc: float | None
    test_acc: float | None
    note: str = ""  # why the uniform marks are missing, if they are

    @property
    def ratios(self) -> np.ndarray:
        return keep_ratios(self.structure)


@dataclass(frozen=True)
class Comparison:
    """Two or more runs of one model and data set, with their correlation matrix."""

    items: list[CompareItem]
    groups: list[str]
    correlation: np.ndarray  # Pearson of keep-ratio vectors; NaN where a vector is flat

    @property
    def model(self) -> str:
        return self.items[0].structure.model

    @property
    def dataset(self) -> str:
        return self.items[0].dataset

    def mean_correlation(self) -> float:
        """Mean of the defined off-diagonal correlations (NaN when none is)."""
        n = len(self.items)
        off = self.correlation[~np.eye(n, dtype=bool)]
        off = off[np.isfinite(off)]
        return float(off.mean()) if off.size else math.nan


def run_dirs(path: str | Path) -> list[Path]:
    """The run directories `path` stands for: itself when it is a run with a structure,
    else (an experiment directory) every run with a structure.json inside it."""
    path = Path(path)
    if not path.is_dir():
        raise PfsError(f"{path} is not a directory; give a run directory or an experiment directory")
    if (path / "structure.json").is_file():
        return [path]
    found, level = [], [path]
    for _ in range(EXPERIMENT_DEPTH):
        level = sorted(d for parent in level for d in parent.iterdir() if d.is_dir())
        found += [d for d in level if (d / "structure.json").is_file() and (d / "config.json").is_file()]
    if not found:
        if (path / "config.json").is_file():
            raise PfsError(f"{path} has no structure.json yet; run `pfs search {path} --flops F` first")
        raise PfsError(f"{path} holds no run with a structure.json; give runs made by `pfs search` "
                       "or an experiment directory")
    return found


def load_item(path: str | Path, label: str | None = None) -> CompareItem:
    """A run's structure, its same-MACs uniform network and its accuracies."""
    run = RunDir.open(path)
    structure = load_structure(run.path)
    summary = run.read_json_or_empty("summary.json")
    learn = summary.get("learn") if summary.get("stage") == "train" else summary
    learn = learn if isinstance(learn, dict) else {}
    dataset = run.config.get("dataset") or _structure_dataset(run.path) or "?"
    uniform, note = uniform_ratios(structure), ""
    if uniform is None:  # the run names code this explorer may not run: compare without uniform marks
        uniform = np.full(len(structure.dense_widths), math.nan)
        note = (f"no uniform marks: {run.name}'s model is code it names ({structure.spec.get('name')}); "
                "start the explorer with --trust-model-code to draw them")
    return CompareItem(label=label or run_label(run.path) or run.name, path=run.path, dataset=str(dataset),
                       structure=structure, uniform=uniform, heldout_acc=_number(learn.get("heldout_acc")),
                       test_acc=_number(summary.get("test_acc")), note=note)


def uniform_ratios(structure: Structure) -> np.ndarray | None:
    """Per-group keep ratios of the uniform-width network with the structure's MACs budget
    (None where counting it would run model code the run names and nobody trusted)."""
    spec = structure.spec
    if not spec:
        return np.full(len(structure.dense_widths), math.nan)  # an old structure.json: no model to rebuild
    if is_foreign(spec) and not model_code_allowed(str(spec.get("name"))):
        return None
    if is_foreign(spec):  # built for real through the engine, which runs its code only if trusted
        model = rebuild_model({**spec, "widths": structure.dense_widths})
    else:
        with torch.device("meta"):  # shapes only: counting MACs needs no weights
            model = rebuild(spec, widths=structure.dense_widths)
    uniform = uniform_structure(model, structure.budget, structure.input_size,
                                min_channels=structure.min_channels)
    return keep_ratios(uniform)


def compare(paths: list[str | Path]) -> Comparison:
    """The comparison of these runs (or experiment directories); PfsError naming the fix
    when there are fewer than two runs or they are of different models or data sets."""
    dirs = list(dict.fromkeys(d.resolve() for p in paths for d in run_dirs(p)))
    if len(dirs) < 2:
        raise PfsError("pick at least two runs to compare (space marks a run)")
    items = [load_item(d, label=run_label(d) or _label(d, dirs)) for d in dirs]
    first = items[0]
    for item in items[1:]:
        if item.structure.model != first.structure.model or \
                list(item.structure.dense_widths.items()) != list(first.structure.dense_widths.items()):
            raise PfsError(f"cannot compare runs of different models: {first.label} is "
                           f"{_model_name(first)}, {item.label} is {_model_name(item)}; "
                           "pick runs of one model and data set")
        if item.dataset != first.dataset:
            raise PfsError(f"cannot compare runs on different data sets: {first.label} is on {first.dataset}, "
                           f"{item.label} on {item.dataset}; pick runs of one model and data set")
    matrix = pairwise_correlations([i.structure for i in items])
    return Comparison(items=items, groups=list(first.structure.dense_widths), correlation=matrix)


def _label(path: Path, all_dirs: list[Path]) -> str:
    """The run's folder name, with its experiment folder when names repeat across experiments."""
    names = [d.name for d in all_dirs]
    return path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}"


def _model_name(item: CompareItem) -> str:
    s = item.structure
    dense = sum(s.dense_widths.values())
    expand = s.spec.get("expand", 1.0) if s.spec else 1.0
    return s.model if expand == 1.0 else f"{s.model} x{expand:g} ({dense} channels)"


def _structure_dataset(path: Path) -> str | None:
    try:
        data = json.loads((path / "structure.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("dataset") if isinstance(data, dict) else None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


SEPARATORS = "-_ ./"


def short_labels(labels: list[str], width: int) -> list[str]:
    """The labels, each at most `width` characters and all different, for headers at 80
    columns: cut at the end where that keeps them apart; labels that would collide keep
    their end instead ('…1207-104512' for runs named by the second they started), or lose
    the prefix they share and are cut at the end; labels still equal get their number."""
    width = max(4, width)
    out = _cut(labels, width)
    for collided in {x for x in out if out.count(x) > 1}:
        where = [k for k, x in enumerate(out) if x == collided]
        group = [labels[k] for k in where]
        ends = [x if len(x) <= width else "…" + x[len(x) - width + 1:] for x in group]
        if len(set(ends)) == len(set(group)):  # they differ at the end (a time stamp): keep the end
            for k, x in zip(where, ends, strict=True):
                out[k] = x
            continue
        common = len(_common_prefix(group))
        cut = max((i + 1 for i, ch in enumerate(group[0][:common]) if ch in SEPARATORS), default=0)
        rest = ["…" + label[cut:] if cut > 1 else label for label in group]
        short = _cut(rest, width)
        if len(set(short)) < len(set(group)):
            short = [x if len(x) <= width else "…" + x[len(x) - width + 1:] for x in rest]
        for k, x in zip(where, short, strict=True):
            out[k] = x
    repeated = {label for label in out if out.count(label) > 1}
    return [label[: width - len(f"#{k + 1}")] + f"#{k + 1}" if label in repeated else label
            for k, label in enumerate(out)]


def _cut(labels: list[str], width: int) -> list[str]:
    return [label if len(label) <= width else label[: width - 1] + "…" for label in labels]


def _common_prefix(labels: list[str]) -> str:
    first, last = min(labels), max(labels)
    n = next((i for i, (a, b) in enumerate(zip(first, last)) if a != b), min(len(first), len(last)))
    return first[:n]
