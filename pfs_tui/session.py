"""The explorer's state without any widgets: settings, the learning log, structures.

Screens read this state and workers write it, so it lives outside Textual: the learn
and replay workers append events to a `LearnLog` under a lock from their thread, and
the screens redraw from it on a timer (a few Hz however fast steps arrive).
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path

import torch

from engine import create_model
from engine.errors import PfsError
from engine.events import EpochEnd, EvalEnd, Event, GateSnapshot, RunFailed, RunFinished, StepEnd
from engine.flops import dense_macs, dense_params
from engine.gating import build_model as build_any_model
from engine.gating import is_foreign
from engine.gating import model_entry as engine_model_entry
from engine.learn_schedule import DEMO_EVAL_EVERY, DEMO_STEPS, LR
from engine.models.spec import parse_spec, torchvision_names
from engine.search import Structure, search, uniform_structure
from sample_models import list_models, model_entry


def dataset_shape(name: str, data_root: str | None = None) -> tuple[tuple[int, int, int], int]:
    """(input C,H,W, classes) of a data set, so the setup screen can show MACs without
    loading images; names the engine does not know by shape are loaded to find out."""
    from engine.data import SHAPES, load_dataset

    if name in SHAPES:
        return SHAPES[name]

    ds = load_dataset(name, data_root)
    return tuple(ds.input_size), ds.num_classes


@dataclass
class Settings:
    """Everything the setup screen edits; the defaults are the paper's CIFAR settings, with
    the live-demo schedule on Fashion-MNIST, the explorer's data set (engine.learn_schedule:
    Adam lr 0.01 as `pfs learn`, but 300 steps, about a minute on a CPU, not 10 epochs)."""

    model: str = "resnet20"
    dataset: str = "fashion-mnist"
    budget: float = 0.5
    sparsity: float = 0.2
    gamma: float = 0.5
    reg: str = "mean"
    steps: int = DEMO_STEPS
    lr: float = LR
    epochs: int = 1
    batch_size: int = 128
    seed: int = 0
    expand: float = 1.0
    train_epochs: int = 20
    train_subset: int = 0  # training images for `pfs train --subset` (0: all of them)
    # Live feedback: evaluate often on part of the held-out set, snapshot gates often.
    eval_every: int = DEMO_EVAL_EVERY
    heldout_limit: int = 1000
    snapshot_every: int = 10

    def learn_kwargs(self) -> dict:
        """Keyword arguments of engine.learn.LearnConfig (steps 0 means: use epochs)."""
        return {"sparsity": self.sparsity, "gamma": self.gamma, "reg": self.reg, "epochs": self.epochs,
                "steps": self.steps or None, "lr": self.lr, "batch_size": self.batch_size, "seed": self.seed,
                "eval_every": self.eval_every, "heldout_limit": self.heldout_limit,
                "snapshot_every": self.snapshot_every}


@dataclass(frozen=True)
class FieldSpec:
    """How a numeric setting is edited: its range, nudge step and what it means."""

    name: str
    label: str
    minimum: float
    maximum: float
    step: float
    integer: bool = False
    help: str = ""


FIELDS: dict[str, FieldSpec] = {f.name: f for f in (
    FieldSpec("budget", "FLOPs target", 0.01, 1.0, 0.05, help="fraction of the dense model's MACs to keep"),
    FieldSpec("sparsity", "sparsity r", 0.0, 1.0, 0.05, help="target mean gate value"),
    FieldSpec("gamma", "gamma", 0.0, 100.0, 0.1, help="weight of the sparsity regulariser"),
    FieldSpec("steps", "steps", 0, 1_000_000, 50, integer=True, help="0 = use epochs"),
    FieldSpec("epochs", "epochs", 1, 1000, 1, integer=True, help="gate-learning epochs"),
    FieldSpec("seed", "seed", 0, 2**31 - 1, 1, integer=True, help="random init and data order"),
    FieldSpec("expand", "expansion", 0.25, 4.0, 0.25, help="width multiplier of the gated model"),
    FieldSpec("train_epochs", "retrain epochs", 1, 1000, 5, integer=True, help="epochs of `pfs train`"),
    FieldSpec("train_subset", "retrain images", 0, 10_000_000, 1000, integer=True,
              help="train on the first N images (0 = all): a demo retraining in minutes on a CPU"),
)}


@dataclass(frozen=True)
class ModelRow:
    """One line of the model list: dense MACs/params at a data set's input size."""

    name: str
    description: str
    macs: int | None
    params: int | None
    reason: str = ""  # why there are no counts
    counted: bool = True  # False: not counted yet (foreign models are counted when highlighted)


