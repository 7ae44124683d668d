"""Race: the learned structure against uniform at the same MACs, retrained side by side.

Both arms' test accuracy per epoch on one plot, their MACs and params, the gap with its
sign, and the dense network's accuracy as a line where a dense run of the same size is
known. It only reads run directories (pfs_tui.racing), so it works the same live, in a
follower tab and in the recorded demo; the race is started from the Structure page.
"""
from __future__ import annotations

from contextlib import nullcontext

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Static

from pfs_tui.formatting import human
from pfs_tui.racing import DEMO, RaceState, race_dir
from pfs_tui.screens.base import PageScreen
from pfs_tui.widgets.curve_plot import CurvePlot

POLL_S = 0.5
COLORS = ("cyan", "orange")
DENSE_COLOR = "gray"


class RaceMoved(Message):
    """The race's files were read; the screen redraws from its RaceState."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RaceMoved)


class RaceScreen(PageScreen):
    """Reads RUN/race of the current run (started here, followed, or replayed)."""

    PAGE = "race"
    CSS_PATH = "race.tcss"

    def __init__(self) -> None:
        super().__init__()
        self.state: RaceState | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="race-head")
        # Braille and the data's own range: a gap of a point must be visible, not one text row.
        yield CurvePlot("test accuracy per epoch", id="race-plot")

    def on_mount(self) -> None:
        self.set_interval(POLL_S, self.poll)
        self.poll()

    def on_screen_resume(self) -> None:
        self.poll()

    def poll(self) -> None:
        if not self.is_current:
            return  # read again when shown (on_screen_resume)
        path = race_dir(self.session.run_path)
        if self.state is None or self.state.path != path:
            self.state = RaceState(path, roots=(self.session.runs_root,)) if path is not None else None
        if self.state is not None:
            self._read(self.state)
        else:
            self.draw()

    @work(thread=True, exclusive=True, group="race", exit_on_error=False)
    def _read(self, state: RaceState) -> None:
        state.poll()  # file reads off the UI thread; draw() reads `state` under its lock
        self.post_message(RaceMoved())

    def on_race_moved(self, _: RaceMoved) -> None:
        self.draw()

    def draw(self) -> None:
        state = self.state
        with state.lock if state is not None else nullcontext():  # a worker may be folding events in
            self._draw(state)

    def _draw(self, state: RaceState | None) -> None:
        head = self.query_one("#race-head", Static)
        if state is None or state.race is None:
            why = f"\n[red]{escape(state.error)}[/]" if state is not None and state.error else ""
            head.update("[b]no race yet[/b] for this run: learn gates (or open a run's gates), then press "
                        f"[b]v[/b] on the Structure page to retrain the learned and the uniform structure "
                        f"side by side ({_size(DEMO)}){why}")
            self.query_one(CurvePlot).show([])
            self.set_status("no race")
            return
        race = state.race
        lines = [f"[b]{escape(race.arms[0])}[/b] vs [b]{escape(race.arms[1])}[/b], same MACs · "
                 f"{_size(race.options)} · seed {race.options.get('seed')}"]
        for arm, color in zip(state.arms, COLORS):
            acc = f"{arm.last:.3f}" if arm.last is not None else "-"
            cost = f"{human(arm.macs)} MACs ({arm.macs_ratio:.2f})  {human(arm.params)} params" if arm.macs else ""
            where = (f"step {arm.step}/{arm.total_steps}" if arm.status == "running" and arm.total_steps
                     else f"epoch {arm.epochs[-1] if arm.epochs else 0}/{race.options.get('epochs') or '?'}")
            lines.append(f"[{color}]■ {escape(arm.name):<8}[/] test [b]{acc}[/b]  {cost}  {where} · "
                         f"{escape(arm.status)}" + (f" [red]{escape(arm.error)}[/]" if arm.error else ""))
        gap = state.gap
        line = (f"gap {race.arms[0]} - {race.arms[1]}: [b]{gap:+.3f}[/b]"
                + (" (learned ahead)" if gap > 0 else " (learned behind)" if gap < 0 else " (level)")
                if gap is not None else "gap: after both arms' first epoch")
        dense = state.dense
        line += (f"   [{DENSE_COLOR}]─ dense {dense[0]:.3f}[/]" if dense
                 else "   dense: not known at this size (pfs race --dense)")
        lines.append(line)
        head.update("\n".join(lines))
        # Copies: the plot compares with what it drew, and the reader appends to the arms' lists.
        series = [(color, list(arm.epochs), list(arm.accuracy)) for arm, color in zip(state.arms, COLORS)]
        epochs = race.options.get("epochs") or max([e for a in state.arms for e in a.epochs], default=1)
        if dense and any(arm.accuracy for arm in state.arms):  # alone, it would set the plot's range
            series.append((DENSE_COLOR, [1, max(2, epochs)], [dense[0], dense[0]]))
        self.query_one(CurvePlot).show(series)
        statuses = {a.status for a in state.arms}
        self.set_status("race " + (statuses.pop() if len(statuses) == 1 else "running"))


def _size(options: dict) -> str:
    """The training size in words: epochs, images, test images."""
    images = f"{options['subset']:,} images" if options.get("subset") else "all images"
    tested = f"{options['test_subset']:,} test images" if options.get("test_subset") else "all test images"
    batch = f" (batch {options['batch_size']})" if options.get("batch_size") else ""
    return f"{options.get('epochs') or 'recipe'} epochs × {images}{batch}, {tested}"
