"""Compare: two or more runs' structures side by side, their correlation, their cost and accuracy."""
from __future__ import annotations

import math
from pathlib import Path

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input, SelectionList, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from engine.errors import PfsError
from engine.runs import list_runs
from pfs_tui.comparison import Comparison, compare, short_labels
from pfs_tui.formatting import explorer_terms, fmt, human
from pfs_tui.messages import ComparisonReady
from pfs_tui.screens.base import PageScreen
from pfs_tui.tasks import run_label
from pfs_tui.widgets.heatmap import HeatMap
from pfs_tui.widgets.keep_bars import KeepBars
from pfs_tui.widgets.mark_list import MarkList

REFRESH_S = 2.0  # the list follows runs that get a structure while the page is shown

EXPLAIN = {
    "layers": "Each bar is the fraction of a layer's channels a run keeps: its structure. "
              "[b cyan]│[/] marks what the [cyan]uniform[/] network of the same MACs keeps (one width "
              "multiplier for every layer). Past the mark the run keeps more than uniform there, short of "
              "it less: learned gates move channels between layers at the same cost.",
    "correlation": "Pearson correlation of two runs' per-layer keep ratios. Near +1: the same shape of "
                   "network; near 0: unrelated shapes. The paper finds structures pruned after "
                   "pre-training alike whatever the seed, and those learned at random init diverse, yet "
                   "as accurate. n/a: a flat (uniform) vector has no shape to correlate.",
    "table": "MACs and params of each pruned network. held-out: accuracy of the gated random network "
             "at the learning step that was kept (it selects the gates, it is not the result). test: "
             "accuracy after retraining the pruned network from scratch (pfs train). mean r: average "
             "correlation with the other runs.",
}