KIND_DESCRIPTIONS = {
    "torchvision": "torchvision classification model, random init",
    "timm": "timm model, random init",
    "file": "your model, from a Python file",
    "module": "your model, from an importable module",
}


def spec_description(spec: str) -> str:
    """What a model spec names, in a line (a sample model's own description)."""
    parsed = parse_spec(spec)
    if parsed.is_sample:
        return engine_model_entry(parsed.name).description  # unknown: a PfsError naming the known ones
    return KIND_DESCRIPTIONS[parsed.kind]


def uncounted_row(spec: str) -> ModelRow:
    """A list row whose costs are not counted yet (shown as '-')."""
    return ModelRow(spec, KIND_DESCRIPTIONS.get(parse_spec(spec).kind, ""), None, None, counted=False)


@lru_cache(maxsize=8)
def model_rows(dataset: str, data_root: str | None = None) -> tuple[ModelRow, ...]:
    """Every sample model with its dense cost on `dataset` (None where it does not fit),
    then torchvision's classification models, not counted yet (see `model_cost`).

    Cached: the counts never change within a process, and tracing all models takes seconds.
    """
    size, classes = dataset_shape(dataset, data_root)
    rows = []
    for name in list_models():
        try:
            with torch.device("meta"):  # shapes only: no memory, no init
                model = create_model(name, in_channels=size[0], num_classes=classes)
            macs, params = dense_macs(model, size), dense_params(model)
        except (PfsError, ValueError, RuntimeError) as exc:
            # Some models cannot run at a small input (a 1x1 map in a train-mode BN):
            # the list says so instead of failing the whole page.
            macs = params = None
            reason = str(exc).splitlines()[0][:80]
        else:
            reason = ""
        rows.append(ModelRow(name, model_entry(name).description, macs, params, reason))
    rows.extend(uncounted_row(f"torchvision:{name}") for name in torchvision_names())
    return tuple(rows)


_COST_LOCK = threading.Lock()  # one foreign model built at a time (they can be large)


@lru_cache(maxsize=256)
def model_cost(spec: str, dataset: str, data_root: str | None = None) -> ModelRow:
    """The dense cost of the model a spec names, on `dataset`, through the engine's
    `build_model` (the one `pfs learn` uses): a PfsError says why a spec is refused.

    Foreign models are built for real on the CPU (their dependency graph cannot be traced
    on meta tensors): seconds for large ones, so callers run this off the UI thread.
    """
    parsed = parse_spec(spec)
    description = spec_description(spec)  # unknown sample names: a PfsError listing the known ones
    if parsed.is_sample:
        row = next((r for r in model_rows(dataset, data_root) if r.name == parsed.text), None)
        if row is not None:
            return row
    size, classes = dataset_shape(dataset, data_root)
    model = _build_foreign(parsed.text, size, classes)
    _CHANNELS[(parsed.text, dataset, 1.0, data_root)] = sum(model.widths.values())
    return ModelRow(parsed.text, description, dense_macs(model, size), dense_params(model))


