"""Presenter mode: an explorer follows another's run read-only (`pfs tui --follow RUN|latest`)."""
from __future__ import annotations

import json
import shutil

from pfs_tui.app import PfsApp
from pfs_tui.session import Session
from pfs_tui.testing import FIXTURES, settled_structure, text_of, wait_until


def _follower(runs_root, follow: str) -> PfsApp:
    return PfsApp(Session(runs_root=runs_root), follow=follow, start="learn", show_eta=False, blink=False)


def _files(run) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in run.iterdir()}


async def test_following_a_live_run_shows_its_curves_and_gates_and_writes_nothing(runs_root):
    run = runs_root / "presenter"
    run.mkdir()
    shutil.copy(FIXTURES / "learned" / "config.json", run / "config.json")
    lines = (FIXTURES / "learned" / "events.jsonl").read_text().splitlines(keepends=True)
    half = next(i for i, line in enumerate(lines) if '"step": 75,' in line and '"type": "step"' in line)
    (run / "events.jsonl").write_text("".join(lines[:half + 1]))
    app = _follower(runs_root, str(run))
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.session.log
        await wait_until(pilot, lambda: app.session.log.steps[-1:] == [75], what="the first half")
        assert app.session.settings.sparsity == json.loads((run / "config.json").read_text())["learn"]["sparsity"]
        await wait_until(pilot, lambda: "following" in text_of(app, "#learn-status"), what="the status line")
        with open(run / "events.jsonl", "a") as f:  # the presenter's run goes on
            f.write("".join(lines[half + 1:]))
        await wait_until(pilot, lambda: app.session.log.status == "finished", what="the end of the run")
        log = app.session.log
        assert log.steps == list(range(1, 151)) and log.gates_step == 150
        before = _files(run)
        await pilot.press("s", "space", "x")  # no learning here: the presenter's explorer learns
        await pilot.pause()
        assert app.session.learning is None and app.session.log.status == "finished"
        offered = {b.description for _, b, enabled, _ in app.screen.active_bindings.values() if b.show and enabled}
        assert not offered & {"Start", "Pause/resume", "Stop"}  # the footer does not offer them
        await app.action_learn()  # nor does the action run when reached another way (the palette)
        await pilot.pause()
        assert any("read-only" in n.message for n in app._notifications)
        await pilot.press("3")  # this tab's own FLOPs slider over the followed gates
        await wait_until(pilot, lambda: app.current_mode == "structure", what="the structure page")
        first = await settled_structure(pilot, app)
        assert "learned gates at step 150" in text_of(app, "#structure-summary")
        await pilot.press("-", "-")
        await wait_until(pilot, lambda: app.screen.settled and app.screen.structure.macs < first.macs,
                         what="a smaller structure")
        await pilot.press("e", "t")  # export and retrain would write into the run: refused
        await pilot.pause()
        assert app.screen.export() is None
        assert _files(run) == before


async def test_following_latest_moves_to_the_newest_run(runs_root):
    app = _follower(runs_root, "latest")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.session.log.status == "waiting", what="waiting for a run")
        config = json.loads((FIXTURES / "learned" / "config.json").read_text())
        for name, created in (("first", 1000.0), ("second", 2000.0)):
            run = runs_root / name
            run.mkdir()
            (run / "config.json").write_text(json.dumps({**config, "created": created}))
            shutil.copy(FIXTURES / "learned" / "events.jsonl", run / "events.jsonl")
            await wait_until(pilot, lambda r=run: app.session.run_path == r and app.session.log.status == "finished",
                             what=f"following {name}")
        assert len(app.session.log.steps) == 150  # the second run's events only, from its start


async def test_followers_show_the_presenters_pause_and_the_runs_flops_target(runs_root):
    from pfs_tui.tasks import PAUSED_FILE

    run = runs_root / "presenter"
    run.mkdir()
    config = json.loads((FIXTURES / "learned" / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "tui": {"budget": 0.35}}))
    lines = (FIXTURES / "learned" / "events.jsonl").read_text().splitlines(keepends=True)
    (run / "events.jsonl").write_text("".join(lines[:20]))
    (run / PAUSED_FILE).write_text('{"paused": 1}')  # the presenter pressed space
    app = _follower(runs_root, str(run))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.session.log.status == "paused", what="the presenter's pause")
        await wait_until(pilot, lambda: text_of(app, "#learn-status").startswith("paused"), what="the status line")
        assert "FLOPs target 0.35" in text_of(app, "#learn-stats")
        (run / PAUSED_FILE).unlink()  # and space again
        await wait_until(pilot, lambda: app.session.log.status == "following", what="the run going on")
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "structure", what="the structure page")
        assert app.screen.query_one("#budget").value == 0.35 and app.session.settings.budget == 0.35


async def test_pausing_learning_marks_the_run_for_followers_and_resuming_clears_it(runs_root):
    from pfs_tui.tasks import PAUSED_FILE
    from pfs_tui.testing import make_app

    app = make_app(runs_root, model="resnet20", dataset="synthetic", steps=5000, batch_size=8, eval_every=3,
                   heldout_limit=40, snapshot_every=2, budget=0.4)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "s")
        await wait_until(pilot, lambda: len(app.session.log.steps) >= 1, what="a first step")
        run = app.session.run_path
        assert json.loads((run / "config.json").read_text())["tui"] == {"budget": 0.4}
        await pilot.press("space")
        await wait_until(pilot, lambda: (run / PAUSED_FILE).is_file(), what="the pause mark")
        await pilot.press("space")
        await wait_until(pilot, lambda: not (run / PAUSED_FILE).is_file(), what="the mark to go")
        await pilot.press("x")
        await wait_until(pilot, lambda: app.session.log.status == "stopped", what="the stop")


async def test_a_follower_tab_builds_no_models(runs_root, monkeypatch):
    import pfs_tui.session as session_module

    built = []
    monkeypatch.setattr(session_module, "_build_foreign", lambda *a, **k: built.append(a) or None)
    run = runs_root / "presenter"
    run.mkdir()
    shutil.copy(FIXTURES / "learned" / "config.json", run / "config.json")
    app = PfsApp(Session(runs_root=runs_root), start="setup", show_eta=False, blink=False, follow=str(run))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("1")
        table = app.screen.query_one("#model-table")
        await wait_until(pilot, lambda: "torchvision:resnet18" in table.rows, what="the model list")
        table.focus()
        table.move_cursor(row=table.get_row_index("torchvision:resnet18"))
        await pilot.pause()
        assert "builds no models" in text_of(app, "#model-desc")
        assert app.screen._wanted == "" and app.screen._cost_timer is None  # no count was even scheduled
        spec = app.screen.query_one("#model-spec")
        spec.focus()
        spec.value = "torchvision:alexnet"
        await pilot.press("enter")
        await pilot.pause()
        assert "builds no models" in text_of(app, "#model-note")
        assert not [w for w in app.screen.workers if w.group == "model-cost"]
        assert built == [] and table.get_row("torchvision:resnet18")[1:] == ["-", "-"]
