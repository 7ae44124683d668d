"""Runs: every run directory under the runs root, refreshed while the page is shown."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from engine.runs import list_runs
from pfs_tui.formatting import human
from pfs_tui.messages import RunsListed
from pfs_tui.screens.ask import AskScreen
from pfs_tui.screens.base import PageScreen
from pfs_tui.tasks import launched_what, run_settings, set_run_label, train_process_alive

REFRESH_S = 2.0
# The columns after the run's name, with the cells each needs ("finished", "0.376", "15.3M").
COLUMNS = {"stage": 6, "status": 8, "prog": 4, "acc": 5, "MACs": 6, "r": 4, "gamma": 5}




def _cell(value) -> str:
    """A setting in the table: '-' when the run does not say."""
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def stage_status(info, settings: dict) -> tuple[str, str]:
    """The run's stage and status as the Runs page shows them. A `pfs train` this explorer
    launched holds the run while it loads, before its first event: until then the log's last
    stage (search) would read as running."""
    if settings.get("launched") == "pfs train" and info.stage != "train":
        return "train", "starting"
    return info.stage, info.status


def describe(info, settings: dict | None = None) -> str:
    """A few lines about one run for the preview under the table."""
    s = settings or {}
    label = f"[b]{escape(s['label'])}[/b] · " if s.get("label") else ""
    lines = [f"{label}[b]{escape(info.name)}[/b]  {escape(info.path)}",
             escape(f"{info.model} on {info.dataset} · stage {' · '.join(stage_status(info, s))}")]
    if info.corrupt:
        lines.append(f"[b]corrupt: {escape(info.corrupt)}[/b] (unreadable; the rest is shown as usual)")
    if s.get("r") is not None:
        lines.append(escape(f"learned with r {_cell(s['r'])} · gamma {_cell(s.get('gamma'))} · "
                            f"{s.get('reg') or '-'} regulariser · seed {_cell(s.get('seed'))}"))
    size = []  # one line for the structure and the training's progress: the preview has 6
    if info.budget is not None and info.macs is not None:
        size.append(f"FLOPs target {info.budget:g} → {human(info.macs)} MACs")
    if info.epoch is not None:
        size.append(f"epoch {info.epoch}/{info.total_epochs}")
    if size:
        lines.append(" · ".join(size))
    if info.heldout_accuracy is not None:
        lines.append(f"held-out accuracy of the gates {info.heldout_accuracy:.3f}")
    if info.accuracy is not None:
        best = f" (best {info.best_accuracy:.3f})" if info.best_accuracy is not None else ""
        lines.append(f"test accuracy {info.accuracy:.3f}{best}")
    return "\n".join(lines)


class RunsScreen(PageScreen):
    """A table of runs (stage, status, accuracy, MACs); Enter opens one, finished or not."""

    PAGE = "runs"
    AUTO_FOCUS = "#runs-table"
    CSS_PATH = "runs.tcss"
    BINDINGS = [
        Binding("enter", "open", "Open run", id="runs.open"),
        Binding("r", "refresh", "Refresh", id="runs.refresh"),
        Binding("c", "resume", "Resume", id="runs.resume"),
        Binding("n", "label", "Label", id="runs.label"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="run-preview")

    def on_mount(self) -> None:
        # Model, data set, FLOPs target, regulariser and seed are in the preview under the table:
        # the table fits 80 columns whole, never a column cut mid-word at the right edge.
        self.settings: dict[str, dict] = {}
        self._run_width = 0
        self.infos = []
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    def action_refresh(self) -> None:
        if self.is_current:
            self._list(self.session.runs_root)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def _list(self, root) -> None:
        infos = list_runs(root)
        settings = {i.path: run_settings(Path(i.path)) for i in infos}
        for i in infos:  # what the explorer launched on a run, if it still runs (file reads: here)
            settings[i.path]["launched"] = launched_what(Path(i.path)) if train_process_alive(Path(i.path)) else ""
        self.post_message(RunsListed(infos, settings))

    def on_resize(self) -> None:
        self.call_after_refresh(self._refit)

    def _refit(self) -> None:
        if self._fit_width() != self._run_width:
            self.on_runs_listed(RunsListed(self.infos, self.settings))

    def _fit_width(self) -> int:
        """How wide the run column can be with every other column whole in the table."""
        others = sum(COLUMNS.values()) + 2 * (len(COLUMNS) + 1) + 2  # cell padding, scrollbar
        return max(10, self.query_one(DataTable).size.width - others)

    def on_runs_listed(self, message: RunsListed) -> None:
        from pfs_tui.comparison import short_labels

        table = self.query_one(DataTable)
        keep = table.cursor_row
        self.infos, self.settings = message.infos, message.settings
        width = self._fit_width()
        if width != self._run_width or not table.columns:
            self._run_width = width
            table.clear(columns=True)
            table.add_column("run", key="run", width=width)
            for name, cells in COLUMNS.items():
                table.add_column(name, key=name, width=cells)
        table.clear()
        names = short_labels([self.settings.get(i.path, {}).get("label") or i.name for i in message.infos], width)
        for name, i in zip(names, message.infos, strict=True):
            s = self.settings.get(i.path, {})
            acc = i.accuracy if i.accuracy is not None else i.heldout_accuracy  # test, else the gates' held-out
            # A broken file outranks the status in the table; the preview has both.
            stage, status = stage_status(i, s)
            status = "corrupt" if i.corrupt else status
            table.add_row(name, stage, status, f"{100 * i.progress:.0f}%",
                          "-" if acc is None else f"{acc:.3f}", human(i.macs),
                          *(_cell(v) for v in (s.get("r"), s.get("gamma"))), key=i.path)
        if message.infos:
            table.move_cursor(row=min(keep, len(message.infos) - 1))
        self.query_one("#runs-title", Static).update(
            f" {len(message.infos)} run{'s' * (len(message.infos) != 1)} in {self.session.runs_root}"
            "  (Enter opens one)")

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        info = next((i for i in self.infos if i.path == event.row_key.value), None)
        settings = self.settings.get(event.row_key.value, {})
        self.query_one("#run-preview", Static).update(describe(info, settings) if info else "")

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.open_run(event.row_key.value)

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if self.infos and 0 <= table.cursor_row < len(self.infos):
            self.open_run(self.infos[table.cursor_row].path)

    def action_label(self) -> None:
        """Name the highlighted run (shown instead of its folder name; empty: no label)."""
        table = self.query_one(DataTable)
        if not (self.infos and 0 <= table.cursor_row < len(self.infos)):
            return
        path = Path(self.infos[table.cursor_row].path)

        def done(label: str | None) -> None:
            if label is not None:
                set_run_label(path, label)
                self.action_refresh()

        self.app.push_screen(AskScreen(f"label for {path.name}:", self.settings.get(str(path), {}).get("label", "")),
                             done)

    async def action_resume(self) -> None:
        """Resume the highlighted run (a stopped learning, a killed training)."""
        table = self.query_one(DataTable)
        if self.infos and 0 <= table.cursor_row < len(self.infos):
            await self.app.resume_run(self.infos[table.cursor_row].path)

    def open_run(self, path: str) -> None:
        from pfs_tui.screens.run_detail import RunDetailScreen

        self.app.push_screen(RunDetailScreen(path))
