"""Following a run read-only: a workshop room's browsers watch the presenter's run.

`pfs tui --serve --follow RUN` starts one explorer per browser tab, each reading RUN's
events.jsonl (as the run detail does) instead of learning: thirty attendees cost thirty
file tails, not thirty gate-learning processes. `--follow latest` follows the newest run
under the runs folder and moves on when the presenter starts another one.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from engine.errors import PfsError
from engine.events import RunFinished
from engine.runs import RunDir, read_json
from pfs_tui.session import Session, settings_from_config
from pfs_tui.tasks import EventFollower, selected_gates

LATEST = "latest"
# Actions a following explorer neither offers in its footer nor runs.
READ_ONLY_REFUSED = frozenset({"learn", "retrain", "race", "pause", "stop", "export", "resume", "label"})
POLL_S = 0.5  # how often a followed run's events are read


def newest_run(root: Path) -> Path | None:
    """The most recently created run under `root` (its config's `created`, else the folder's time)."""
    best, best_time = None, float("-inf")
    try:
        children = list(Path(root).iterdir())
    except OSError:
        return None
    for child in children:
        try:
            created = read_json(child / "config.json").get("created")
            when = float(created) if isinstance(created, (int, float)) else child.stat().st_mtime
        except (OSError, PfsError, AttributeError):  # not a run (yet): not a candidate this time
            continue
        if when > best_time:
            best, best_time = child, when
    return best


class RunTail:
    """Which run is followed (fixed, or the newest one) and its events since the last read."""

    def __init__(self, target: str | Path, runs_root: Path) -> None:
        self.latest = str(target) == LATEST
        self.root = Path(runs_root)
        self.run: Path | None = None if self.latest else Path(target)
        self.events = EventFollower(self.run / "events.jsonl") if self.run else None

    def switched(self) -> bool:
        """With `latest`: whether a newer run appeared (it is followed from its first event)."""
        if not self.latest:
            return False
        newest = newest_run(self.root)
        if newest is None or newest == self.run:
            return False
        self.run, self.events = newest, EventFollower(newest / "events.jsonl")
        return True

    def read_new(self) -> list:
        return self.events.read_new() if self.events else []


def follow_run(tail: RunTail, session: Session, notify: Callable[[], None], is_cancelled: Callable[[], bool],
               wake: threading.Event | None = None, poll: float = POLL_S) -> str:
    """Fold the followed run's gate-learning events into the session's log until cancelled
    (a fixed run: until it ends); returns the last status. Never writes into the run."""
    wake = wake or threading.Event()
    if tail.run is not None:
        _start(tail.run, session)
    else:
        session.log.set_status("waiting", f"no run under {tail.root} yet; following the newest one")
        notify()
    log, configured = session.log, False
    while not is_cancelled():
        if tail.switched():
            _start(tail.run, session)
            log, configured = session.log, False
        if not configured and tail.run is not None:
            configured = _apply_settings(tail.run, session)
        events = [e for e in tail.read_new() if getattr(e, "stage", "learn") != "train"]
        for event in events:
            log.add(event)
            if isinstance(event, RunFinished):
                if RunDir(tail.run).exists("gates.pt"):
                    selected_gates(tail.run, log)  # the gates the run selected, as `pfs train` uses
                    session.run_finished = True
                if event.summary.get("status") == "stopped":
                    log.set_status("stopped")
        if events:
            notify()
        if log.status in ("finished", "stopped", "failed") and not tail.latest:
            return log.status
        wake.wait(poll)  # the poll period; `wake` cuts it short when the page stops following
    return log.status


def _start(run: Path, session: Session) -> None:
    """Show `run` from its beginning, in a fresh log."""
    session.run_path, session.run_finished = run, False
    session.reset_log().set_status("following", f"{run} (read-only)")


def _apply_settings(run: Path, session: Session) -> bool:
    """Take the run's settings (r, gamma, model...) for the pages; False before its config exists."""
    try:
        session.settings = settings_from_config(RunDir.open(run).config, session.settings)
    except PfsError:
        return False
    return True
