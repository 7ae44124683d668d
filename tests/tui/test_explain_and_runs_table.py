"""Explanations on demand, runs told apart by their settings and labels, replay jumps to a step."""
from __future__ import annotations

import json

from pfs_tui.testing import copy_run, make_app, settled_structure, show_runs, text_of, wait_until
from pfs_tui.widgets.explanation import Explanation


async def test_i_explains_mean_gate_open_and_the_selection_then_threshold_ties_and_uniform(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_until(pilot, lambda: app.current_mode == "learn", what="learn")
        panel = app.screen.query_one(Explanation)
        assert not panel.display  # not clutter: hidden until asked for
        await pilot.press("i")
        await pilot.pause()
        text = text_of(app, "#explain")
        assert panel.display and panel.region.height > 3
        assert "mean gate" in text and "open" in text and "selected step can come before the last" in text
        await pilot.press("i")
        await pilot.pause()
        assert not panel.display
        await pilot.press("3")
        await settled_structure(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        text = text_of(app, "#explain")
        assert app.screen.query_one(Explanation).display
        assert "threshold" in text and "ties" in text and "uniform pruning keeps the same share" in text


async def test_runs_table_shows_settings_and_a_label_set_with_n(runs_root):
    run = copy_run("learned", runs_root)
    learn = json.loads((run / "config.json").read_text())["learn"]
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await show_runs(pilot, app)
        row = table.get_row_at(0)
        assert row[0] == "learned" and row[6:] == [f"{learn['sparsity']:g}", f"{learn['gamma']:g}"]
        assert f"learned with r {learn['sparsity']:g} · gamma {learn['gamma']:g} · {learn['reg']} regulariser · " \
               f"seed {learn['seed']}" in text_of(app, "#run-preview")
        await pilot.press("n")
        await pilot.pause()
        await pilot.press(*"seed 0, the presenter", "enter")
        await wait_until(pilot, lambda: table.row_count and table.get_row_at(0)[0] == "seed 0, the presenter",
                         what="the label in the table")
        assert json.loads((run / "tui_label.json").read_text()) == {"label": "seed 0, the presenter"}


async def test_replay_jumps_to_a_step(runs_root):
    run = copy_run("learned", runs_root)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.replay_run(run)  # at 10x the recorded pace: far from step 120 for a while
        await wait_until(pilot, lambda: app.session.log.steps, what="the replay to start")
        assert app.session.log.steps[-1] < 100
        await pilot.press("j")
        await pilot.pause()
        await pilot.press("ctrl+a", "ctrl+k", *"120", "enter")  # replace the suggested step
        await wait_until(pilot, lambda: app.session.log.steps and app.session.log.steps[-1] >= 120,
                         what="the jump")
        log = app.session.log
        assert log.steps[:3] == [1, 2, 3] and log.status in ("running", "finished")
        assert log.steps == sorted(set(log.steps))  # one replay, from the start: no step twice
