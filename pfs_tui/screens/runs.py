"""Runs: every run directory under the runs root, refreshed while the page is shown."""
from __future__ import annotations

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from engine.runs import list_runs
from pfs_tui.formatting import human
from pfs_tui.messages import RunsListed
from pfs_tui.screens.base import PageScreen

REFRESH_S = 2.0




def describe(info) -> str:
    """A few lines about one run for the preview under the table."""
    lines = [f"[b]{escape(info.name)}[/b]  {escape(info.path)}",
             escape(f"{info.model} on {info.dataset} · stage {info.stage} · {info.status}")]
    if info.budget is not None and info.macs is not None:
        lines.append(f"FLOPs target {info.budget:g} → {human(info.macs)} MACs")
    if info.epoch is not None:
        lines.append(f"epoch {info.epoch}/{info.total_epochs}")
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
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="run-preview")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # Model and data set are in the preview (and usually the run name): the table fits 80 columns.
        table.add_columns("run", "stage", "status", "prog", "acc", "MACs")
        self.infos = []
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    def action_refresh(self) -> None:
        if self.is_current:
            self._list(self.session.runs_root)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def _list(self, root) -> None:
        self.post_message(RunsListed(list_runs(root)))

    def on_runs_listed(self, message: RunsListed) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        self.infos = message.infos
        table.clear()
        for i in message.infos:
            acc = i.accuracy if i.accuracy is not None else i.heldout_accuracy  # test, else the gates' held-out
            table.add_row(i.name, i.stage, i.status, f"{100 * i.progress:.0f}%",
                          "-" if acc is None else f"{acc:.3f}", human(i.macs), key=i.path)
        if message.infos:
            table.move_cursor(row=min(keep, len(message.infos) - 1))
        self.query_one("#runs-title", Static).update(
            f" {len(message.infos)} run{'s' * (len(message.infos) != 1)} in {self.session.runs_root}"
            "  (Enter opens one)")

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        info = next((i for i in self.infos if i.path == event.row_key.value), None)
        self.query_one("#run-preview", Static).update(describe(info) if info else "")

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.open_run(event.row_key.value)

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if self.infos and 0 <= table.cursor_row < len(self.infos):
            self.open_run(self.infos[table.cursor_row].path)

    async def action_resume(self) -> None:
        """Resume the highlighted run (a stopped learning, a killed training)."""
        table = self.query_one(DataTable)
        if self.infos and 0 <= table.cursor_row < len(self.infos):
            await self.app.resume_run(self.infos[table.cursor_row].path)

    def open_run(self, path: str) -> None:
        from pfs_tui.screens.run_detail import RunDetailScreen

        self.app.push_screen(RunDetailScreen(path))
