"""Demo-sized retraining: subset and epochs from Setup, progress within an epoch, kept for next time."""
from __future__ import annotations

import json

import pytest

from engine.events import JsonlSink, RunStarted, StepEnd
from engine.runs import RunDir
from pfs_tui import preferences
from pfs_tui.app import PfsApp
from pfs_tui.screens.run_detail import RunDetailScreen
from pfs_tui.session import Session, Settings
from pfs_tui.tasks import train_process_alive
from pfs_tui.testing import copy_run, make_app, text_of, tiny_learned_run, wait_until
from pfs_tui.widgets.number_field import NumberField


async def _set(pilot, app, name: str, text: str) -> None:
    field = app.screen.query_one(f"#{name}", NumberField)
    field.input.focus()
    field.input.value = text
    await pilot.pause()


async def test_the_run_page_shows_training_steps_loss_and_time_left_within_an_epoch(runs_root):
    run = copy_run("trained", runs_root)
    with JsonlSink(run / "events.jsonl") as sink:  # a retraining 25 steps into its first epoch
        sink(RunStarted(stage="train", config={"device": "cpu"}))
        sink(StepEnd(stage="train", step=25, total_steps=200, epoch=1, loss=1.234, steps_per_s=5.0))
    app = PfsApp(Session(runs_root=runs_root), blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(RunDetailScreen(run))
        await wait_until(pilot, lambda: app.screen.train_step is not None, what="the step")
        await pilot.pause()
        assert "step 25/200 (epoch 1)  loss 1.234  time left 0:35" in text_of(app, "#run-head")
        bar = app.screen.query_one("#run-progress")
        assert (bar.progress, bar.total) == (25, 200)


@pytest.mark.slow  # a real `pfs train` process: 30 s idle, ~2 min on a loaded 2-core box
async def test_a_demo_retraining_runs_pfs_train_on_a_subset_and_shows_steps_within_the_epoch(runs_root):
    run = tiny_learned_run(runs_root)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _set(pilot, app, "train_epochs", "1")
        await _set(pilot, app, "train_subset", "1280")
        assert (app.session.settings.train_epochs, app.session.settings.train_subset) == (1, 1280)
        await app.open_run_gates(run)
        await pilot.press("t")  # retrain from the Structure page: a real `pfs train`, detached
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run page")
        screen = app.screen
        await wait_until(pilot, lambda: screen.train_step is not None, what="a training step")
        # 1280 images / batch 128 = 10 steps; a StepEnd every 10 steps: progress before the epoch ends.
        assert screen.train_step.total_steps == 10
        assert "step 10/10 (epoch 1)  loss" in text_of(app, "#run-head")
        await wait_until(pilot, lambda: screen.status == "finished", what="the end of training")
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to exit")
    train = RunDir(run).config["train"]
    assert train["subset"] == 1280 and train["epochs"] == 1


async def test_retrain_settings_last_across_restarts(runs_root, tmp_path):
    prefs = tmp_path / "config" / "pfs" / "tui.json"
    app = PfsApp(Session(runs_root=runs_root, prefs_path=prefs), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _set(pilot, app, "train_epochs", "3")
        await _set(pilot, app, "train_subset", "5000")
    kept = json.loads(prefs.read_text())
    assert (kept["train_epochs"], kept["train_subset"]) == (3, 5000)
    settings, warning = preferences.load(prefs, Settings())
    assert (settings.train_epochs, settings.train_subset, warning) == (3, 5000, "")
    app = PfsApp(Session(settings=settings, runs_root=runs_root, prefs_path=prefs), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.screen.query_one("#train_subset", NumberField).value == 5000


def test_a_broken_preferences_file_is_ignored_with_a_warning(tmp_path):
    prefs = tmp_path / "tui.json"
    prefs.write_text('{"train_epochs": -4, "train_subset": 100')
    settings, warning = preferences.load(prefs, Settings())
    assert settings == Settings() and warning.startswith(f"ignoring {prefs}")
    prefs.write_text('{"train_epochs": -4, "train_subset": 100}')
    settings, warning = preferences.load(prefs, Settings())
    assert settings.train_subset == 100 and settings.train_epochs == Settings().train_epochs
    assert warning == f"ignoring train_epochs in {prefs}: not a value Setup accepts"
