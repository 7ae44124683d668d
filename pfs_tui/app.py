"""The pfs terminal explorer: pages as modes, and the few actions that span pages."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input

from engine.errors import PfsError
from pfs_tui.follow import READ_ONLY_REFUSED
from pfs_tui.formatting import explorer_terms
from pfs_tui.preferences import PERSISTED
from pfs_tui.preferences import save as save_preferences
from pfs_tui.screens.compare import CompareScreen
from pfs_tui.screens.help import HelpScreen
from pfs_tui.screens.learn import LearnScreen
from pfs_tui.screens.race import RaceScreen
from pfs_tui.screens.runs import RunsScreen
from pfs_tui.screens.setup import SetupScreen
from pfs_tui.screens.structure import StructureScreen
from pfs_tui.session import Session, settings_from_config
from pfs_tui.tasks import (
    device_label,
    gates_to_lists,
    has_train_stage,
    launch_resume,
    launch_train,
    load_replay,
    run_busy,
)


class PfsApp(App):
    """Setup -> Learn -> Structure -> Runs -> Compare, each a mode so its state survives switching."""

    TITLE = "pfs"
    CSS_PATH = "app.tcss"
    MODES = {"setup": SetupScreen, "learn": LearnScreen, "structure": StructureScreen,
             "runs": RunsScreen, "compare": CompareScreen, "race": RaceScreen, "help": HelpScreen}
    BINDINGS = [
        Binding("1", "page('setup')", "Setup", id="page.setup", show=False),
        Binding("2", "page('learn')", "Learn", id="page.learn", show=False),
        Binding("3", "page('structure')", "Structure", id="page.structure", show=False),
        Binding("4", "page('runs')", "Runs", id="page.runs", show=False),
        Binding("5", "page('compare')", "Compare", id="page.compare", show=False),
        Binding("6", "page('race')", "Race", id="page.race", show=False),
        Binding("question_mark", "page('help')", "Help", id="page.help", key_display="?"),
        Binding("f1", "show_help", "Help", id="page.help.f1", show=False),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, session: Session | None = None, *, start: str = "setup", replay: str | None = None,
                 show_eta: bool = True, blink: bool = True, launcher=launch_train, follow: str | None = None,
                 resumer=launch_resume) -> None:
        super().__init__()
        self.session = session or Session()
        self.start_page = start
        self.replay_source = replay
        self.show_eta = show_eta  # snapshot tests freeze it
        self.blink = blink
        self.launcher = launcher  # tests swap in a stub `pfs train`
        self.resumer = resumer  # and `pfs resume`
        self.quitting = False
        self._confirm_retrain: Path | None = None
        self.hard_exit = False  # quit at once, abandoning a learning thread (see __main__)
        self.follow = follow  # a run (or "latest") this explorer only watches: nothing is learned or written

    async def on_mount(self) -> None:
        if self.follow:
            await self.switch_mode("learn")
            self.screen.start_follow(self.follow)
        await self.switch_mode(self.start_page)
        if self.replay_source:
            await self.replay_run(self.replay_source)

    async def action_quit(self) -> None:
        """Quit; gate learning in progress is first stopped so its run keeps its gates."""
        learning = self.session.learning
        if learning is None:
            self.exit()
        elif self.quitting:
            self.hard_exit = True  # second q: do not wait for the learning thread
            self.exit()
        else:
            self.quitting = True
            learning.stop()
            self.session.log.set_status("stopping")
            self.notify("stopping gate learning so the run keeps its gates; quitting when saved "
                        "(q again: quit now, the run is left unfinished)", timeout=30)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # In a field, `?` is typed text (Input takes printable keys first): do not offer
        # Help in the footer there. F1 still opens it.
        if action == "page" and parameters == ("help",) and isinstance(self.focused, Input):
            return False
        if self.follow and action in READ_ONLY_REFUSED:
            return False  # a follower learns and writes nothing: do not offer it in the footer
        return True

    async def action_page(self, page: str) -> None:
        await self.switch_mode(page)

    async def action_show_help(self) -> None:
        await self.switch_mode("help")

    def set_setting(self, name: str, value) -> None:
        """Change one setting (pages read them when they are shown); a valid value set on
        any page clears the error another page's field had for it."""
        setattr(self.session.settings, name, value)
        self.session.invalid.pop(name, None)
        if self.session.prefs_path is not None and name in PERSISTED:
            try:
                save_preferences(self.session.prefs_path, self.session.settings)
            except OSError as exc:
                self.notify(f"could not keep {name} for next time: {exc}", severity="warning", markup=False)

    def _apply_run_config(self, path: Path) -> dict:
        from engine.runs import RunDir

        config = RunDir.open(path).config
        self.session.settings = settings_from_config(config, self.session.settings)
        return config

    # -- actions spanning pages ----------------------------------------------------
    def refuse_when_following(self) -> bool:
        """Whether this explorer only follows a run (and says so): then it learns and writes nothing."""
        if self.follow:
            self.notify(f"this explorer follows {self.session.run_path or self.follow} read-only: "
                        "learning and retraining happen on the presenter's explorer", severity="warning",
                        markup=False)
        return bool(self.follow)

    async def action_learn(self) -> None:
        """Start gate learning with the current settings and show it."""
        if self.refuse_when_following():
            return
        if self.session.invalid:
            self.notify("fix the settings first: " + "; ".join(self.session.invalid.values()),
                        severity="error", markup=False)
            await self.switch_mode("setup")
            return
        await self.switch_mode("learn")
        self.screen.start_learning()

    async def replay_run(self, path: str | Path) -> None:
        """Replay a recorded run's gate learning (no compute) on the Learn page."""
        try:
            run, events = load_replay(path)
            self._apply_run_config(run.path)
        except PfsError as exc:
            self.notify(explorer_terms(str(exc)), severity="error", markup=False)
            return
        await self.switch_mode("learn")
        self.session.replay_path = run.path
        self.session.run_path, self.session.run_finished = run.path, run.exists("gates.pt")
        self.screen.start_replay(events)

    async def open_run_gates(self, path: str | Path) -> None:
        """Show a run's selected gates (gates.pt) on the Structure page."""
        from engine.runs import RunDir, load_gated_model

        path = Path(path)
        try:
            self._apply_run_config(path)
            model = load_gated_model(path)
        except PfsError as exc:
            self.notify(explorer_terms(str(exc)), severity="error", markup=False)
            return
        run = RunDir(path)
        budget = run.read_json_or_empty("structure.json").get("budget")
        if isinstance(budget, (int, float)) and 0 < budget <= 1:
            self.set_setting("budget", float(budget))  # the target the run was searched at
        step = run.read_json_or_empty("summary.json")
        step = (step.get("learn") or step).get("selected_step") or 0
        self.session.reset_log().set_gates(gates_to_lists({g: m.weight for g, m in model.gates().items()}),
                                           int(step))
        self.session.run_path, self.session.run_finished = path, True
        await self.switch_mode("structure")

    async def action_retrain(self) -> None:
        """Retrain the structure at the current target from the current run (Structure page)."""
        s = self.session
        if s.run_path is None or not s.run_finished:
            self.notify("learn gates first (s on the Learn page), or open a run's gates (Runs, g)",
                        severity="warning")
            return
        await self.retrain_run(s.run_path, search=True)

    async def action_race(self) -> None:
        """Race the learned structure at the current target against uniform (Structure page):
        two detached `pfs train` at the demo size, shown on the Race page."""
        from pfs_tui.racing import start_race

        s = self.session
        if self.refuse_when_following():
            return
        if s.run_path is None or not s.run_finished:
            self.notify("learn gates first (s on the Learn page), or open a run's gates (Runs, g)",
                        severity="warning")
            return
        try:
            race = start_race(s.run_path, s.settings.budget, launcher=self.launcher)
        except PfsError as exc:
            self.notify(explorer_terms(str(exc)), severity="error", markup=False)
            return
        self.notify(f"race started on {device_label()}: {race.arms[0]} and {race.arms[1]} train side by side "
                    "(they keep running if you quit)", markup=False)
        await self.switch_mode("race")

    async def retrain_run(self, path: str | Path, *, search: bool = False) -> None:
        """Write the run's structure.json if needed, start `pfs train` detached, follow it."""
        from engine.jobs import search_run
        from pfs_tui.screens.run_detail import RunDetailScreen

        path = Path(path)
        if self.refuse_when_following():
            return
        busy = run_busy(path)
        if busy:  # never rewrite structure.json or launch a second `pfs train` under a live one
            self._confirm_retrain = None
            self.notify(busy, severity="warning", markup=False)
            return
        try:
            overwrite = has_train_stage(path)
            if overwrite and self._confirm_retrain != path:
                self._confirm_retrain = path
                self.notify(f"{path.name} was already retrained; t again starts it over (pfs train --overwrite)",
                            severity="warning", timeout=10)
                return
            self._confirm_retrain = None
            if search or not (path / "structure.json").is_file():
                search_run(path, self.session.settings.budget, overwrite=overwrite)
            s = self.session.settings
            pid = self.launcher(path, s.train_epochs, overwrite=overwrite, subset=s.train_subset)
        except PfsError as exc:
            self.notify(explorer_terms(str(exc)), severity="error", markup=False)
            return
        self.notify(f"pfs train started on {device_label()} (pid {pid}); it keeps running if you quit")
        await self.switch_mode("runs")
        if not isinstance(self.screen, RunDetailScreen) or self.screen.path != path:
            await self.push_screen(RunDetailScreen(path))

    async def resume_run(self, path: str | Path) -> None:
        """Continue a stopped or killed run with the engine's resume (`pfs resume`, detached)
        and follow it on its page: gate learning from its checkpoint, or its training."""
        from engine.runs import run_info
        from pfs_tui.screens.run_detail import RunDetailScreen

        path = Path(path)
        if self.refuse_when_following():
            return
        if self.session.learning is not None and self.session.run_path == path:
            self.notify("this explorer is learning that run's gates now; stop it (x) first", severity="warning")
            return
        busy = run_busy(path)
        if busy:
            self.notify(busy, severity="warning", markup=False)
            return
        try:
            info = run_info(path)
        except PfsError as exc:
            self.notify(explorer_terms(str(exc)), severity="error", markup=False)
            return
        if info.status in ("finished", "running"):
            self.notify(f"{path.name} is {info.status} ({info.stage}): nothing to resume", severity="warning",
                        markup=False)
            return
        pid = self.resumer(path)
        self.notify(f"pfs resume started (pid {pid}): {info.stage} continues from its last checkpoint; "
                    "it keeps running if you quit", markup=False)
        if not isinstance(self.screen, RunDetailScreen) or self.screen.path != path:
            await self.switch_mode("runs")
            await self.push_screen(RunDetailScreen(path))

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Save the screen as SVG in the working directory and say where (the palette's
        Screenshot). Textual's default saves into ~/Downloads, which a server often lacks;
        served to a browser, the browser still receives it."""
        if self.is_web:
            return super().deliver_screenshot(filename, path, time_format)
        try:
            saved = self.save_screenshot(filename, path or os.getcwd(), time_format)
        except OSError as exc:
            self.notify(f"screenshot not saved: {exc}", severity="error", markup=False)
            return None
        self.notify(f"screenshot saved to {saved}", markup=False, timeout=10)
        return saved

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Start gate learning", "Learn gates with the current settings", self.action_learn)
        yield SystemCommand("Export structure.json", "Write the structure at the FLOPs target",
                            self._export)
        yield SystemCommand("Retrain (pfs train)", "Train the pruned network as a detached process",
                            self.action_retrain)
        for page in ("setup", "learn", "structure", "runs", "compare", "race", "help"):
            yield SystemCommand(f"Go to {page}", f"Show the {page} page",
                                lambda p=page: self.switch_mode(p))

    async def _export(self) -> None:
        await self.switch_mode("structure")
        self.screen.action_export()
