"""Driving the explorer from code (tests, benchmarks): frozen app, bounded waits, widget text."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from pfs_tui.app import PfsApp
from pfs_tui.session import Session, Settings

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "tui" / "fixtures"
FIXED_MTIME = 1_700_000_000  # runs list newest first: fixed times keep the order stable


def copy_run(name: str, root: Path, as_name: str | None = None, mtime: float = FIXED_MTIME) -> Path:
    """A recorded fixture run copied into `root` (files dated `mtime`)."""
    dest = root / (as_name or name)
    shutil.copytree(FIXTURES / name, dest)
    for f in dest.iterdir():
        os.utime(f, (mtime, mtime))
    return dest


def make_app(runs_root: Path, start: str = "setup", **settings) -> PfsApp:
    """The explorer with blinking and ETA frozen, on `runs_root`, opening page `start`."""
    session = Session(settings=Settings(**settings), runs_root=runs_root)
    return PfsApp(session, start=start, show_eta=False, blink=False)


# The least time any wait gets. Waits are bounds against hanging, never speed checks: a test
# asking for 60 s of a 6-step learning run timed out at 90 s on 2 cores running 6 processes.
MIN_WAIT_S = 300.0


async def wait_until(pilot, predicate, timeout: float = MIN_WAIT_S, what: str = "condition") -> None:
    """Let the app run until `predicate()` holds; fail after `timeout` seconds, and never
    before MIN_WAIT_S (a bound against hanging; CI's shared machine can be slow for minutes)."""
    timeout = max(timeout, MIN_WAIT_S)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.05)


async def show_runs(pilot, app, rows: int = 1):
    """Switch to the Runs page and wait until its table lists `rows` runs; returns the table."""
    await pilot.press("4")
    table = app.screen.query_one("#runs-table")
    await wait_until(pilot, lambda: table.row_count == rows, what="the runs list")
    return table


def text_of(app, selector: str) -> str:
    """The plain text a widget shows (Static content, or what a custom widget renders)."""
    from textual.widgets import Label, Static

    from pfs_tui.widgets.explanation import Explanation

    widget = app.screen.query_one(selector)
    if isinstance(widget, Explanation):
        widget = widget.query_one(Static)
    if isinstance(widget, (Static, Label)):
        visual = widget.visual
        return getattr(visual, "plain", str(visual))
    return widget.render().plain


async def settled_structure(pilot, app, timeout: float = MIN_WAIT_S):
    """The Structure page's structure once the search for the current inputs has landed."""
    screen = app.screen
    await wait_until(pilot, lambda: screen.settled, timeout=timeout, what="the structure search")
    return screen.structure


def tiny_learned_run(root: Path, name: str = "tiny", *, stop_after: int | None = None, **learn) -> Path:
    """A real gate-learning run of ResNet-20 on the synthetic set, a few steps (seconds).

    `stop_after`: ask it to stop once the engine has checked `should_stop` that many
    times, leaving a run whose summary says stopped (for resume and its display).
    """
    from engine.jobs import learn_run
    from engine.learn import LearnConfig

    checks = iter(range(1_000_000))
    learn_run(root / name, model="resnet20", dataset="synthetic",
              learn=LearnConfig(**{"steps": 2, "batch_size": 8, "heldout_limit": 20, "snapshot_every": 1, **learn}),
              should_stop=None if stop_after is None else (lambda: next(checks) >= stop_after))
    return root / name


def feed_recorded(app, run: str, status: str) -> None:
    """Put a recorded fixture run's events into the app's log as if they had just arrived."""
    from engine.events import read_events

    log = app.session.reset_log()
    for event in read_events(FIXTURES / run / "events.jsonl"):
        log.add(event)
    log.set_status(status, "")
