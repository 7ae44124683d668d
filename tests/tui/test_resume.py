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
        await wait_until(pilot, lambda: train_process_alive(run) is False, timeout=60, what="the process to end")


@pytest.mark.slow  # a real `pfs resume` process: ~20 s idle, a minute or more on a loaded box
async def test_a_stopped_learning_run_resumed_from_the_runs_page_finishes_its_steps(runs_root):
    run = _stopped_learning(runs_root)
    app = PfsApp(Session(runs_root=runs_root), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_runs(pilot, app)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run page")
        await wait_until(pilot, lambda: app.screen.status == "finished", timeout=240, what="the resumed learning")
        await wait_until(pilot, lambda: train_process_alive(run) is False, timeout=60, what="the process to end")
        assert app.screen.learn_steps[-1] == 12
    summary = RunDir(run).read_json("summary.json")
    assert summary["status"] == "finished" and summary["steps"] == 12
