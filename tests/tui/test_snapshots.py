"""SVG snapshots of the main pages at 80x24 and 120x36, from fixed data only.

Update with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the SVGs
under tests/tui/__snapshots__/ (or snapshot_report.html) before committing them.
"""
from __future__ import annotations

import pytest

from pfs_tui.testing import copy_run, feed_recorded, make_app, settled_structure, wait_until

SIZES = [(80, 24), (120, 36)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x36"])
def test_setup_page(snap_compare, runs_root, size):
    app = make_app(runs_root)

    async def ready(pilot):
        table = app.screen.query_one("#model-table")
        await wait_until(pilot, lambda: table.row_count > 0, what="model list")  # slow when loaded
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x36"])
def test_learning_mid_run(snap_compare, runs_root, size):
    app = make_app(runs_root)

    async def mid_run(pilot):
        await pilot.press("2")
        feed_recorded(app, "midrun", "running")
        app.screen.redraw(force=True)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=mid_run)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x36"])
def test_structure_after_learning(snap_compare, runs_root, size):
    app = make_app(runs_root, budget=0.4)

    async def learned(pilot):
        feed_recorded(app, "learned", "finished")
        await pilot.press("3")
        await settled_structure(pilot, app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=learned)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x36"])
def test_runs_page(snap_compare, runs_root, size):
    copy_run("learned", runs_root, mtime=1_700_000_000)
    copy_run("trained", runs_root, mtime=1_700_000_100)
    app = make_app(runs_root)

    async def listed(pilot):
        await pilot.press("4")
        table = app.screen.query_one("#runs-table")
        await wait_until(pilot, lambda: table.row_count == 2, what="the runs list")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=listed)
