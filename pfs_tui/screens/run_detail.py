"""One run, followed live: its stages, curves and whether its `pfs train` still runs."""
from __future__ import annotations

import math
from pathlib import Path

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static

from engine.errors import RunError
from engine.events import EpochEnd, EvalEnd, RunFailed, RunFinished, RunStarted, StepEnd
from engine.runs import RunDir, measured_speed
from pfs_tui.follow import READ_ONLY_REFUSED
from pfs_tui.messages import RunEvents
from pfs_tui.screens.learn import clock
from pfs_tui.tasks import EventFollower, launched_what, train_launched_at, train_log_tail, train_process_alive
from pfs_tui.widgets.curve_plot import CurvePlot, moving_average
from pfs_tui.widgets.nav_bar import NavBar

FOLLOW_S = 0.5


class RunDetailScreen(Screen):
    """Tails RUN/events.jsonl every FOLLOW_S seconds; works for finished runs too."""

    CSS_PATH = "run_detail.tcss"
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back", id="run.back"),
        Binding("g", "use_gates", "Gates", id="run.gates"),
        Binding("r", "replay", "Replay", id="run.replay"),
        Binding("t", "retrain", "Retrain", id="run.retrain"),
        Binding("c", "resume", "Resume", id="run.resume"),
        Binding("x", "stop", "Stop", id="run.stop"),
    ]

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.follower = EventFollower(self.path / "events.jsonl")
        self.learn_steps: list[int] = []
        self.learn_loss: list[float] = []
        self.heldout: list[tuple[int, float]] = []
        self.epochs: list[EpochEnd] = []
        self.stage, self.status, self.last_step = "learn", "stopped", None
        self.alive: bool | None = None
        self.device = ""
        self.error = ""
        self.note = ""  # how a stop on request ended, and how to go on
        self.config_error = ""  # config.json unreadable: said for as long as the page is open
        self.last_time = 0.0  # of the newest event read
        self.train_step: StepEnd | None = None  # the newest training step (every log_every steps)

    def compose(self) -> ComposeResult:
        yield NavBar("runs")
        yield Static("", id="run-head")
        yield ProgressBar(id="run-progress", show_eta=False)
        with Horizontal(id="run-plots"):
            yield CurvePlot("gate learning: loss (moving average)", id="run-learn-plot")
            yield CurvePlot("retraining: test accuracy", id="run-train-plot", marker="dot", zero_based=True)
        yield Footer(compact=True)  # six keys of its own: all of them fit 80 columns

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (getattr(self.app, "follow", None) and action in READ_ONLY_REFUSED)

    def on_mount(self) -> None:
        try:
            self.config = RunDir.open(self.path).config
        except RunError as exc:  # a corrupt config.json: show what the events tell, and why
            self.config, self.config_error = {}, str(exc)
        self.poll()
        self.set_interval(FOLLOW_S, self.poll)

    def poll(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _read(self) -> None:
        events = self.follower.read_new()
        self.post_message(RunEvents(events, train_process_alive(self.path)))

    def on_run_events(self, message: RunEvents) -> None:
        self.alive = message.alive
        for e in message.events:
            self._fold(e)
        self.draw()

    def _fold(self, e) -> None:
        self.last_time = max(self.last_time, e.time)
        stage = getattr(e, "stage", None)
        if stage:
            self.stage = stage
        if isinstance(e, RunStarted):
            self.status, self.error, self.note = "running", "", ""  # a new process: the old ending is history
            if e.stage == "train":
                self.train_step = None  # its steps come next; the killed one's last step is not current
            self.device = str(e.config.get("device", self.device)) if isinstance(e.config, dict) else self.device
        elif isinstance(e, StepEnd):
            self.status, self.last_step = "running", e
            if e.stage == "train":
                self.train_step = e
            else:
                self.learn_steps.append(e.step)
                self.learn_loss.append(e.loss)
        elif isinstance(e, EvalEnd) and e.stage != "train" and math.isfinite(e.accuracy):
            self.heldout.append((e.step, e.accuracy))
        elif isinstance(e, EpochEnd) and e.stage == "train":
            # Resumed from a checkpoint, epochs after it are trained (and reported) again.
            self.epochs = [x for x in self.epochs if x.epoch < e.epoch] + [e]
        elif isinstance(e, RunFinished):
            # A stop on request also ends with RunFinished (its work kept): say stopped.
            self.status = "stopped" if e.summary.get("status") == "stopped" else "finished"
        elif isinstance(e, RunFailed) and e.error.startswith("stopped"):
            self.status, self.note = "stopped", e.error  # stopped on request (x): where, and how to go on
        elif isinstance(e, RunFailed):
            self.status, self.error = "failed", e.error

    def draw(self) -> None:
        cfg = self.config
        status = self.status
        what = launched_what(self.path) if self.alive is not None else ""
        exit_line = ""  # why the launched process ended, while that is the news
        if self.alive is True:
            status += f" ({what} running)"
        elif self.alive is False:
            launched = train_launched_at(self.path) or 0.0
            if self.last_time < launched:  # it wrote no event: it failed before starting its work
                status = f"{what} exited without " + ("training" if what == "pfs train" else "resuming")
            elif self.status not in ("finished", "stopped"):
                status = f"{what} has exited"
            if status.startswith(what) and not self.error:
                exit_line = train_log_tail(self.path)
        head = (f"[b]{escape(self.path.name)}[/b]  {escape(str(cfg.get('model', '?')))} on "
                f"{escape(str(cfg.get('dataset', '?')))}\nstage [b]{escape(self.stage)}[/b] · {escape(status)}")
        if self.device:
            head += f" · device {escape(self.device)}"
        if self.epochs:
            e = self.epochs[-1]
            head += f"\nepoch {e.epoch}/{e.total_epochs}  train acc {e.train_acc:.3f}"
            if math.isfinite(e.test_acc):
                head += f"  test acc [b]{e.test_acc:.3f}[/b]"
        step = self.train_step
        if self.stage == "train" and step is not None:
            # Within the epoch too: a demo retraining shows it moving long before an epoch ends.
            head += f"\nstep {step.step}/{step.total_steps} (epoch {step.epoch})  loss {step.loss:.3f}"
            if self.status == "running" and step.steps_per_s > 0 and getattr(self.app, "show_eta", True):
                head += f"  time left {clock((step.total_steps - step.step) / step.steps_per_s)}"
        if self.heldout:
            head += f"\nheld-out accuracy of the gates {self.heldout[-1][1]:.3f}"
        measured = measured_speed(self.path)
        if measured is not None:
            head += f"\nmeasured (pfs bench): {escape(measured.line())}"
        for problem in (self.config_error, self.error or exit_line):
            head += f"\n[red]{escape(problem)}[/]" if problem else ""
        if self.note and self.status == "stopped" and not (self.error or exit_line):
            head += f"\n{escape(self.note)}"
        self.query_one("#run-head", Static).update(head)
        bar = self.query_one("#run-progress", ProgressBar)
        if self.stage == "train" and step is not None:
            bar.update(total=step.total_steps, progress=step.step)
        elif self.stage == "train" and self.epochs:
            bar.update(total=self.epochs[-1].total_epochs, progress=self.epochs[-1].epoch)
        elif self.last_step is not None:
            bar.update(total=self.last_step.total_steps, progress=self.last_step.step)
        if self.status == "finished":
            bar.update(total=100, progress=100)
        window = max(5, len(self.learn_loss) // 20)
        self.query_one("#run-learn-plot", CurvePlot).show(
            [("orange", self.learn_steps, moving_average(self.learn_loss, window))])
        self.query_one("#run-train-plot", CurvePlot).show(
            [("cyan", [e.epoch for e in self.epochs], [e.test_acc for e in self.epochs])])
        self.query_one(NavBar).set_extra(f"{self.stage} · {self.status}")

    async def action_use_gates(self) -> None:
        await self.app.open_run_gates(self.path)

    async def action_replay(self) -> None:
        await self.app.replay_run(self.path)

    async def action_retrain(self) -> None:
        await self.app.retrain_run(self.path)

    async def action_resume(self) -> None:
        await self.app.resume_run(self.path)

    def action_stop(self) -> None:
        self.app.stop_run_training(self.path)
