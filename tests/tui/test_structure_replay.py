"""Structure page and replay: widths follow the target and the gates, export, replay speed."""
from __future__ import annotations

import json
import math

import torch

from engine.events import GateSnapshot, read_events
from engine.search import Structure, search, uniform_structure
from pfs_tui.app import PfsApp
from pfs_tui.session import Session, Settings, build_model
from pfs_tui.tasks import SPEEDS
from pfs_tui.testing import FIXTURES, copy_run, make_app, settled_structure, text_of, wait_until


def _last_gates(run: str) -> dict:
    return [e for e in read_events(FIXTURES / run / "events.jsonl") if isinstance(e, GateSnapshot)][-1].gates


async def _replayed(pilot, app) -> None:
    await wait_until(pilot, lambda: app.session.log.status == "finished", what="the replay")
    await app.workers.wait_for_complete()


async def test_structure_before_learning_is_the_uniform_network(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settled_structure(pilot, app)
        screen = app.screen
        assert screen.structure.widths == screen.uniform.widths
        assert "initial gates" in text_of(app, "#structure-summary")
        assert screen.structure.macs <= 0.5 * screen.structure.dense_macs


async def test_replay_then_structure_matches_the_engine_search_on_the_last_gates(runs_root):
    run = copy_run("learned", runs_root)
    app = PfsApp(Session(settings=Settings(), runs_root=runs_root), replay=str(run), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.speed_index = len(SPEEDS) - 1  # as fast as possible
        await _replayed(pilot, app)
        assert app.session.settings.dataset == "fashion-mnist"  # taken from the run's config
        assert len(app.session.log.steps) == 150
        await pilot.press("3")
        await settled_structure(pilot, app)
        screen = app.screen
        model, size = build_model(app.session.settings)
        gates = {g: torch.tensor(v) for g, v in _last_gates("learned").items()}
        expected = search(model, 0.5, size, gates=gates)
        assert screen.structure.widths == expected.widths and screen.structure.macs == expected.macs
        assert screen.uniform.widths == uniform_structure(model, 0.5, size).widths
        summary = text_of(app, "#structure-summary")
        assert f"ties {expected.tied}" in summary and f"{expected.speedup:.2f}x" in summary
        bars = text_of(app, "#bars").splitlines()
        assert len(bars) == 9 and bars[0].strip().startswith("layer1.0")
        assert f"{expected.widths['layer3.2']}/64" in bars[-1]


async def test_export_without_learned_gates_is_refused_and_says_why(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settled_structure(pilot, app)
        await pilot.press("e")
        await pilot.pause()
        assert list(runs_root.iterdir()) == []  # nothing written
        assert any(n.message.startswith("no learned gates: this structure is the uniform-like one")
                   for n in app._notifications)


async def test_moving_the_target_updates_widths_at_once_and_export_writes_it(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        widths = (await settled_structure(pilot, app)).dense_widths
        app.session.log.set_gates({g: [(i + 1) / (w + 1) for i in range(w)] for g, w in widths.items()}, 5)
        await wait_until(pilot, lambda: app.screen.settled and app.screen.learned, what="the learned search")
        before = app.screen.structure.macs
        screen = app.screen
        await pilot.press("-", "-", "-", "-", "-")
        await settled_structure(pilot, app)
        assert app.session.settings.budget == 0.45
        assert screen.structure.macs < before and screen.structure.budget == 0.45
        assert f"{screen.structure.macs_ratio:.2f} MACs" in text_of(app, "NavBar")  # what it reached
        await pilot.press("e")
        await pilot.pause()
        path = runs_root / "structure-resnet20-fashion-mnist-0.45.json"
        saved = Structure.from_json(json.loads(path.read_text()))
        assert saved.widths == screen.structure.widths and saved.macs == screen.structure.macs


async def test_an_unreachable_target_is_explained_not_crashed(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        await settled_structure(pilot, app)
        app.screen.query_one("#budget").set_value(0.01)
        await pilot.pause()
        assert await settled_structure(pilot, app) is None
        assert "raise FLOPs target to at least 0.0470" in text_of(app, "#structure-summary")  # the field, not a flag


async def test_replay_speed_keys_and_pause(runs_root):
    run = copy_run("learned", runs_root)
    app = PfsApp(Session(runs_root=runs_root), replay=str(run), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("space")  # pause at once: the default 10x replay takes seconds
        await wait_until(pilot, lambda: app.session.log.status == "paused", what="the pause")
        held = len(app.session.log.steps)
        assert held < 150
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert SPEEDS[screen.speed_index] == 200.0
        await pilot.press("left_square_bracket")
        assert SPEEDS[screen.speed_index] == 50.0
        await pilot.pause(0.3)
        assert "replay 50x" in text_of(app, "#learn-status")
        assert len(app.session.log.steps) == held
        screen.speed_index = len(SPEEDS) - 1
        await pilot.press("space")
        await _replayed(pilot, app)
        assert len(app.session.log.steps) == 150
        assert not math.isnan(app.session.log.heldout[-1][1])


async def test_replaying_a_run_cut_mid_way_says_the_recording_ended(runs_root):
    run = copy_run("midrun", runs_root)
    app = PfsApp(Session(runs_root=runs_root), replay=str(run), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.speed_index = len(SPEEDS) - 1
        await wait_until(pilot, lambda: app.session.log.status == "recorded", what="the replay")
        assert app.session.log.steps[-1] == 75
        assert app.session.run_finished is False  # no gates.pt: retraining is refused
        await pilot.press("3", "t")
        await pilot.pause()
        assert app.current_mode == "structure"


async def test_redraws_stay_at_a_few_hz_however_fast_events_arrive(runs_root):
    """5000 steps replayed at full speed: thousands of events, a handful of redraws."""
    import time

    from engine.events import StepEnd
    from pfs_tui.screens.learn import REDRAW_HZ

    events = [StepEnd(stage="learn", step=i, total_steps=5000, epoch=1, loss=1.0 / i, time=float(i))
              for i in range(1, 5001)]
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        screen = app.screen
        screen.speed_index = len(SPEEDS) - 1
        start_draws, t0 = screen.draws, time.monotonic()
        screen.start_replay(events)
        await wait_until(pilot, lambda: app.session.log.status == "recorded", what="the replay")
        await pilot.pause(2 / REDRAW_HZ)  # let the last tick draw the final state
        elapsed = time.monotonic() - t0
        assert len(app.session.log.steps) == 5000
        assert screen.draws - start_draws <= elapsed * REDRAW_HZ + 3
        await wait_until(pilot, lambda: "step 5000/5000" in text_of(app, "#learn-status"), what="the last step drawn")