class CompareScreen(PageScreen):
    """Mark runs (space) in the list; the comparison follows every change."""

    PAGE = "compare"
    AUTO_FOCUS = "#compare-runs"  # arriving, space marks at once
    CSS_PATH = "compare.tcss"
    BINDINGS = [
        # The three tabs are one footer entry: at 80 columns the footer has room for ~8 keys.
        Binding("l", "tab('layers')", "Tabs", id="compare.layers", key_display="l/c/t"),
        Binding("c", "tab('correlation')", "Correlation", id="compare.correlation", show=False),
        Binding("t", "tab('table')", "Table", id="compare.table", show=False),
        Binding("i", "explain", "Explain", id="compare.explain"),
        Binding("o", "open_path", "Add path", id="compare.open"),
        Binding("r", "refresh", "Refresh runs", id="compare.refresh", show=False),
        Binding("escape", "close_path", "Close", id="compare.close", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.comparison: Comparison | None = None
        self.error = ""
        self.hint = "mark two or more runs with space (or an experiment; o adds a path)"
        self.extra_paths: list[str] = []  # added by path (experiment directories, runs elsewhere)
        self._key: tuple | None = None
        self._drawn_key: tuple | None = None
        self._listed: list | None = None  # what the list shows, to refill it only when it changed

    def compose_body(self) -> ComposeResult:
        yield MarkList(id="compare-runs")
        yield Input(placeholder="run or experiment directory, Enter adds it (Esc closes)", id="compare-path")
        yield Static("", id="compare-summary")
        yield Static("", id="compare-explain")
        with TabbedContent(id="compare-tabs", initial="layers"):
            with TabPane("Layers", id="layers"):
                with VerticalScroll():
                    yield KeepBars(id="compare-bars")
            with TabPane("Correlation", id="correlation"):
                with VerticalScroll():
                    yield HeatMap(id="compare-heatmap")
            with TabPane("Table", id="table"):
                yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#compare-path", Input).display = False
        self.query_one("#compare-explain", Static).display = False
        self.query_one(DataTable).add_columns("#", "run", "MACs", "params", "held-out", "test", "mean r")
        self.query_one("#compare-runs", MarkList).border_title = "runs with a structure (space marks)"
        self.action_refresh()
        self.set_interval(REFRESH_S, self._refresh_shown)
        self.query_one("#compare-runs").focus()
        self._draw()

    def _refresh_shown(self) -> None:
        if self.is_current:
            self.action_refresh()

    # -- picking runs ------------------------------------------------------------------
    def action_refresh(self) -> None:
        self._list_runs(self.session.runs_root)

    @work(thread=True, exclusive=True, group="compare-list", exit_on_error=False)
    def _list_runs(self, root) -> None:
        infos = [i for i in list_runs(root) if i.macs is not None]
        labels = {i.path: run_label(Path(i.path)) for i in infos}
        experiments = sorted(p for p in Path(root).iterdir() if (p / "results.json").is_file()) \
            if Path(root).is_dir() else []
        self.app.call_from_thread(self._fill_list, infos, experiments, labels)

    def _fill_list(self, infos, experiments, labels: dict | None = None) -> None:
        labels = labels or {}
        options = [(_prompt(labels.get(i.path) or i.name, i.name if labels.get(i.path) else "",
                            f"{i.model} · {i.dataset}"), i.path) for i in infos]
        options += [(f"experiment {escape(p.name)}", str(p)) for p in experiments]
        listed = {value for _, value in options}
        options += [(_prompt(Path(p).name, "", p), p) for p in self.extra_paths if p not in listed]
        if options == self._listed:
            return  # unchanged: refilling would only flicker
        self._listed = options
        picker = self.query_one("#compare-runs", MarkList)
        marked = set(picker.selected) | set(self.extra_paths)
        picker.refill([(prompt, value, value in marked) for prompt, value in options])
        self._key = None  # a label may have changed: draw the comparison again
        self.update_comparison()

    def select_paths(self, paths: list[str | Path]) -> None:
        """Mark these runs or experiment directories (adding those not listed) and compare."""
        picker = self.query_one("#compare-runs", MarkList)
        listed = {picker.get_option_at_index(i).value for i in range(picker.option_count)}
        for p in map(str, paths):
            if p not in listed:
                self.extra_paths.append(p)
                picker.add_option((f"{Path(p).name}  [dim]{escape(p)}[/]", p, True))
            else:
                picker.select(p)
        self.update_comparison()

    @on(SelectionList.SelectedChanged, "#compare-runs")
    def _picked(self) -> None:
        self.update_comparison()

    def action_open_path(self) -> None:
        field = self.query_one("#compare-path", Input)
        field.display = True
        field.focus()

    def action_close_path(self) -> None:
        field = self.query_one("#compare-path", Input)
        if field.display:
            field.display = False
            self.query_one("#compare-runs").focus()

    @on(Input.Submitted, "#compare-path")
    def _path_entered(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if not path:
            return
        if not Path(path).is_dir():
            self.notify(f"{path} is not a directory; give a run or an experiment directory",
                        severity="error", markup=False)
            return
        event.input.value = ""
        self.action_close_path()
        self.select_paths([path])

    # -- comparing ---------------------------------------------------------------------
    def update_comparison(self) -> None:
        paths = tuple(self.query_one("#compare-runs", MarkList).selected)
        key = paths
        if key == self._key:
            return
        self._key = key
        if not paths or (len(paths) == 1 and (Path(paths[0]) / "structure.json").is_file()):
            self.hint = "mark two or more runs with space (or an experiment; o adds a path)"
            self._show(key, None, "")
            return
        self._compare(key, list(paths))

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def _compare(self, key: tuple, paths: list[str]) -> None:
        try:
            result, error = compare(paths), ""
        except PfsError as exc:
            result, error = None, str(exc)
        if not get_current_worker().is_cancelled:
            self.post_message(ComparisonReady(key, result, error))

    def on_comparison_ready(self, message: ComparisonReady) -> None:
        if message.key == self._key:
            self._show(message.key, message.comparison, message.error)

    def _show(self, key: tuple, comparison: Comparison | None, error: str) -> None:
        # One line, in the explorer's words; a refusal clears what the runs marked before showed.
        error = explorer_terms(error).splitlines()[0] if error else ""
        self.comparison, self.error, self._drawn_key = comparison, error, key
        self._draw()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)  # says what failed
        if event.worker.group == "compare" and event.state == WorkerState.ERROR and self._key is not None:
            self._show(self._key, None, f"these runs cannot be compared: {event.worker.error}")

    @property
    def settled(self) -> bool:
        """Whether what is drawn is the comparison of the runs marked now."""
        marked = tuple(self.query_one("#compare-runs", MarkList).selected)
        return self._drawn_key == marked and self._key == marked

    def _draw(self) -> None:
        summary = self.query_one("#compare-summary", Static)
        bars, heat = self.query_one(KeepBars), self.query_one(HeatMap)
        table = self.query_one(DataTable)
        table.clear()
        c = self.comparison
        if c is None:
            summary.update(f"[b red]{escape(self.error)}[/]" if self.error else f"[dim]{escape(self.hint)}[/]")
            bars.show([], [])
            heat.show([], [])
            self.set_status("")
            return
        mean_r = c.mean_correlation()
        note = next((i.note for i in c.items if i.note), "")
        summary.update(f"[b]{escape(c.model)}[/b] on [b]{escape(c.dataset)}[/b] · {len(c.items)} runs · "
                       f"mean r [b]{fmt(mean_r, '+.2f')}[/b] · [cyan]│[/] uniform · i explains"
                       + (f"\n[dim]{escape(note)}[/]" if note else ""))
        n = len(c.items)
        labels = short_labels([i.label for i in c.items], self._label_width(n))
        bars.show(c.groups, [(label, list(i.ratios), list(i.uniform))
                             for label, i in zip(labels, c.items, strict=True)])
        heat.show(labels, c.correlation)
        for k, item in enumerate(c.items):
            others = [c.correlation[k][j] for j in range(n) if j != k and math.isfinite(c.correlation[k][j])]
            table.add_row(str(k + 1), labels[k], human(item.structure.macs), human(item.structure.params),
                          fmt(item.heldout_acc), fmt(item.test_acc),
                          fmt(sum(others) / len(others) if others else None, "+.2f"))
        self.set_status(f"{n} runs · r {fmt(mean_r, '+.2f')}")

    def _label_width(self, runs: int) -> int:
        """How wide a run's label may be so that every view shows all of them at this width:
        the Layers tab's header gives each run a column of (width - 13) / runs cells."""
        return max(6, (self.size.width - 13) // max(1, runs) - 3)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_explain(self) -> None:
        """Show (or hide) what the current tab compares."""
        box = self.query_one("#compare-explain", Static)
        box.display = not box.display
        self._explain()

    @on(TabbedContent.TabActivated)
    def _tab(self) -> None:
        self._explain()

    def _explain(self) -> None:
        box = self.query_one("#compare-explain", Static)
        if box.display:
            box.update(EXPLAIN[self.query_one(TabbedContent).active or "layers"])


def _prompt(label: str, name: str, what: str) -> str:
    """A run in the list: its label (else its folder), the folder when labelled, model and data."""
    return f"{escape(label)}  [dim]{escape(name + ' · ' if name else '')}{escape(what)}[/]"
