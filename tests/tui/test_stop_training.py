"""x stops a retraining the explorer launched, as x stops gate learning: after the current
step, its checkpoint kept, and only once (a second SIGINT would abort `pfs train`)."""
from __future__ import annotations

import sys

from pfs_tui.app import PfsApp
from pfs_tui.screens.run_detail import RunDetailScreen
from pfs_tui.session import Session
from pfs_tui.tasks import launch_train, train_process_alive
from pfs_tui.testing import copy_run, wait_until

# A stand-in for `pfs train`: counts the SIGINTs it gets (pfs train's first one means
# "stop after this step"), says when it listens, and ends when the test lets it.
FAKE_TRAIN = """
import pathlib, signal, sys, time
run = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGINT, lambda *a: open(run / "sigints", "a").write("int\\n"))
(run / "listening").touch()
while not (run / "go").exists():
    time.sleep(0.05)
"""


async def test_x_on_a_retraining_sends_one_graceful_stop_and_says_so(runs_root):
    run = copy_run("trained", runs_root)
    launch_train(run, 1, command=[sys.executable, "-c", FAKE_TRAIN, str(run)])
    app = PfsApp(Session(runs_root=runs_root), start="runs", show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: (run / "listening").exists(), what="the stand-in to listen")
        await app.push_screen(RunDetailScreen(run))
        await pilot.press("x")
        await wait_until(pilot, lambda: (run / "sigints").exists(), what="the stop signal")
        assert any("after its current step; its checkpoint is kept and c resumes it" in n.message
                   for n in app._notifications)
        await pilot.press("x")  # again: pfs train would take a second SIGINT as "abort now"
        await pilot.pause()
        assert any("already stopping" in n.message for n in app._notifications)
        assert (run / "sigints").read_text() == "int\n"
        (run / "go").touch()
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to end")
        app.clear_notifications()
        await pilot.press("x")
        await pilot.pause()
        assert any(n.message.startswith("nothing to stop") for n in app._notifications)


async def test_a_follower_neither_offers_nor_sends_a_stop(runs_root):
    run = copy_run("trained", runs_root)
    app = PfsApp(Session(runs_root=runs_root), start="runs", show_eta=False, blink=False, follow=str(run))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(RunDetailScreen(run))
        await pilot.pause()
        offered = {b.description for _, b, enabled, _ in app.screen.active_bindings.values() if b.show and enabled}
        assert {"Stop training", "Retrain", "Resume"}.isdisjoint(offered) and "Back" in offered
        app.stop_run_training(run)
        await pilot.pause()
        assert any("read-only" in n.message for n in app._notifications)


# A stand-in for `pfs train` in the seconds it loads: it holds the run, has written no event.
FAKE_LOADING = """
import pathlib, sys, time
from engine.runs import RunDir
run = pathlib.Path(sys.argv[1])
with RunDir(run).owned("train"):
    (run / "listening").touch()
    while not (run / "go").exists():
        time.sleep(0.05)
"""


async def test_runs_shows_a_starting_retraining_not_a_running_search(runs_root):
    from engine.jobs import search_run
    from pfs_tui.testing import show_runs, text_of, tiny_learned_run

    run = tiny_learned_run(runs_root)
    search_run(run, 0.5)
    launch_train(run, 1, command=[sys.executable, "-c", FAKE_LOADING, str(run)])
    app = PfsApp(Session(runs_root=runs_root), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: (run / "listening").exists(), what="the stand-in to hold the run")
        table = await show_runs(pilot, app)
        await pilot.press("r")
        await wait_until(pilot, lambda: [str(c) for c in table.get_row_at(0)[1:3]] == ["train", "starting"],
                         what="the row to say the training is starting")
        assert "stage train · starting" in text_of(app, "#run-preview")
        (run / "go").touch()
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to end")
