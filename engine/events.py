"""Typed progress events and the sinks that consume them.

Every job reports through a stream of small frozen dataclasses. The CLI's progress bar,
the run directory's events.jsonl, the TUI and replay all read the same stream, so an
event must round-trip through JSON: `Event.from_json(e.to_json()) == e`.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, ClassVar


@dataclass(frozen=True)
class Event:
    """Base: `kind` names the event type in JSON; `time` is seconds since the epoch."""

    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> dict:
        """A plain JSON-safe dict with a "type" key."""
        return {"type": self.kind, **{k: _json_safe(v) for k, v in asdict(self).items()}}

    @staticmethod
    def from_json(data: dict) -> Event:
        """The event a `to_json()` dict describes; unknown types raise ValueError."""
        data = dict(data)
        kind = data.pop("type", None)
        if not isinstance(kind, str):
            raise ValueError(f"not an event (no type): {data!r:.80}")
        cls = EVENT_TYPES.get(kind)
        if cls is None:
            raise ValueError(f"unknown event type {kind!r}")
        kept = {}
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                if value is None and f.type == "float":
                    value = math.nan  # to_json writes NaN as null
                if not _fits(value, f.type):
                    raise ValueError(f"{cls.kind} event field {f.name!r} is not a {f.type}: {value!r}")
                kept[f.name] = value
        try:
            return cls(**kept)
        except TypeError as exc:  # a required field is missing
            raise ValueError(f"{cls.kind} event: {exc}") from None


@dataclass(frozen=True)
class StepEnd(Event):
    """One optimisation step finished (gate learning or training). High rate: coalescible."""

    kind: ClassVar[str] = "step"
    stage: str
    step: int
    total_steps: int
    epoch: int
    loss: float
    ce: float = 0.0
    reg: float = 0.0
    mean_gate: float = float("nan")
    open_frac: float = float("nan")
    lr: float = 0.0
    accuracy: float = float("nan")  # of the training batch
    steps_per_s: float = 0.0


@dataclass(frozen=True)
class EvalStarted(Event):
    """An evaluation begins (held-out while learning, test while training): it can take a
    while on thousands of images, so progress displays say so instead of looking stuck."""

    kind: ClassVar[str] = "eval_start"
    stage: str
    step: int
    images: int


@dataclass(frozen=True)
class EvalEnd(Event):
    """A held-out (learn) or test (train) evaluation finished."""

    kind: ClassVar[str] = "eval"
    stage: str
    step: int
    accuracy: float
    loss: float
    open_frac: float = float("nan")
    best: bool = False  # this evaluation became the selected / best one


@dataclass(frozen=True)
class GateSnapshot(Event):
    """The gate values (group -> one float per channel) at a step."""

    kind: ClassVar[str] = "gates"
    step: int
    gates: dict


@dataclass(frozen=True)
class StructureFound(Event):
    """A FLOPs-budget search picked a structure."""

    kind: ClassVar[str] = "structure"
    widths: dict
    macs: int
    params: int
    dense_macs: int
    budget: float
    threshold: float
    tied: int


@dataclass(frozen=True)
class EpochEnd(Event):
    """A training (or gate-learning) epoch finished."""

    kind: ClassVar[str] = "epoch"
    stage: str
    epoch: int
    total_epochs: int
    train_loss: float
    train_acc: float
    test_acc: float = float("nan")
    lr: float = 0.0
    images_per_s: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    stage: str
    path: str
    step: int
    epoch: int = 0


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "started"
    stage: str
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "finished"
    stage: str
    summary: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunFailed(Event):
    kind: ClassVar[str] = "failed"
    stage: str
    error: str


EVENT_TYPES: dict[str, type[Event]] = {
    c.kind: c for c in (StepEnd, EvalStarted, EvalEnd, GateSnapshot, StructureFound, EpochEnd,
                        CheckpointSaved, RunStarted, RunFinished, RunFailed)
}

Sink = Callable[[Event], None]


# Field annotations (strings under `from __future__ import annotations`) -> accepted types.
# A line of the right shape with a value of the wrong type is as corrupt as a torn one.
_FIELD_TYPES = {"int": int, "float": (int, float), "str": str, "dict": dict, "bool": bool}


def _fits(value, annotation: str) -> bool:
    kind = _FIELD_TYPES.get(annotation)
    if kind is None:
        return True
    if annotation != "bool" and isinstance(value, bool):
        return False
    return isinstance(value, kind)


def _json_safe(value):
    # JSON has no NaN/inf: write null so every reader (jq, browsers) can parse the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def failure_text(exc: BaseException) -> str:
    """The `error` of a RunFailed event; an interrupt reads as a stop, which resume continues."""
    if isinstance(exc, KeyboardInterrupt):
        return "stopped: interrupted (the last checkpoint is kept; resume continues from it)"
    return str(exc) or type(exc).__name__


def strict_json(data, **kwargs) -> str:
    """json.dumps for everything pfs writes or prints: NaN and infinities become null.

    Python's json writes NaN/Infinity by default, which jq, browsers and strict parsers
    refuse; allow_nan=False makes any value that slipped past the mapping a loud error.
    """
    return json.dumps(_json_safe(data), allow_nan=False, **kwargs)


def fanout(*sinks: Sink | None) -> Sink:
    """One sink that forwards each event to every given sink (None entries skipped)."""
    live = [s for s in sinks if s is not None]

    def emit(event: Event) -> None:
        for s in live:
            s(event)
    return emit


class JsonlSink:
    """Appends each event as one JSON line and flushes, so followers see it at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self._file.write(strict_json(event.to_json()) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_events(path: str | Path) -> list[Event]:
    """Every complete event in a JSON-lines file (a torn last line is skipped), as if the run
    had never been stopped (see as_uninterrupted)."""
    return as_uninterrupted(iter_events(Path(path).read_text(encoding="utf-8").splitlines()))


def as_uninterrupted(events: Iterable[Event]) -> list[Event]:
    """The events with what a resume re-did replacing what the stopped attempt did past its
    checkpoint: a resumed stage's RunStarted says `resumed_from_step` (and, for training,
    `resumed_from_epoch`), and that stage's earlier step-, evaluation-, snapshot- and
    epoch-events beyond it are dropped. The log itself stays append-only (followers tail it);
    readers get one event per step."""
    out: list[Event] = []
    for e in events:
        resumed = e.config.get("resumed_from_step") if isinstance(e, RunStarted) else None
        if isinstance(resumed, int):
            epoch = e.config.get("resumed_from_epoch")
            out = [x for x in out if not _past(x, e.stage, resumed, epoch)]
        out.append(e)
    return out


def _past(e: Event, stage: str, step: int, epoch) -> bool:
    """Whether `e` belongs to `stage` beyond its checkpoint at `step` (epochs: beyond `epoch`)."""
    if getattr(e, "stage", "learn") != stage:  # GateSnapshot has no stage: it is learning's
        return False
    if isinstance(e, EpochEnd):
        return isinstance(epoch, int) and e.epoch > epoch
    return isinstance(e, (StepEnd, EvalStarted, EvalEnd, GateSnapshot, CheckpointSaved)) and e.step > step


def iter_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from JSON lines; blank, torn or unknown lines are skipped, not fatal."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            yield parse_event(line)
        except ValueError:
            continue


def parse_event(line: str) -> Event:
    """The event one JSON line describes; anything else (not an object, wrong types) is a ValueError."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"an event line must be a JSON object, got {type(data).__name__}")
    return Event.from_json(data)


class ProgressBar:
    """A one-line stderr progress bar fed by StepEnd/EvalEnd/EpochEnd events.

    Redraws at most `hz` times a second, so fast steps cost nothing. When the stream is
    not a terminal (a log file, CI, `2> log`), it writes a plain line every tenth of the
    run instead of carriage-return frames, so the log reads as lines.
    """

    def __init__(self, stream: IO[str] | None = None, width: int = 24, hz: float = 8.0) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = 1.0 / hz
        self._last_draw = 0.0
        self._heldout = float("nan")
        self._eval_label = "held-out"
        self._started = time.monotonic()
        self._line_len = 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next_tenth = 0  # non-terminal streams: the next tenth of progress to report
        self._stage: tuple = ()

    def __call__(self, event: Event) -> None:
        if isinstance(event, EvalStarted):
            self._write(f"{event.stage}: evaluating {event.images} "
                        f"{'held-out' if event.stage == 'learn' else 'test'} images at step {event.step}")
        elif isinstance(event, EvalEnd):
            self._heldout = event.accuracy
            self._eval_label = "held-out" if event.stage == "learn" else "test"
        elif isinstance(event, StepEnd):
            now = time.monotonic()
            if not self.tty:
                if (event.stage, event.total_steps) != self._stage:  # a new stage starts its tenths again
                    self._stage, self._next_tenth = (event.stage, event.total_steps), 0
                tenth = int(10 * event.step / max(1, event.total_steps))
                if tenth >= self._next_tenth or event.step >= event.total_steps:
                    self._next_tenth = tenth + 1
                    self._draw(event, now)
            elif now - self._last_draw >= self.interval or event.step >= event.total_steps:
                self._last_draw = now
                self._draw(event, now)
        elif isinstance(event, (RunFinished, RunFailed)):
            self.close()

    def _draw(self, e: StepEnd, now: float) -> None:
        frac = min(1.0, e.step / max(1, e.total_steps))
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        parts = [f"{e.stage} [{bar}] {e.step}/{e.total_steps}", f"loss {e.loss:.3f}"]
        if math.isfinite(self._heldout):
            parts.append(f"{self._eval_label} {self._heldout:.3f}")
        if math.isfinite(e.open_frac):
            parts.append(f"open {e.open_frac:.2f}")
        if e.steps_per_s > 0:
            eta = (e.total_steps - e.step) / e.steps_per_s
            parts.append(f"{e.steps_per_s:.1f} it/s eta {_clock(eta)}")
        self._write("  ".join(parts))

    def _write(self, line: str) -> None:
        """A plain line off a terminal; on one, redraw the bar's line in place."""
        if not self.tty:
            self.stream.write(line + "\n")
            self.stream.flush()
            return
        pad = max(0, self._line_len - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._line_len = len(line)

    def close(self) -> None:
        if self._line_len:
            self.stream.write("\n")
            self.stream.flush()
            self._line_len = 0


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
