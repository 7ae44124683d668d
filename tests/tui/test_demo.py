"""The bundled demo (`pfs tui --demo`): the recording ships small, in the current run format,
learned with the current default schedule, and every page works on it without compute."""
from __future__ import annotations

import json

import pytest

from engine.events import GateSnapshot, read_events
from engine.learn_schedule import default_schedule
from engine.runs import RunDir, load_gated_model, run_info
from engine.runs.schema import check_train_summary, structure_problem
from pfs_tui.app import PfsApp
from pfs_tui.demo import RECORDING, copy_recording, recorded_run
from pfs_tui.demo_schedule import DEMO_NAME, DEMO_STEPS
from pfs_tui.session import Session
from pfs_tui.testing import settled_structure, text_of, wait_until

MAX_BYTES = 4_000_000  # "a few MB at most": it ships inside the package


def _runs():
    run = recorded_run()
    race = json.loads((run / "race" / "race.json").read_text())
    arms = [run / "race" / name for name in race["arms"]]
    dense = sorted(RECORDING.glob("dense-*"))
    return run, arms, dense


def test_the_recording_is_small_and_every_run_in_it_reads_in_the_current_format():
    size = sum(f.stat().st_size for f in RECORDING.rglob("*") if f.is_file())
    assert 0 < size <= MAX_BYTES
    run, arms, dense = _runs()
    assert len(arms) == 2 and len(dense) == 1
    for path in (run, *arms, *dense):
        rd = RunDir.open(path)  # config.json against engine.runs.schema
        assert structure_problem(rd.read_json("structure.json"), rd.config) is None
        assert rd.events() and not run_info(path).corrupt
    for path in (*arms, *dense):
        summary = check_train_summary(RunDir(path).read_json("summary.json"), path / "summary.json")
        assert 0.7 < summary["test_acc"] <= 1  # a meaningful retraining, not chance
        history = [e for e in read_events(path / "events.jsonl") if e.kind == "epoch"]
        assert [round(e.test_acc, 6) for e in history] == [round(h["test_acc"], 6) for h in summary["history"]]
    assert load_gated_model(run).widths == RunDir(run).read_json("structure.json")["dense_widths"]
    assert sum(isinstance(e, GateSnapshot) for e in read_events(run / "events.jsonl")) >= 5  # the gates move


def test_the_recording_was_learned_with_the_current_default_schedule():
    """Fails when engine.learn_schedule changes: re-make it with tools/make_demo.py."""
    run, _, _ = _runs()
    config = RunDir.open(run).config
    learned = {k: config["learn"][k] for k in ("steps", "lr", "eval_every")}
    expected = default_schedule(config["dataset"])
    assert learned == {k: expected[k] for k in learned}, "re-make the demo: .venv/bin/python tools/make_demo.py"
    if expected["steps"] is None:
        assert config["learn"]["epochs"] == expected["epochs"]


@pytest.fixture
def demo_app(tmp_path):
    run = copy_recording(tmp_path)
    app = PfsApp(Session(runs_root=tmp_path), start="learn", replay=str(run), show_eta=False, blink=False)
    return app, run


async def test_the_demo_replays_learning_then_structure_and_race_work_without_compute(demo_app):
    app, run = demo_app
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.action_speed(10)  # the fastest replay: this checks what it shows, not its pace
        steps = set()
        await wait_until(pilot, lambda: steps.add(app.session.log.gates_step) or app.session.log.status
                         in ("finished", "recorded"), what="the replay's end")
        assert len(steps) >= 2  # the gates changed while it replayed
        # The page draws on its timer: wait for the drawn stats, not the log the replay filled.
        await wait_until(pilot, lambda: "mean gate -" not in text_of(app, "#learn-stats"), what="the stats drawn")
        # the replayed run was learned with pfs learn's schedule, not the explorer's demo one
        assert (DEMO_NAME in text_of(app, "#learn-stats")) == (app.session.log.snapshot()["last"].total_steps
                                                               == DEMO_STEPS)
        await pilot.press("3")
        structure = await settled_structure(pilot, app)
        recorded = RunDir(run).read_json("structure.json")
        assert structure.macs <= recorded["dense_macs"] * app.session.settings.budget
        assert structure.widths != structure.dense_widths  # searched on the recorded gates
        await pilot.press("6")
        screen = app.screen
        await wait_until(pilot, lambda: "gap learned - uniform:" in text_of(app, "#race-head")
                         and "─ dense" in text_of(app, "#race-head"), what="the recorded race on the page")
        for arm in screen.state.arms:
            summary = RunDir(arm.path).read_json("summary.json")
            assert arm.accuracy == [h["test_acc"] for h in summary["history"]] and arm.status == "finished"
        head = text_of(app, "#race-head")
        assert "dense" in head and f"{screen.state.dense[0]:.3f}" in head


@pytest.mark.parametrize("flag", ["--replay", "--follow"])
def test_demo_with_another_recording_is_refused_in_one_line(flag, capsys):
    from pfs_tui.__main__ import main

    assert main(["--demo", flag, "runs/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfs: error: --demo opens its own recording") and err.count("\n") == 1
