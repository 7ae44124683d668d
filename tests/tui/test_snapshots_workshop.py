"""SVG snapshots at 80x24 of what issue 11 added: the explanations, a demo retraining, a follower.

Update with `pytest tests/tui/test_snapshots_workshop.py --snapshot-update` and look at the SVGs.
"""
from __future__ import annotations

from engine.events import JsonlSink, RunStarted, StepEnd
from pfs_tui.app import PfsApp
from pfs_tui.screens.run_detail import RunDetailScreen
from pfs_tui.session import Session
from pfs_tui.testing import copy_run, feed_recorded, make_app, settled_structure, wait_until

SIZE = (80, 24)


def test_structure_explained(snap_compare, runs_root):
    app = make_app(runs_root, budget=0.4)

    async def explained(pilot):
        feed_recorded(app, "learned", "finished")
        await pilot.press("3")
        await settled_structure(pilot, app)
        await pilot.press("i")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=explained)


def test_learn_explained(snap_compare, runs_root):
    app = make_app(runs_root)

    async def explained(pilot):
        await pilot.press("2")
        feed_recorded(app, "midrun", "running")
        await pilot.press("i")
        app.screen.redraw(force=True)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()  # the focused panel scrolls into view: let it land
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=explained)


def test_run_page_of_a_demo_retraining_mid_epoch(snap_compare, runs_root):
    run = copy_run("trained", runs_root)
    with JsonlSink(run / "events.jsonl") as sink:
        sink(RunStarted(stage="train", config={"device": "cpu"}))
        sink(StepEnd(stage="train", step=25, total_steps=80, epoch=1, loss=1.234, steps_per_s=5.0))
    app = make_app(runs_root)

    async def mid_epoch(pilot):
        await app.push_screen(RunDetailScreen(run))
        await wait_until(pilot, lambda: app.screen.train_step is not None, what="the step")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=mid_epoch)


def test_a_follower_on_the_learn_page(snap_compare, runs_root):
    run = copy_run("midrun", runs_root)
    app = PfsApp(Session(runs_root=runs_root), follow=str(run), start="learn", show_eta=False, blink=False)

    async def following(pilot):
        await wait_until(pilot, lambda: app.session.log.steps[-1:] == [75], what="the followed steps")
        app.screen.redraw(force=True)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=following)