def _build_foreign(spec: str, size, classes: int, expand: float = 1.0):
    """A foreign model built by the engine, one at a time; its own failures become PfsErrors
    (user code raises anything, and the explorer must say it, not crash)."""
    with _COST_LOCK, torch.no_grad():
        try:
            # Parsed, not the string: the setting may come from a run opened here, whose code
            # runs only if the user named it (Setup, --model) or trusts runs (--trust-model-code).
            return build_any_model(parse_spec(spec), in_channels=size[0], num_classes=classes, expand=expand,
                                   input_size=size)
        except PfsError:
            raise
        except Exception as exc:
            raise PfsError(f"{spec} cannot be built: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") \
                from None


def build_model(settings: Settings, data_root: str | None = None):
    """The gated model the settings describe (random init; searched, never trained here).

    Sample models are built on meta tensors (shapes only); a foreign one is built for real,
    at the data set's input size, as `pfs learn` builds it.
    """
    size, classes = dataset_shape(settings.dataset, data_root)
    if is_foreign(settings.model):
        model = _build_foreign(settings.model, size, classes, settings.expand)
    else:
        with torch.device("meta"):
            model = create_model(settings.model, in_channels=size[0], num_classes=classes, expand=settings.expand)
    _CHANNELS[(settings.model, settings.dataset, settings.expand, data_root)] = sum(model.widths.values())
    return model, size


_CHANNELS: dict[tuple, int] = {}  # (model, data set, expand, data root) -> prunable channels


def channel_count(settings: Settings, data_root: str | None = None) -> int | None:
    """How many gates the chosen model has; None for a foreign model not built yet (building
    one takes seconds: the setup and structure pages do it off the UI thread, then it is known)."""
    key = (settings.model, settings.dataset, settings.expand, data_root)
    if key not in _CHANNELS and not is_foreign(settings.model):
        build_model(settings, data_root)  # meta tensors: milliseconds
    return _CHANNELS.get(key)


def file_safe(spec: str) -> str:
    """A model spec as part of a file name (`torchvision:resnet18` -> `torchvision-resnet18`,
    `nets/my_net.py:build` -> `my_net-build`): a path in a spec must not make folders."""
    source, sep, name = spec.rpartition(":")
    if sep and ("/" in source or "\\" in source or source.endswith(".py")):
        spec = f"{Path(source).stem}:{name}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", spec).strip("-.") or "model"


def gates_fit(gates: dict | None, widths: dict[str, int]) -> bool:
    """Whether gate values (group -> floats) belong to a model of these widths."""
    return bool(gates) and set(gates) == set(widths) and all(len(gates[g]) == w for g, w in widths.items())


def structures(model, size, gates: dict | None, budget: float) -> tuple[Structure, Structure]:
    """(searched, uniform) structures at `budget`; no gates means every gate is still 1."""
    if gates is None:
        gates = {g: [1.0] * w for g, w in model.widths.items()}
    tensors = {g: torch.as_tensor(v, dtype=torch.float32) for g, v in gates.items()}
    return search(model, budget, size, gates=tensors), _uniform(model, tuple(size), budget)


_UNIFORM_CACHE: dict = {}


def _uniform(model, size: tuple, budget: float) -> Structure:
    # The uniform baseline depends on the architecture and the target only, not on the
    # gates: cache it so a slider move costs one search, not two.
    key = (json.dumps(model.spec, sort_keys=True), size, budget)
    if key not in _UNIFORM_CACHE:
        if len(_UNIFORM_CACHE) > 256:
            _UNIFORM_CACHE.clear()
        _UNIFORM_CACHE[key] = uniform_structure(model, budget, size)
    return _UNIFORM_CACHE[key]


