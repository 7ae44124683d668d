"""A run that is training is left alone: retrain and export refuse, nothing is written."""
from __future__ import annotations

import sys
from pathlib import Path

from pfs_tui.app import PfsApp
from pfs_tui.screens.run_detail import RunDetailScreen
from pfs_tui.session import Session
from pfs_tui.tasks import TRAIN_PID, launch_train, train_process_alive
from pfs_tui.testing import copy_run, wait_until

FAKE_TRAIN = Path(__file__).parent / "fake_train.py"


async def test_t_and_e_on_a_run_that_is_training_are_refused_and_nothing_is_written(runs_root):
    run = copy_run("trained", runs_root)
    (run / "events.jsonl").write_text("")
    calls = []

    def launcher(path: Path, epochs: int, overwrite: bool = False, subset: int = 0) -> int:
        calls.append(overwrite)
        return launch_train(path, epochs, command=[sys.executable, str(FAKE_TRAIN), str(path)])

    app = PfsApp(Session(runs_root=runs_root), launcher=launcher, show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.retrain_run(run)
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.epochs,
                         what="the first epoch")
        before = {name: (run / name).read_bytes() for name in ("structure.json", TRAIN_PID, "config.json")}
        events_before = (run / "events.jsonl").read_bytes()
        await pilot.press("t")  # twice: the old code asked, then overwrote on the second press
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        assert calls == [False]
        assert any("is training (pid" in n.message for n in app._notifications)
        app.clear_notifications()
        # The Structure page's export (e) of this run is refused as well.
        app.session.run_path, app.session.run_finished = run, True
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "structure", what="the structure page")
        await pilot.press("e")
        await pilot.pause()
        assert any("is training (pid" in n.message for n in app._notifications)
        assert {name: (run / name).read_bytes() for name in before} == before
        assert (run / "events.jsonl").read_bytes() == events_before  # no `failed` from a refused child
        (run / "go").touch()
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to end")
    assert b'"failed"' not in (run / "events.jsonl").read_bytes()
