"""Resume from the explorer: a stopped learning run or a killed training continues (`pfs resume`)."""
from __future__ import annotations

import sys

import pytest

from engine.runs import RunDir
from pfs_tui.app import PfsApp
from pfs_tui.screens.run_detail import RunDetailScreen
from pfs_tui.session import Session
from pfs_tui.tasks import launch_train, resume_command, train_process_alive
from pfs_tui.testing import copy_run, show_runs, text_of, tiny_learned_run, wait_until


def _stopped_learning(runs_root):
    run = tiny_learned_run(runs_root, "stopped", stop_after=5, steps=12, eval_every=4, snapshot_every=2)
    assert RunDir(run).read_json("summary.json")["status"] == "stopped"
    return run


def test_resume_command_is_pfs_resume_of_the_run(tmp_path):
    from engine.cli import build_parser

    cmd = resume_command(tmp_path / "r")
    assert cmd[1:3] == ["-m", "engine"]
    args = build_parser().parse_args(cmd[3:])
    assert args.run == str(tmp_path / "r") and args.func.__name__ == "_cmd_resume"


async def test_c_resumes_a_stopped_run_and_refuses_a_finished_or_busy_one(runs_root):
    run = _stopped_learning(runs_root)
    copy_run("trained", runs_root, mtime=1)  # finished: nothing to resume
    calls = []

    def resumer(path):
        calls.append(path)  # a process that holds the run until the test lets it go
        return launch_train(path, 0, what="pfs resume", command=[
            sys.executable, "-c", "import time, pathlib, sys\np = pathlib.Path(sys.argv[1]) / 'go'\n"
            "while not p.exists(): time.sleep(0.05)", str(path)])

    app = PfsApp(Session(runs_root=runs_root), resumer=resumer, show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await show_runs(pilot, app, rows=2)
        assert table.get_row_at(0)[0] == "stopped"
        await pilot.press("down", "c")  # the finished one
        await pilot.pause()
        assert calls == [] and any("nothing to resume" in n.message for n in app._notifications)
        await pilot.press("up", "c")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run page")
        assert calls == [run]
        await wait_until(pilot, lambda: "pfs resume running" in text_of(app, "#run-head"), what="the process")
        await pilot.press("c")  # again while it runs: refused
        await pilot.pause()
        assert calls == [run] and any("is training (pid" in n.message for n in app._notifications)
        (run / "go").touch()
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to end")


@pytest.mark.slow  # a real `pfs resume` process: ~20 s idle, a minute or more on a loaded box
async def test_a_stopped_learning_run_resumed_from_the_runs_page_finishes_its_steps(runs_root):
    run = _stopped_learning(runs_root)
    app = PfsApp(Session(runs_root=runs_root), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_runs(pilot, app)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run page")
        await wait_until(pilot, lambda: app.screen.status == "finished", what="the resumed learning")
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to end")
        assert app.screen.learn_steps[-1] == 12
    summary = RunDir(run).read_json("summary.json")
    assert summary["status"] == "finished" and summary["steps"] == 12


def _killed_training(runs_root):
    """The trained fixture retrained again and killed (kill -9) after its first epoch's
    checkpoint, two steps into the second epoch: no final event, its owner process gone."""
    import json
    import socket
    import subprocess

    from engine.events import CheckpointSaved, EpochEnd, JsonlSink, RunStarted, StepEnd

    run = copy_run("trained", runs_root)
    # The explorer launched it (this stand-in only leaves a log that ends with the kill).
    launch_train(run, 2, command=[sys.executable, "-c", "print('Killed')"])
    with JsonlSink(run / "events.jsonl") as sink:
        sink(RunStarted(stage="train", config={"device": "cpu"}))
        sink(StepEnd(stage="train", step=10, total_steps=20, epoch=1, loss=1.5, steps_per_s=5.0))
        sink(EpochEnd(stage="train", epoch=1, total_epochs=2, train_loss=1.5, train_acc=0.5, test_acc=0.6,
                      lr=0.1, images_per_s=100.0, seconds=2.0))
        sink(CheckpointSaved(stage="train", path=str(run / "checkpoints" / "last.pt"), step=10, epoch=1))
        sink(StepEnd(stage="train", step=12, total_steps=20, epoch=2, loss=1.4, steps_per_s=5.0))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "pid.json").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "stage": "train"}))
    return run


