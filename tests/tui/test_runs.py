"""Runs page, run detail and retraining: list, open, follow, re-attach after a restart."""
from __future__ import annotations

import sys
from pathlib import Path

from engine.runs import RunDir
from pfs_tui.app import PfsApp
from pfs_tui.screens.run_detail import RunDetailScreen
from pfs_tui.session import Session
from pfs_tui.tasks import EventFollower, launch_train, train_command, train_process_alive
from pfs_tui.testing import copy_run, make_app, settled_structure, show_runs, text_of, tiny_learned_run, wait_until

FAKE_TRAIN = Path(__file__).parent / "fake_train.py"


def fake_launcher(path: Path, epochs: int, overwrite: bool = False, subset: int = 0) -> int:
    return launch_train(path, epochs, command=[sys.executable, str(FAKE_TRAIN), str(path)])


async def test_runs_page_lists_runs_with_stage_accuracy_and_macs(runs_root):
    copy_run("learned", runs_root, mtime=1_700_000_000)
    copy_run("trained", runs_root, mtime=1_700_000_100)
    app = make_app(runs_root)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        table = app.screen.query_one("#runs-table")
        await wait_until(pilot, lambda: table.row_count == 2, what="the runs list")
        trained, learned = (table.get_row_at(i) for i in range(2))  # newest first
        assert trained[0] == "trained" and trained[1] == "train" and trained[2] == "finished"
        assert trained[5] == "15.3M"  # structure.json's MACs
        assert learned[0] == "learned" and learned[1] == "learn" and learned[4] == "0.120"
        assert "resnet20 on fashion-mnist · stage train" in text_of(app, "#run-preview")


async def test_opening_a_finished_run_shows_its_curves_and_accuracy(runs_root):
    copy_run("trained", runs_root)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_runs(pilot, app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.epochs,
                         what="the run's events")
        screen = app.screen
        assert [e.epoch for e in screen.epochs] == [1, 2]
        head = text_of(app, "#run-head")
        assert "stage train · finished" in head and f"test acc {screen.epochs[-1].test_acc:.3f}" in head
        assert len(screen.learn_steps) == 150
        await pilot.press("escape")
        assert app.screen.__class__.__name__ == "RunsScreen"


async def test_retrain_runs_detached_and_is_reattached_after_a_restart(runs_root):
    run = copy_run("trained", runs_root)
    (run / "events.jsonl").write_text("")  # a run whose structure is chosen but not yet trained
    app = PfsApp(Session(runs_root=runs_root), launcher=fake_launcher, show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.retrain_run(run)
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.epochs,
                         what="the first epoch")
        assert train_process_alive(run) is True
        assert "pfs train running" in text_of(app, "#run-head")
        assert "device cpu" in text_of(app, "#run-head")  # what the training process reported
    # The explorer quit; the process lives on. A new explorer finds and follows it.
    assert train_process_alive(run) is True
    app = PfsApp(Session(runs_root=runs_root), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await show_runs(pilot, app)
        assert table.get_row_at(0)[2] == "running"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.epochs,
                         what="the followed run")
        (run / "go").touch()
        await wait_until(pilot, lambda: app.screen.status == "finished", what="the end of training")
        assert [e.test_acc for e in app.screen.epochs] == [0.55, 0.71]
        await wait_until(pilot, lambda: train_process_alive(run) is False, what="the process to exit")


