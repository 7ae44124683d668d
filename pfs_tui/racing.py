"""The race as the explorer starts and reads it, free of widgets.

Starting: the engine prepares RUN/race (both arms as run directories, engine.jobs.race),
then each arm is one detached `pfs train ARM` with the demo size, as `t` retrains. Reading:
`RaceState` folds both arms' events.jsonl into two test-accuracy curves; it only reads, so
a follower tab and the recorded demo draw the same race.
"""
from __future__ import annotations

import math
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import PfsError, RunError
from engine.events import EpochEnd, RunFailed, RunFinished, RunStarted, StepEnd
from engine.jobs import DEMO, RACE_FILE, Race, find_dense, prepare_race, search_run
from engine.runs import RunDir
from engine.training import TrainOptions
from pfs_tui.demo import RECORDING as DEMO_DIR  # the bundled recording (pfs tui --demo), with a dense run
from pfs_tui.tasks import EventFollower, launch_train, run_busy, train_process_alive


def race_dir(run_path: Path | None) -> Path | None:
    """Where the race of a run lives (RUN/race), None without a run."""
    return None if run_path is None else Path(run_path) / "race"


def arm_command(race: Race, name: str) -> list[str]:
    """`pfs train ARM` with the race's size and seed (the same for both arms)."""
    o = race.options
    cmd = [sys.executable, "-m", "engine", "train", str(race.arm(name)), "--quiet", "--overwrite",
           "--seed", str(o["seed"])]
    for flag, key in (("--epochs", "epochs"), ("--subset", "subset"), ("--test-subset", "test_subset"),
                      ("--batch-size", "batch_size")):
        if o.get(key):
            cmd += [flag, str(o[key])]
    return cmd


def start_race(run_path: Path, budget: float, launcher=launch_train) -> Race:
    """Race the run's learned structure at `budget` against uniform: two detached trainings.

    The run's structure.json is searched again only when its budget differs (a trained run
    keeps its structure: the engine then refuses, and so does this). A race still training
    is refused; a finished one is replaced.
    """
    run_path = Path(run_path)
    busy = run_busy(run_path) or _race_busy(race_dir(run_path))
    if busy:
        raise PfsError(busy)
    structure = RunDir(run_path).read_json_or_empty("structure.json")
    if structure.get("budget") != budget:
        search_run(run_path, budget)
    options = TrainOptions(**DEMO)
    race = prepare_race(run_path, "uniform", options=options, out=race_dir(run_path), overwrite=True)
    threads = str(max(1, (os.cpu_count() or 2) // 2))  # two processes share the cores, not oversubscribe them
    for name in race.arms:
        launcher(race.arm(name), 0, command=arm_command(race, name), env={**os.environ, "OMP_NUM_THREADS": threads})
    return race


def _race_busy(path: Path | None) -> str:
    if path is None or not (path / RACE_FILE).is_file():
        return ""
    try:
        arms = Race.load(path).arms
    except PfsError:
        return ""
    for name in arms:
        if (path / name).is_dir() and (busy := run_busy(path / name)):
            return f"the race is still running ({busy})"
    return ""


@dataclass
class ArmState:
    """One arm as its events tell it: test accuracy per epoch, where it is, its cost."""

    name: str
    path: Path
    follower: EventFollower
    epochs: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    status: str = "waiting"
    step: int = 0
    total_steps: int = 0
    macs: int | None = None
    params: int | None = None
    macs_ratio: float | None = None
    error: str = ""
    alive: bool | None = None

    @property
    def last(self) -> float | None:
        return self.accuracy[-1] if self.accuracy else None

    def fold(self, e) -> None:
        if getattr(e, "stage", None) != "train":
            return  # the learning and search events the arm inherited from its run
        if isinstance(e, RunStarted):
            self.status = "running"
        elif isinstance(e, StepEnd):
            self.status, self.step, self.total_steps = "running", e.step, e.total_steps
        elif isinstance(e, EpochEnd) and math.isfinite(e.test_acc):
            self.epochs.append(e.epoch)
            self.accuracy.append(e.test_acc)
        elif isinstance(e, RunFinished):
            self.status = "stopped" if e.summary.get("status") == "stopped" else "finished"
            self.step = self.total_steps or self.step
        elif isinstance(e, RunFailed):
            self.status, self.error = "failed", e.error


@dataclass
class RaceState:
    """Both arms of the race in RACE, read incrementally; `poll()` returns whether anything moved.

    Polls come from worker threads that may overlap (a cancelled thread worker runs on), and
    the screen draws from the same lists: both hold `lock`, so no event is folded twice and
    no half-folded epoch is drawn.
    """

    path: Path
    race: Race | None = None
    arms: list[ArmState] = field(default_factory=list)
    dense: tuple[float, Path] | None = None
    error: str = ""
    roots: tuple[Path, ...] = ()
    _stamp: tuple | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def poll(self) -> bool:
        with self.lock:
            return self._poll()

    def _poll(self) -> bool:
        stamp = _stamp(self.path / RACE_FILE)
        if stamp != self._stamp:  # a new race replaced the one read (the presenter raced again)
            self.race, self.arms, self.dense, self._stamp = None, [], None, stamp
        if self.race is None and not self._open():
            return False
        moved = False
        for arm in self.arms:
            events = arm.follower.read_new()
            for e in events:
                arm.fold(e)
            alive = train_process_alive(arm.path)
            if events or alive != arm.alive:
                moved = True
            arm.alive = alive
            if alive is False and arm.status in ("waiting", "running"):
                arm.status = "exited"  # the process ended without a last event: killed or refused
        return moved

    def _open(self) -> bool:
        if not (self.path / RACE_FILE).is_file():
            return False
        try:
            self.race = Race.load(self.path)
            config = RunDir.open(self.race.run).config
        except (PfsError, RunError) as exc:
            self.error = str(exc)
            return False
        self.arms = [ArmState(name, self.race.arm(name), EventFollower(self.race.arm(name) / "events.jsonl"))
                     for name in self.race.arms]
        for arm in self.arms:
            _read_cost(arm)
        self.dense = find_dense([*self.roots, self.race.run.parent, DEMO_DIR], config, self.race.options)
        return True

    @property
    def gap(self) -> float | None:
        """Learned minus other, at the last epoch both have tested."""
        a, b = self.arms if len(self.arms) == 2 else (None, None)
        if a is None or not a.accuracy or not b.accuracy:
            return None
        n = min(len(a.accuracy), len(b.accuracy))
        return a.accuracy[n - 1] - b.accuracy[n - 1]


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _read_cost(arm: ArmState) -> None:
    try:
        s = RunDir(arm.path).read_json_or_empty("structure.json")
    except PfsError:
        return
    if isinstance(s.get("macs"), int) and isinstance(s.get("dense_macs"), int) and s["dense_macs"] > 0:
        arm.macs, arm.params, arm.macs_ratio = s["macs"], s.get("params"), s["macs"] / s["dense_macs"]


__all__ = ["DEMO", "ArmState", "RaceState", "arm_command", "race_dir", "start_race"]
