"""Setup and Learn pages: choose, validate, learn gates for real (few steps), pause, stop."""
from __future__ import annotations

import asyncio
import json
import time

from textual.worker import WorkerState

from engine.runs import RunDir
from pfs_tui.screens.learn import LearnScreen
from pfs_tui.screens.setup import SetupScreen
from pfs_tui.testing import make_app, settled_structure, text_of, wait_until
from pfs_tui.widgets.number_field import NumberField

TINY = {"model": "resnet20", "dataset": "synthetic", "steps": 6, "batch_size": 8, "eval_every": 3,
        "heldout_limit": 40, "snapshot_every": 2}


async def test_opens_on_resnet20_and_fashion_mnist_with_dense_costs(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, SetupScreen)
        table = app.screen.query_one("#model-table")
        await wait_until(pilot, lambda: table.row_count > 0, what="model list")
        assert app.session.settings.model == "resnet20" and app.session.settings.dataset == "fashion-mnist"
        row = table.get_row("resnet56")
        assert row[1] == "96.1M"  # dense MACs of ResNet-56 (shortcut B) at 1x28x28, from engine.flops
        assert "resnet20" in text_of(app, "#model-desc") and "31M MACs" in text_of(app, "#model-desc")


async def test_choosing_a_model_and_editing_fields_changes_the_settings(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#model-table")
        await wait_until(pilot, lambda: table.row_count > 0, what="model list")
        table.focus()
        await pilot.press("down", "down")  # resnet20 -> resnet32 -> resnet56
        await pilot.pause()
        assert app.session.settings.model == "resnet56"
        await pilot.press("enter")  # to the FLOPs target field
        await pilot.pause()
        assert app.focused.id == "budget-input"
        await pilot.press("+", "+")
        await pilot.pause()
        assert app.session.settings.budget == 0.6
        sparsity = app.screen.query_one("#sparsity", NumberField)
        sparsity.input.focus()
        sparsity.input.value = ""
        await pilot.press(*"1.2")
        await pilot.pause()
        assert "sparsity r: must be between 0 and 1" in sparsity.query_one(".error").visual.plain
        assert app.session.settings.sparsity == 1.0  # "1" was valid; "1.2" is refused
        await pilot.press("escape", "s")  # learning refuses to start from a refused value
        await pilot.pause()
        assert app.current_mode == "setup" and app.session.log.status == "idle"
        assert any("sparsity r: must be between 0 and 1" in n.message for n in app._notifications)
        await pilot.press("escape", "3")  # leave the field, go to Structure
        await pilot.pause()
        assert app.current_mode == "structure"


async def test_learning_runs_in_a_worker_and_leaves_a_run_directory(runs_root):
    app = make_app(runs_root, **TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("escape", "s")
        await wait_until(pilot, lambda: app.current_mode == "learn", what="learn page")
        screen = app.screen
        assert isinstance(screen, LearnScreen)
        await wait_until(pilot, lambda: app.session.log.status == "finished", what="learning")
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)  # one redraw tick
        log = app.session.log
        assert log.steps == [1, 2, 3, 4, 5, 6]
        assert [s for s, _ in log.heldout] == [3, 6]
        run = RunDir.open(app.session.run_path)
        assert run.exists("gates.pt") and run.config["model"] == "resnet20"
        await wait_until(pilot, lambda: "step 6/6" in text_of(app, "#learn-status"), what="the status drawn")
        assert "336 channels" in text_of(app, "#hist-title")
        # The structure page now searches the learned gates, not the initial ones.
        await pilot.press("3")
        await settled_structure(pilot, app)
        assert "learned gates" in text_of(app, "#structure-summary")


async def test_pause_blocks_learning_and_stop_ends_it_early(runs_root):
    app = make_app(runs_root, **{**TINY, "steps": 5000})  # far more than the test lets it run
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.click("#start")  # the mouse works too: the setup page's button
        await wait_until(pilot, lambda: len(app.session.log.steps) >= 1, what="a first step")
        await pilot.press("space")
        await wait_until(pilot, lambda: app.session.log.status == "paused", what="the worker to block")
        held = len(app.session.log.steps)
        await pilot.pause(0.5)
        assert len(app.session.log.steps) == held  # blocked inside the event callback
        assert "paused" in text_of(app, "#learn-status")
        await pilot.press("space")
        await wait_until(pilot, lambda: len(app.session.log.steps) > held, what="resumed steps")
        # Keys are handled between steps: pages switch while the worker computes.
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "structure", what="the page switch")
        await pilot.press("2")
        await wait_until(pilot, lambda: app.current_mode == "learn", what="the page switch")
        await pilot.press("x")
        await wait_until(pilot, lambda: app.session.log.status == "stopped", what="the stop")
        assert len(app.session.log.steps) < 5000
        assert RunDir.open(app.session.run_path).read_json("summary.json")["status"] == "stopped"


async def test_quit_while_learning_stops_it_and_waits_for_the_gates(runs_root):
    app = make_app(runs_root, **{**TINY, "steps": 5000})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "s")
        await wait_until(pilot, lambda: len(app.session.log.steps) >= 1, what="a first step")
        learner = next(w for w in app.workers if w.group == "learn")
        await pilot.press("q")
        run = app.session.run_path
        assert app.quitting
        assert any("stopping gate learning" in n.message for n in app._notifications)
        # The app exits by itself once the run has saved its gates; a loaded machine
        # only makes that later (the wait is on the condition, with a generous bound).
        deadline = time.monotonic() + 180
        while app.is_running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert not app.is_running and app.hard_exit is False
    # The worker ended on its own before the app left: nothing was cancelled mid-save.
    assert learner.state == WorkerState.SUCCESS
    assert (run / "gates.pt").is_file()
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"


async def test_a_missing_data_set_is_reported_once_with_the_fix(runs_root):
    app = make_app(runs_root, dataset="cifar10")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "s")
        await wait_until(pilot, lambda: app.session.log.status == "failed", what="the failure")
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        assert "--data-root DIR" in text_of(app, "#learn-stats")
        assert sum("cifar10 not found" in n.message for n in app._notifications) == 1
        assert app.session.learning is None  # s starts again once the data is there
