"""Learn: gate learning (or a replay) live: curves, gate statistics and histogram."""
from __future__ import annotations

import math
import threading

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Static
from textual.worker import Worker

from engine.errors import PfsError
from pfs_tui.demo_schedule import DEMO_NAME, DEMO_STEPS
from pfs_tui.formatting import explorer_terms, fmt
from pfs_tui.messages import LearnDone, LearnProgress
from pfs_tui.screens.base import PageScreen
from pfs_tui.session import Pauser, channel_count
from pfs_tui.tasks import SPEEDS, replay, run_learning, selected_gates
from pfs_tui.widgets.curve_plot import CurvePlot, moving_average
from pfs_tui.widgets.explanation import LEARN as LEARN_TEXT
from pfs_tui.widgets.explanation import Explanation
from pfs_tui.widgets.gate_histogram import GateHistogram

REDRAW_HZ = 4  # steady redraw rate, however fast steps arrive


def clock(seconds: float) -> str:
    """Seconds as m:ss (or h:mm:ss)."""
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class LearnScreen(PageScreen):
    """Start, pause, resume and stop gate learning; everything redraws at REDRAW_HZ."""

    PAGE = "learn"
    CSS_PATH = "learn.tcss"
    BINDINGS = [
        Binding("s", "app.learn", "Start", id="learn.start"),
        Binding("space,p", "pause", "Pause/resume", id="learn.pause"),
        Binding("x", "stop", "Stop", id="learn.stop"),
        Binding("left_square_bracket", "speed(-1)", "Slower", id="learn.slower", show=False),
        Binding("right_square_bracket", "speed(1)", "Faster", id="learn.faster", show=False),
        Binding("i", "explain", "Explain", id="learn.explain"),
        Binding("j", "jump", "Jump to step", id="learn.jump"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pauser: Pauser | None = None
        self.speed_index = SPEEDS.index(10.0)
        self._drawn = -1
        self.draws = 0  # redraws done (the tests check the rate stays bounded)
        self._follow_wake = threading.Event()
        self.replay_events: list = []

    def compose_body(self) -> ComposeResult:
        with Vertical(id="learn-top"):
            yield Static("", id="learn-status")
            yield ProgressBar(id="learn-progress", show_eta=False, show_percentage=True)
            yield Static("", id="learn-stats")
        yield Explanation(LEARN_TEXT, id="explain")
        with Horizontal(id="plots"):
            yield CurvePlot("loss (and its moving average)", id="loss-plot")
            yield CurvePlot("held-out accuracy", id="acc-plot", marker="dot", zero_based=True)
        yield Label("", id="hist-title")
        yield GateHistogram(id="gate-hist")

    def on_mount(self) -> None:
        self.set_interval(1 / REDRAW_HZ, self.redraw)
        self.redraw()

    def on_screen_resume(self) -> None:
        # Show the page first, then bring the plots up to date (plotting takes tens of ms).
        self.call_after_refresh(self.redraw, True)

    # -- running -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(w.is_running for w in self.workers if w.group == "learn")

    def start_learning(self) -> None:
        """Start gate learning with the current settings (refused while one runs)."""
        if self.running:
            self.notify("gate learning is already running; stop it first (x)", severity="warning")
            return
        self.workers.cancel_group(self, "follow")  # a run followed here (resumed elsewhere) is left
        self._follow_wake.set()
        self._follow_wake = threading.Event()
        self.session.replay_path = None
        self.session.reset_log().set_status("loading", "loading data")
        self.pauser = self.session.learning = Pauser()
        self._drawn = -1
        self._learn(self.pauser)

    def start_replay(self, events: list, start_at: int = 0, restart: bool = False) -> None:
        """Replay recorded events at the current speed (no compute), from step `start_at` on."""
        if self.running and not restart:
            self.notify("something is already running here; stop it first (x)", severity="warning")
            return
        self.session.reset_log().set_status("loading", f"replay of {self.session.replay_path or 'events'}")
        self.replay_events = events
        self.pauser = Pauser()
        self._drawn = -1
        self._replay(events, self.pauser, start_at)  # exclusive: a replay running before is cancelled

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "jump":
            return self.session.replay_path is not None and bool(self.replay_events)
        return super().check_action(action, parameters)

    def action_jump(self) -> None:
        """Ask for a step and replay from there (the steps before it are shown at once)."""
        from pfs_tui.screens.ask import AskScreen

        last = max((getattr(e, "total_steps", 0) for e in self.replay_events), default=0)

        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                step = int(text.strip())
            except ValueError:
                self.notify(f"jump to step: a whole number from 0 to {last}, please", severity="error")
                return
            self.start_replay(self.replay_events, start_at=max(0, step), restart=True)

        steps = self.session.log.snapshot()["steps"]
        self.app.push_screen(AskScreen(f"jump to step (0-{last}):", str(steps[-1] if steps else 0)), done)

    def start_follow(self, target: str, working=None) -> None:
        """Follow a run's events read-only (`pfs tui --follow`, or a run `pfs resume` continues:
        `working()` says whether its process still runs): curves, gates and its settings."""
        from pfs_tui.follow import RunTail

        self._drawn = -1
        self._follow(RunTail(target, self.session.runs_root), self._follow_wake, working)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _follow(self, tail, wake: threading.Event, working=None) -> None:
        from pfs_tui.follow import follow_run

        worker = self._current_worker()
        status = follow_run(tail, self.session, self._notify, lambda: worker.is_cancelled, wake, working=working)
        self.post_message(LearnDone(status, f"the followed run {tail.run}"))

    def on_unmount(self) -> None:
        self._follow_wake.set()  # end the follower's wait at once when the app quits

    @work(thread=True, exclusive=True, group="learn", exit_on_error=False)
    def _learn(self, pauser: Pauser) -> None:
        worker = self._current_worker()
        try:
            status, detail = run_learning(self.session, pauser, self._notify, lambda: worker.is_cancelled)
        except PfsError as exc:  # a user mistake (missing data, bad setting): say how to fix it
            status, detail = "failed", explorer_terms(str(exc))
            self.session.log.set_status(status, detail)
        except Exception as exc:  # a bug: the worker fails with it and the page reports it
            self.session.learning = None
            self.session.log.set_status("failed", f"{type(exc).__name__}: {exc}")
            raise
        self.post_message(LearnDone(status, detail))

    @work(thread=True, exclusive=True, group="learn", exit_on_error=False)
    def _replay(self, events: list, pauser: Pauser, start_at: int = 0) -> None:
        worker = self._current_worker()
        status = replay(events, self.session.log, pauser, lambda: SPEEDS[self.speed_index], self._notify,
                        lambda: worker.is_cancelled, start_at=start_at)
        if worker.is_cancelled:
            return  # replaced by a jump: the new replay reports
        if status == "finished" and self.session.run_finished and self.session.replay_path is not None:
            # End on the gates the run selected (what `pfs train` would use), not the last snapshot.
            selected_gates(self.session.replay_path, self.session.log)
            self._notify()
        self.post_message(LearnDone(status, "replay"))

    def _current_worker(self):
        from textual.worker import get_current_worker

        return get_current_worker()

    def _notify(self) -> None:
        self.post_message(LearnProgress())

    def on_learn_progress(self, message: LearnProgress) -> None:
        # Drawing happens on the timer; the message only wakes the screen up.
        pass

    def on_learn_done(self, message: LearnDone) -> None:
        self.session.learning = None
        if self.app.quitting:
            return  # the app quits once the worker has ended (on_worker_state_changed)
        self.redraw()
        severity = "error" if message.status == "failed" else "information"
        self.notify(f"gate learning {message.status}: {message.detail}", severity=severity, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        # Quitting waits for the learning worker itself to end, not for its LearnDone:
        # the thread posts LearnDone just before it returns, and on a loaded machine the
        # app could otherwise exit (cancelling every worker) before the worker finished.
        if (event.worker.group == "learn" and event.worker.is_finished and self.app.quitting
                and not self.running):
            self.session.learning = None
            self.app.exit()

    def action_pause(self) -> None:
        if not (self.pauser and self.running):
            self.notify("nothing is running; press s to start", severity="warning")
            return
        if self.pauser.paused:
            self.pauser.resume()
            self.session.log.set_status("running")
        else:
            self.pauser.pause()
            # "paused" comes from the worker once it really blocks (after the current step).
            self.session.log.set_status("pausing")
        self.redraw()

    def action_stop(self) -> None:
        if self.pauser and self.running:
            self.pauser.stop()
            self.session.log.set_status("stopping")
            self.redraw()

    def action_explain(self) -> None:
        """Show or hide what mean gate, open and the selected step mean."""
        self.query_one(Explanation).toggle()

    def action_speed(self, step: int) -> None:
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + step))
        self.redraw(force=True)

    # -- drawing -------------------------------------------------------------------
    def redraw(self, force: bool = False) -> None:
        """Redraw from the log if it moved (called REDRAW_HZ times a second)."""
        log = self.session.log
        if (log.version == self._drawn or not self.is_current) and not force:
            return  # unchanged, or another page is shown: drawing would only steal CPU
        snap = log.snapshot()
        self._drawn = snap["version"]
        self.draws += 1
        s = self.session.settings
        last = snap["last"]
        status = snap["status"]
        replaying = self.session.replay_path is not None
        if replaying:
            speed = SPEEDS[self.speed_index]
            status += f" · replay {'max' if math.isinf(speed) else f'{speed:g}x'} ([ ] speed)"
        line = f"[b]{status}[/b]"
        if last is not None:
            line += f"  step {last.step}/{last.total_steps}  {last.steps_per_s:.1f} steps/s"
            if last.steps_per_s > 0 and snap["status"] in ("running", "paused") and getattr(self.app, "show_eta", True):
                line += f"  ETA {clock((last.total_steps - last.step) / last.steps_per_s)}"
        self.query_one("#learn-status", Static).update(line)
        bar = self.query_one("#learn-progress", ProgressBar)
        bar.update(total=last.total_steps if last else 100, progress=last.step if last else 0)
        heldout = snap["heldout"]
        stats = (f"mean gate [b]{fmt(last.mean_gate if last else None)}[/b] (r {s.sparsity:g})  "
                 f"open [b]{fmt(last.open_frac if last else None)}[/b]  "
                 f"loss {fmt(last.loss if last else None)}  "
                 f"held-out [b]{fmt(heldout[-1][1] if heldout else None)}[/b]")
        if snap["message"] and snap["status"] != "idle":
            stats += f"\n{escape(snap['message'])}"
        if snap["warning"]:
            stats += f"\n[b yellow]warning:[/] {escape(snap['warning'])}"
        if (last.total_steps if last else s.steps) == DEMO_STEPS:  # the run shown, not Setup's (a replay)
            stats += f"\n[dim]{escape(DEMO_NAME)}[/]"
        self.query_one("#learn-stats", Static).update(stats)
        steps, loss = snap["steps"], snap["loss"]
        window = max(5, len(loss) // 20)
        self.query_one("#loss-plot", CurvePlot).show(
            [("gray", steps, loss), ("orange", steps, moving_average(loss, window))])
        self.query_one("#acc-plot", CurvePlot).show(
            [("cyan", [h[0] for h in heldout], [h[1] for h in heldout])])
        gates = snap["gates"]
        if gates:
            values = [v for vs in gates.values() for v in vs]
            title = f"gate histogram at step {snap['gates_step']} ({len(values)} channels)"
        else:
            values = self._initial_gates()
            title = f"gate histogram: all {len(values)} gates start at 1" if values else "gates start at 1"
        self.query_one("#hist-title", Label).update(title)
        self.query_one("#gate-hist", GateHistogram).show(values, s.sparsity)
        self.set_status(self._bar_text(snap))

    def _initial_gates(self) -> list[float]:
        """One 1.0 per prunable channel of the chosen model (before any learning)."""
        try:
            count = channel_count(self.session.settings, self.session.data_root)
        except PfsError:
            return []
        return [1.0] * (count or 0)

    def _bar_text(self, snap: dict) -> str:
        last = snap["last"]
        if last is None:
            return snap["status"]
        return f"{snap['status']} {100 * last.step / max(1, last.total_steps):.0f}%"
