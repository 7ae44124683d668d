"""The race in the explorer: `v` on the Structure page starts it, the Race page shows it,
followers see it and cannot start one."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.events import EpochEnd, JsonlSink, RunFinished, RunStarted
from engine.jobs import DEMO, prepare_race, search_run
from engine.training import TrainOptions
from pfs_tui.app import PfsApp
from pfs_tui.racing import arm_command
from pfs_tui.session import Session
from pfs_tui.tasks import launch_train
from pfs_tui.testing import settled_structure, text_of, tiny_learned_run, wait_until

FAKE_TRAIN = Path(__file__).parent / "fake_train.py"


def _finish_arm(arm: Path, accuracies: list[float]) -> None:
    """An arm's training events as `pfs train` writes them (real format, no training)."""
    with JsonlSink(arm / "events.jsonl") as sink:
        sink(RunStarted(stage="train", config={"device": "cpu"}))
        for i, acc in enumerate(accuracies, 1):
            sink(EpochEnd(stage="train", epoch=i, total_epochs=len(accuracies), train_loss=1.0, train_acc=0.5,
                          test_acc=acc))
        sink(RunFinished(stage="train", summary={"status": "finished", "test_acc": accuracies[-1]}))


async def test_v_on_structure_starts_both_trainings_and_the_race_page_follows_them(runs_root):
    run = tiny_learned_run(runs_root)
    launched = []

    def launcher(path: Path, epochs: int, command=None, env=None, **_) -> int:
        launched.append((path.name, command, env))
        return launch_train(path, 0, command=[sys.executable, str(FAKE_TRAIN), str(path)])

    app = PfsApp(Session(runs_root=runs_root), launcher=launcher, show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.open_run_gates(run)
        await settled_structure(pilot, app)
        await pilot.press("v")
        await wait_until(pilot, lambda: app.current_mode == "race", what="the Race page")
        screen = app.screen
        # What the page shows, not the state a worker is still folding: the head is drawn after.
        await wait_until(pilot, lambda: "gap learned - uniform:" in text_of(app, "#race-head"),
                         what="both arms' first epoch on the page")
        assert all(a.epochs == [1] for a in screen.state.arms)
        assert [name for name, _, _ in launched] == ["learned", "uniform"]
        for name, command, env in launched:
            assert command[2:5] == ["engine", "train", str(run / "race" / name)]
            flags = dict(zip(command[5::2], command[6::2]))
            assert flags["--epochs"] == str(DEMO["epochs"]) and flags["--subset"] == str(DEMO["subset"])
            assert flags["--test-subset"] == str(DEMO["test_subset"]) and flags["--seed"] == "0"
            assert flags["--batch-size"] == str(DEMO["batch_size"])
            assert env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 2) // 2))
        head = text_of(app, "#race-head")
        assert (f"{DEMO['epochs']} epochs × {DEMO['subset']:,} images (batch {DEMO['batch_size']}), "
                f"{DEMO['test_subset']:,} test images") in head
        assert "learned" in head and "uniform" in head and "MACs" in head and "params" in head
        assert "gap learned - uniform: +0.000 (level)" in head
        for arm in ("learned", "uniform"):
            (run / "race" / arm / "go").touch()
        plot = screen.query_one("#race-plot")
        await wait_until(pilot, lambda: text_of(app, "#race-head").count("· finished") == 2, what="the finish")
        await wait_until(pilot, lambda: [s[2] for s in plot.series] == [[0.55, 0.71], [0.55, 0.71]],
                         what="both curves drawn")


