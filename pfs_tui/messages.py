"""Messages the explorer's workers post to the UI thread."""
from __future__ import annotations

from textual.message import Message


class LearnProgress(Message):
    """The learn log moved (posted from a worker, possibly hundreds of times a second).

    It carries no data (the screen reads the log), so consecutive ones coalesce: only the
    newest waiting in the queue is handled, as Toolong does with its high-rate messages.
    """

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LearnProgress)


class LearnDone(Message):
    """Gate learning or replay ended: finished, stopped or failed (with why)."""

    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__()
        self.status = status
        self.detail = detail


class ModelRowsReady(Message):
    """The model list with dense MACs/params for a data set was computed."""

    def __init__(self, dataset: str, rows: list) -> None:
        super().__init__()
        self.dataset = dataset
        self.rows = rows


class ModelCostReady(Message):
    """A model spec was built (or refused): its dense cost row, or why it cannot be used."""

    def __init__(self, spec: str, dataset: str, row, error: str, typed: bool) -> None:
        super().__init__()
        self.spec = spec
        self.dataset = dataset
        self.row = row  # pfs_tui.session.ModelRow, None when refused
        self.error = error
        self.typed = typed  # typed in the spec field (a refusal keeps the model) or highlighted in the list


class RunsListed(Message):
    """A fresh list of run summaries (engine.runs.RunInfo) for the runs screen."""

    def __init__(self, infos: list, settings: dict | None = None) -> None:
        super().__init__()
        self.infos = infos
        self.settings = settings or {}  # path -> r, gamma, reg, seed, label (pfs_tui.tasks.run_settings)


class RunEvents(Message):
    """New events read from a followed run's events.jsonl."""

    def __init__(self, events: list, alive: bool | None) -> None:
        super().__init__()
        self.events = events
        self.alive = alive

    def can_replace(self, message: Message) -> bool:
        return False


class SettingChanged(Message):
    """A setting was edited to a valid value (name, value)."""

    def __init__(self, name: str, value) -> None:
        super().__init__()
        self.name = name
        self.value = value


class StructureReady(Message):
    """A structure search finished: for which inputs (key), its result or why none."""

    def __init__(self, key: tuple, structure, uniform, error: str, learned: bool, latency=None) -> None:
        super().__init__()
        self.key = key
        self.structure = structure
        self.uniform = uniform
        self.error = error
        self.learned = learned
        self.latency = latency  # the latency search's result when the target is a latency


class ComparisonReady(Message):
    """Runs picked on the Compare page were loaded: their comparison, or why not."""

    def __init__(self, key: tuple, comparison, error: str) -> None:
        super().__init__()
        self.key = key
        self.comparison = comparison
        self.error = error