@dataclass
class LearnLog:
    """What the learn screen draws, appended to by a worker thread (under `lock`).

    `version` grows with every change, so a timer can redraw only when something moved.
    """

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    heldout: list[tuple[int, float]] = field(default_factory=list)
    last: StepEnd | None = None
    gates: dict | None = None
    gates_step: int = 0
    epochs: list[EpochEnd] = field(default_factory=list)
    status: str = "idle"  # idle loading running pausing paused stopping finished stopped recorded failed
    message: str = ""
    warning: str = ""  # the finished learn stage's 'did not converge' line, if any
    version: int = 0

    def add(self, event: Event) -> None:
        """Fold one event in (any thread)."""
        with self.lock:
            if isinstance(event, StepEnd) and event.stage != "train":
                self.steps.append(event.step)
                self.loss.append(event.loss)
                self.last = event
            elif isinstance(event, EvalEnd) and event.stage != "train" and math.isfinite(event.accuracy):
                self.heldout.append((event.step, event.accuracy))
            elif isinstance(event, GateSnapshot):
                self.gates, self.gates_step = event.gates, event.step
            elif isinstance(event, EpochEnd):
                self.epochs.append(event)
            elif isinstance(event, RunFinished) and event.stage != "train":
                self.status = "finished"
                self.warning = str(event.summary.get("warning") or "")
            elif isinstance(event, RunFailed):
                self.status, self.message = "failed", event.error
            self.version += 1

    def set_status(self, status: str, message: str | None = None) -> None:
        """Set the status; the message (why / where) stays unless a new one is given."""
        with self.lock:
            self.status = status
            if message is not None:
                self.message = message
            self.version += 1

    def set_gates(self, gates: dict, step: int) -> None:
        with self.lock:
            self.gates, self.gates_step = gates, step
            self.version += 1

    def snapshot(self) -> dict:
        """A consistent copy of the fields the screens draw."""
        with self.lock:
            return {"steps": list(self.steps), "loss": list(self.loss), "heldout": list(self.heldout),
                    "last": self.last, "gates": self.gates, "gates_step": self.gates_step,
                    "status": self.status, "message": self.message, "warning": self.warning,
                    "version": self.version}


class Pauser:
    """Pause/stop flags shared with a worker: `wait()` blocks while paused (in the worker)."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self.stop_requested = False

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self.stop_requested = True
        self._running.set()

    def wait(self, is_cancelled=lambda: False) -> None:
        """Block while paused, waking regularly so a cancel or stop is seen."""
        while not self._running.wait(0.1):
            if is_cancelled() or self.stop_requested:
                return


@dataclass
class Session:
    """The one explorer session: settings, where runs go, the current run and its gates."""

    settings: Settings = field(default_factory=Settings)
    runs_root: Path = field(default_factory=lambda: Path(os.environ.get("PFS_RUNS", "runs")))
    data_root: str | None = None
    run_path: Path | None = None  # the learn run whose gates are shown, if any
    run_finished: bool = False  # its gates.pt holds the selected gates
    replay_path: Path | None = None
    log: LearnLog = field(default_factory=LearnLog)
    invalid: dict[str, str] = field(default_factory=dict)  # setting -> why its text is refused
    learning: Pauser | None = None  # the controls of gate learning while it runs
    prefs_path: Path | None = None  # where settings that outlive the explorer are kept (None: nowhere)

    def new_run_path(self) -> Path:
        """A fresh run directory name under runs_root."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = self.runs_root / f"{file_safe(self.settings.model)}-{self.settings.dataset}-{stamp}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path

    def reset_log(self) -> LearnLog:
        self.log = LearnLog()
        return self.log


def settings_from_config(config: dict, base: Settings) -> Settings:
    """Settings of a recorded run (config.json), keeping `base` where the run is silent."""
    learn = config.get("learn", {}) if isinstance(config.get("learn"), dict) else {}
    known = {f.name for f in fields(Settings)}
    values = {k: v for k, v in {**learn, **config}.items() if k in known and v is not None}
    if "steps" in values and not values["steps"]:
        values["steps"] = 0
    if "epochs" in values:  # LearnConfig allows fractional epochs; the field is whole epochs
        values["epochs"] = max(1, round(values["epochs"]))
    return replace(base, **values)