def test_resume_says_where_a_killed_training_really_restarts(runs_root):
    from pfs_tui.tasks import resume_point

    run = _killed_training(runs_root)
    assert resume_point(run, "train") == "train continues after step 10 (epoch 1), its last checkpoint"
    assert resume_point(run, "learn") == "learn starts again from its first step (it saved no checkpoint)"


async def test_a_killed_then_resumed_training_shows_the_resumed_process_not_the_kill(runs_root):
    from engine.events import JsonlSink, RunStarted, StepEnd

    run = _killed_training(runs_root)
    FAKE_RESUME = (  # pfs resume: starts the train stage again at step 11, then works until told
        "import pathlib, sys, time\nfrom engine.events import JsonlSink, RunStarted, StepEnd\n"
        "run = pathlib.Path(sys.argv[1])\n"
        "with JsonlSink(run / 'events.jsonl') as sink:\n"
        "    sink(RunStarted(stage='train', config={'device': 'cpu'}))\n"
        "    sink(StepEnd(stage='train', step=11, total_steps=20, epoch=2, loss=1.3, steps_per_s=5.0))\n"
        "while not (run / 'go').exists(): time.sleep(0.05)\n")
    assert JsonlSink and RunStarted and StepEnd  # the stand-in writes the engine's own events

    def resumer(path):
        return launch_train(path, 0, what="pfs resume", command=[sys.executable, "-c", FAKE_RESUME, str(path)])

    app = PfsApp(Session(runs_root=runs_root), resumer=resumer, show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the killed process")
        await app.push_screen(RunDetailScreen(run))
        await wait_until(pilot, lambda: "pfs train has exited" in text_of(app, "#run-head"), what="the kill")
        assert "Killed" in text_of(app, "#run-head") and "step 12/20 (epoch 2)" in text_of(app, "#run-head")
        await pilot.press("c")
        await wait_until(pilot, lambda: "step 11/20 (epoch 2)" in text_of(app, "#run-head"), what="the resumed step")
        head = text_of(app, "#run-head")
        assert "running (pfs resume running)" in head
        assert "Killed" not in head and "has exited" not in head  # the old ending is not current
        assert any("train continues after step 10 (epoch 1), its last checkpoint" in n.message
                   for n in app._notifications)
        (run / "go").touch()
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to end")


async def test_a_training_stopped_with_x_reads_stopped_with_where_to_go_on_not_failed(runs_root):
    from engine.events import JsonlSink, RunFailed, RunStarted

    run = copy_run("trained", runs_root)
    with JsonlSink(run / "events.jsonl") as sink:
        sink(RunStarted(stage="train", config={"device": "cpu"}))
        sink(RunFailed(stage="train", error="stopped at step 7 (epoch 1), checkpoint saved; "
                                            f"`pfs resume {run}` continues from there"))
    app = PfsApp(Session(runs_root=runs_root), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(RunDetailScreen(run))
        await wait_until(pilot, lambda: app.screen.status == "stopped", what="the stop")
        await pilot.pause()
        head = text_of(app, "#run-head")
        assert "stage train · stopped" in head and "failed" not in head
        assert "stopped at step 7 (epoch 1), checkpoint saved" in head


async def test_a_resumed_learning_run_is_shown_on_the_learn_page_with_its_own_r(runs_root):
    run = tiny_learned_run(runs_root, "stopped", stop_after=5, steps=12, eval_every=4, snapshot_every=2,
                           sparsity=0.35, gamma=1.5)
    calls = []

    def resumer(path):  # stands in for `pfs resume`: holds the run until the test lets it go
        calls.append(path)
        return launch_train(path, 0, what="pfs resume", command=[
            sys.executable, "-c", "import time, pathlib, sys\np = pathlib.Path(sys.argv[1]) / 'go'\n"
            "while not p.exists(): time.sleep(0.05)", str(path)])

    app = PfsApp(Session(runs_root=runs_root), resumer=resumer, show_eta=False, blink=False)
    assert app.session.settings.sparsity == 0.2  # Setup's r differs from the run's
    async with app.run_test(size=(80, 24)) as pilot:
        await show_runs(pilot, app)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run page")
        assert calls == [run]
        await pilot.press("2")
        await wait_until(pilot, lambda: "(r 0.35)" in text_of(app, "#learn-stats"), what="the run's own r")
        assert app.session.run_path == run and app.session.settings.gamma == 1.5
        assert app.session.log.snapshot()["steps"]  # its curves so far
        (run / "go").touch()
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to end")
        await wait_until(pilot, lambda: app.session.log.status == "stopped", what="the follow to end")
