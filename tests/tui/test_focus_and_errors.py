"""Keys do what the footer says; errors are whole, in the explorer's words; the screenshot lands."""
from __future__ import annotations

from pathlib import Path

from engine.runs import RunDir
from pfs_tui.formatting import explorer_terms
from pfs_tui.screens.run_detail import RunDetailScreen
from pfs_tui.testing import make_app, settled_structure, show_runs, text_of, tiny_learned_run, wait_until
from pfs_tui.widgets.number_field import NumberField, NumberInput


def footer_keys(app) -> set[str]:
    """The descriptions of the bindings the footer offers now."""
    return {b.description for _, b, enabled, _ in app.screen.active_bindings.values()
            if b.show and enabled is not False}


async def test_after_escape_in_a_field_page_keys_switch_pages_and_stay_out_of_it(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "structure", what="the structure page")
        field = app.screen.query_one("#budget", NumberField)
        field.input.focus()
        await pilot.pause()
        assert "Leave field" in footer_keys(app)  # Escape is in the footer while editing
        assert "Help" not in footer_keys(app)  # `?` is typed text in a field
        await pilot.press("?")
        await pilot.pause()
        assert app.current_mode == "structure" and "?" in field.input.value
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.focused, NumberInput) and "Help" in footer_keys(app)
        await pilot.press("1")
        await wait_until(pilot, lambda: app.current_mode == "setup", what="setup")
        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "structure", what="structure again")
        assert not isinstance(app.focused, NumberInput)  # focus did not come back into the field
        await pilot.press("4")
        await wait_until(pilot, lambda: app.current_mode == "runs", what="the runs page")
        await pilot.press("f1")
        await wait_until(pilot, lambda: app.current_mode == "help", what="help by F1")


async def test_setup_tab_stops_are_all_visible_widgets(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        stops = []
        for _ in range(len(app.screen.focus_chain)):
            stops.append(app.focused.id)
            await pilot.press("tab")
        assert stops[0] == "model-table" and "form" not in stops
        assert all(stop and app.screen.query_one(f"#{stop}").region.area > 0 for stop in stops)


async def test_a_value_set_on_structure_clears_the_setup_fields_error(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        budget = app.screen.query_one("#budget", NumberField)
        budget.input.focus()
        budget.input.value = ""
        await pilot.pause()
        error = budget.query_one(".error")
        assert "budget" in app.session.invalid
        # The whole reason is shown, wrapped, not cut at the form's edge.
        assert error.visual.plain == "FLOPs target: enter a number" and error.region.height >= 2
        await pilot.press("escape", "3")
        await wait_until(pilot, lambda: app.current_mode == "structure", what="structure")
        await pilot.press("+")
        await pilot.pause()
        await pilot.press("-")  # back to 0.5, the value Setup had before it was emptied
        await pilot.pause()
        assert app.session.settings.budget == 0.5 and not app.session.invalid
        await pilot.press("1")
        await wait_until(pilot, lambda: app.current_mode == "setup", what="setup")
        assert not budget.error and budget.input.value == "0.5"


async def test_a_refused_target_updates_the_page_bar(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settled_structure(pilot, app)
        bar = app.screen.query_one("NavBar")
        assert "MACs" in bar.extra
        field = app.screen.query_one("#budget", NumberField)
        field.input.focus()
        field.input.value = "7"
        await pilot.pause()
        assert bar.extra == "target refused"
        field.input.value = "0.5"
        await wait_until(pilot, lambda: "MACs" in bar.extra, what="the bar to show the target again")


def test_engine_errors_name_the_explorers_settings():
    assert explorer_terms("gamma must be >= 0; e.g. --gamma 0.5") == "gamma must be >= 0; e.g. gamma 0.5"
    assert explorer_terms("--flops must be a fraction") == "FLOPs target must be a fraction"
    assert explorer_terms("e.g. --batch-size 128") == "e.g. batch size 128"
    assert "restart the explorer with `pfs tui --data-root DIR`" in explorer_terms("pass --data-root DIR, or x")


async def test_a_stopped_run_shows_stopped_and_g_opens_its_target_and_selected_step(runs_root):
    from engine.jobs import search_run

    run = tiny_learned_run(runs_root, stop_after=4, steps=50, eval_every=2)
    search_run(run, 0.3)
    summary = RunDir(run).read_json("summary.json")
    assert summary["status"] == "stopped"
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_runs(pilot, app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.status != "running"
                         and app.screen.learn_steps, what="the run page")
        assert "· stopped" in text_of(app, "#run-head")
        bar = app.screen.query_one("#run-progress")
        assert bar.progress < bar.total
        await pilot.press("g")
        await wait_until(pilot, lambda: app.current_mode == "structure", what="the structure page")
        await settled_structure(pilot, app)
        assert app.session.settings.budget == 0.3
        assert f"learned gates at step {summary['selected_step']}" in text_of(app, "#structure-summary")


async def test_the_palettes_screenshot_is_saved_in_the_working_directory(runs_root, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a server's account: no ~/Downloads
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Screenshot")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: list(Path.cwd().glob("*.svg")), what="the screenshot")
        saved = next(Path.cwd().glob("*.svg"))
        await wait_until(pilot, lambda: any(str(saved) in n.message for n in app._notifications),
                         what="where it went")
        assert saved.read_text().lstrip().startswith("<svg")
