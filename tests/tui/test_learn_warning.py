"""The explorer learns `pfs learn`'s default schedule and says when no step met r."""
from __future__ import annotations

from engine.events import RunFinished, StepEnd
from engine.learn import not_converged_message
from engine.learn_schedule import DEMO_EVAL_EVERY, DEMO_STEPS, default_schedule
from pfs_tui.session import Settings
from pfs_tui.testing import make_app, text_of


def test_explorer_learns_the_demo_schedule_at_pfs_learns_rate():
    # live demos keep the shorter schedule (named on screen); the Adam rate is pfs learn's
    kwargs = Settings().learn_kwargs()
    assert (kwargs["steps"], kwargs["eval_every"]) == (DEMO_STEPS, DEMO_EVAL_EVERY) == (300, 50)
    assert kwargs["lr"] == default_schedule("fashion-mnist")["lr"] == 0.01


async def test_learn_page_shows_the_not_converged_warning(runs_root):
    app = make_app(runs_root, start="learn")  # no Setup page: its model list takes seconds to trace
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.session.reset_log()
        log.add(StepEnd(stage="learn", step=300, total_steps=300, epoch=1, loss=1.0, open_frac=0.47, mean_gate=0.2))
        summary = {"stage": "learn", "status": "finished", "converged": False,
                   "warning": not_converged_message(0.47, 0.2, 300)}
        log.add(RunFinished(stage="learn", summary=summary))
        app.screen.redraw(force=True)
        await pilot.pause()
        stats = text_of(app, "#learn-stats")
        assert "warning: no evaluated step met r: 47% of the gates are still open after 300 steps" in stats
        log.add(RunFinished(stage="learn", summary={"stage": "learn", "status": "finished", "converged": True}))
        app.screen.redraw(force=True)
        await pilot.pause()
        assert "no evaluated step met r" not in text_of(app, "#learn-stats")