async def test_the_race_page_shows_the_gap_sign_and_the_dense_line_of_a_recorded_race(runs_root):
    run = tiny_learned_run(runs_root)
    search_run(run, 0.5)
    race = prepare_race(run, options=TrainOptions(epochs=2, subset=64, test_subset=32))
    _finish_arm(race.arm("learned"), [0.60, 0.78])
    _finish_arm(race.arm("uniform"), [0.62, 0.74])
    app = PfsApp(Session(runs_root=runs_root), start="race", show_eta=False, blink=False)
    app.session.run_path = run
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "gap learned - uniform:" in text_of(app, "#race-head"), what="the race")
        head = text_of(app, "#race-head")
        assert "gap learned - uniform: +0.040 (learned ahead)" in head
        assert "test 0.780" in head and "test 0.740" in head
        assert "dense: not known at this size (pfs race --dense)" in head


async def test_a_follower_sees_the_presenters_race_and_cannot_start_one(runs_root):
    run = tiny_learned_run(runs_root)
    search_run(run, 0.5)
    race = prepare_race(run, options=TrainOptions(epochs=1, subset=64, test_subset=32))
    _finish_arm(race.arm("learned"), [0.7])
    _finish_arm(race.arm("uniform"), [0.75])
    before = (run / "race" / "race.json").stat().st_mtime_ns
    app = PfsApp(Session(runs_root=runs_root), follow=str(run), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await wait_until(pilot, lambda: "gap learned - uniform:" in text_of(app, "#race-head"),
                         what="the followed race")
        assert "gap learned - uniform: -0.050 (learned behind)" in text_of(app, "#race-head")
        assert app.check_action("race", ()) is False
        await pilot.press("3")
        await pilot.press("v")
        await pilot.pause(0.2)
        assert app.current_mode == "structure"
    assert (run / "race" / "race.json").stat().st_mtime_ns == before


def test_each_arm_is_a_plain_pfs_train_with_the_race_size_and_seed(tmp_path):
    from engine.jobs import Race

    race = Race(tmp_path / "race", tmp_path, "uniform",
                TrainOptions(epochs=3, subset=500, test_subset=100, seed=7).to_json())
    assert arm_command(race, "uniform")[1:] == [
        "-m", "engine", "train", str(tmp_path / "race" / "uniform"), "--quiet", "--overwrite", "--seed", "7",
        "--epochs", "3", "--subset", "500", "--test-subset", "100"]


def test_a_race_run_again_is_read_afresh(runs_root):
    from pfs_tui.racing import RaceState

    run = tiny_learned_run(runs_root)
    search_run(run, 0.5)
    race = prepare_race(run, options=TrainOptions(epochs=2, subset=64, test_subset=32))
    _finish_arm(race.arm("learned"), [0.6, 0.7])
    _finish_arm(race.arm("uniform"), [0.5, 0.6])
    state = RaceState(run / "race")
    assert state.poll() and state.gap == 0.7 - 0.6
    race = prepare_race(run, options=TrainOptions(epochs=1, subset=64, test_subset=32), overwrite=True)
    _finish_arm(race.arm("learned"), [0.4])
    _finish_arm(race.arm("uniform"), [0.45])
    state.poll()
    assert [a.accuracy for a in state.arms] == [[0.4], [0.45]] and state.race.options["epochs"] == 1


def test_overlapping_polls_fold_each_epoch_once(runs_root):
    """The page polls from thread workers that can overlap (CI drew each epoch twice once)."""
    import threading

    from pfs_tui.racing import RaceState

    run = tiny_learned_run(runs_root)
    search_run(run, 0.5)
    race = prepare_race(run, options=TrainOptions(epochs=3, subset=64, test_subset=32))
    _finish_arm(race.arm("learned"), [0.5, 0.6, 0.7])
    _finish_arm(race.arm("uniform"), [0.4, 0.5, 0.6])
    state, start = RaceState(run / "race"), threading.Barrier(6)

    def poll():
        start.wait()
        state.poll()

    threads = [threading.Thread(target=poll) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.accuracy for a in state.arms] == [[0.5, 0.6, 0.7], [0.4, 0.5, 0.6]]
    assert [a.epochs for a in state.arms] == [[1, 2, 3]] * 2 and abs(state.gap - 0.1) < 1e-9