async def test_retrain_needs_learned_gates_first(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3", "t")
        await pilot.pause()
        assert app.current_mode == "structure"
        assert any("learn gates first" in n.message for n in app._notifications)


def test_train_command_is_the_pfs_cli_with_epochs_and_auto_device(tmp_path):
    from engine.cli import build_parser

    cmd = train_command(tmp_path, 7)
    assert cmd[1:4] == ["-m", "engine", "train"]
    args = build_parser().parse_args(cmd[3:])  # the real `pfs` parser accepts it as is
    assert args.run == str(tmp_path) and args.train_epochs == 7 and args.device == "auto"


def test_follower_returns_only_complete_new_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "started", "time": 1, "stage": "train"}\n{"type": "fin')
    follower = EventFollower(path)
    assert [e.kind for e in follower.read_new()] == ["started"]
    with open(path, "a") as f:
        f.write('ished", "time": 2, "stage": "train"}\n')
    assert [e.kind for e in follower.read_new()] == ["finished"]
    assert follower.read_new() == []


def test_overlapping_reads_return_each_event_once(tmp_path):
    """Pages read from thread workers; a cancelled thread worker runs on, so reads overlap
    (CI once drew a race whose curves held every epoch twice)."""
    import threading

    from engine.events import JsonlSink, StepEnd

    path = tmp_path / "events.jsonl"
    with JsonlSink(path) as sink:
        for i in range(3000):
            sink(StepEnd(stage="learn", step=i, total_steps=3000, epoch=0, loss=1.0))
    for _ in range(5):
        follower, seen = EventFollower(path), []
        start = threading.Barrier(8)

        def read(follower=follower, seen=seen, start=start):
            start.wait()
            seen.extend(e.step for e in follower.read_new())

        threads = [threading.Thread(target=read) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(seen) == list(range(3000))


async def test_opening_a_runs_gates_shows_its_structure_and_r_replays_it(runs_root):
    from engine.runs import load_gated_model
    from engine.search import search

    run = tiny_learned_run(runs_root)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_runs(pilot, app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run page")
        await pilot.press("g")
        await wait_until(pilot, lambda: app.current_mode == "structure", what="the structure page")
        expected = search(load_gated_model(run), 0.5, (3, 32, 32))
        assert (await settled_structure(pilot, app)).widths == expected.widths
        assert app.session.run_path == run and app.session.run_finished
        await pilot.press("4")  # back to the run page, still on top of the runs list
        assert isinstance(app.screen, RunDetailScreen)
        await pilot.press("r")
        await wait_until(pilot, lambda: app.current_mode == "learn", what="the replay")
        await wait_until(pilot, lambda: app.session.log.status == "finished", what="the replay's end")
        await app.workers.wait_for_complete()
        assert app.session.log.steps == [1, 2]
        selected = {g: v.tolist() for g, v in RunDir(run).load("gates.pt").items()}
        assert app.session.log.gates == selected  # the replay ends on the run's selected gates


async def test_retraining_a_trained_run_asks_first_then_overwrites(runs_root):
    run = copy_run("trained", runs_root)
    calls = []

    def launcher(path: Path, epochs: int, overwrite: bool = False, subset: int = 0) -> int:
        calls.append(overwrite)
        return launch_train(path, epochs, command=[sys.executable, "-c", "print('pfs: error: boom')"])

    app = PfsApp(Session(runs_root=runs_root), launcher=launcher, show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.retrain_run(run)
        await pilot.pause()
        assert calls == [] and any("t again starts it over" in n.message for n in app._notifications)
        await app.retrain_run(run)
        assert calls == [True]
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run page")
        # The process failed at once: the page says so, with its last words.
        await wait_until(pilot, lambda: "pfs: error: boom" in text_of(app, "#run-head"), what="the error")
        assert "pfs train exited without training" in text_of(app, "#run-head")


async def test_a_run_with_a_corrupt_file_is_listed_and_opens_without_crashing(runs_root):
    copy_run("learned", runs_root, mtime=1_700_000_000)
    broken = copy_run("trained", runs_root, mtime=1_700_000_100)
    (broken / "config.json").write_text("{damaged")
    app = make_app(runs_root)
    async with app.run_test(size=(100, 24)) as pilot:
        table = await show_runs(pilot, app, rows=2)
        trained, learned = (table.get_row_at(i) for i in range(2))
        assert trained[0] == "trained" and trained[2] == "corrupt" and learned[2] == "finished"
        assert "corrupt: config.json" in text_of(app, "#run-preview")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.epochs,
                         what="the run's events")
        assert "config.json is corrupt" in text_of(app, "#run-head")


async def test_at_80_columns_footers_and_the_runs_table_show_every_word_whole(runs_root):
    from pfs_tui.screens.run_detail import RunDetailScreen

    copy_run("trained", runs_root, as_name="resnet20-fashion-mnist-20261207-104512")
    copy_run("learned", runs_root, as_name="resnet20-fashion-mnist-20261207-104733", mtime=1_700_000_100)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:

        def footer_fits() -> None:
            line = app.screen._compositor.render_strips()[-1].text
            shown = [b for _, b, enabled, _ in app.screen.active_bindings.values() if b.show]
            for binding in shown:  # each offered key's description whole, a space after it
                assert f" {binding.description} " in line, f"{binding.description!r} cut from {line!r}"

        for key in "12345?":
            await pilot.press(key)
            await pilot.pause()
            footer_fits()
        table = await show_runs(pilot, app, rows=2)
        assert table.virtual_size.width <= table.size.width  # no column cut at the right edge
        names = [str(table.get_row_at(k)[0]) for k in range(2)]
        assert names[0] != names[1] and names[0].endswith("104733") and names[1].endswith("104512")
        await app.push_screen(RunDetailScreen(runs_root / "resnet20-fashion-mnist-20261207-104512"))
        await pilot.pause()
        footer_fits()
