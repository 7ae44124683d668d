"""Issue 16 item 3: what is on screen is explained truly: the Setup fields, the demo
schedule and its cost, chance-level held-out accuracy, the two kinds of ties; Setup persists."""
from __future__ import annotations

import json
import time

from pfs_tui import preferences
from pfs_tui.app import PfsApp
from pfs_tui.demo_schedule import DEMO_NAME, DEMO_STEPS
from pfs_tui.screens.structure import _tie_cause
from pfs_tui.session import FIELDS, Session, Settings
from pfs_tui.testing import MIN_WAIT_S, make_app, settled_structure, text_of, wait_until
from pfs_tui.widgets.number_field import NumberField


def _styles(app, region) -> list:
    """The (character, style) of every cell of a screen region, as drawn now."""
    strips = app.screen._compositor.render_strips()
    return [(char, seg.style) for y in range(region.y, region.bottom)
            for seg in strips[y].crop(region.x, region.right) for char in seg.text]


def _background_brightness(cell) -> float:
    """How bright a cell's background looks (0-255), reverse video taken into account."""
    _, style = cell
    color = style.color if style and style.reverse else style.bgcolor if style else None
    if color is None:
        return 0.0
    t = color.get_truecolor()
    return 0.299 * t.red + 0.587 * t.green + 0.114 * t.blue


def _row_of(widget):
    """The on-screen row a focus stop belongs to: its field or choice row, else itself."""
    node = widget
    while node is not None and not (isinstance(node, NumberField) or node.has_class("choice")):
        node = node.parent
    return node if node is not None else widget


async def _tab_stops(pilot, app) -> list:
    """Every widget Tab reaches on the page, in order, starting from the focused one."""
    stops, first = [], app.focused
    while True:
        stops.append(app.focused)
        await pilot.press("tab")
        await pilot.pause()
        if app.focused is first or len(stops) > 30:
            return stops


async def test_every_setup_widget_says_what_it_means_on_screen(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = {}
        shown = None
        for widget in await _tab_stops(pilot, app):
            widget.focus()
            # the line follows focus a message later: wait for it to change (each widget has its
            # own meaning, so it must), rather than trust one pause on a loaded machine
            await wait_until(pilot, lambda before=shown: text_of(app, "#field-help") != before,
                             what="the field's meaning")
            shown = text_of(app, "#field-help")
            seen[_row_of(widget).id or widget.id] = shown
        assert all(seen.values()), seen  # never an empty line: no meaning only in a hover tooltip
        for name, spec in FIELDS.items():
            assert seen[name] == f"{spec.label}: {spec.help}"
        assert "0 = learn for whole epochs" in seen["steps"] and "used only when steps is 0" in seen["epochs"]
        assert len(set(seen.values())) == len(seen)  # each widget its own meaning
        assert text_of(app, "#schedule") == DEMO_NAME  # the default is named as the demo schedule
        steps = app.screen.query_one("#steps", NumberField)
        steps.set_value(0)
        await pilot.pause()
        assert text_of(app, "#schedule") == "schedule: 1 whole epoch (steps 0)"


async def test_focus_is_visible_on_every_setup_widget(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        stops = await _tab_stops(pilot, app)
        assert len(stops) == 3 + len(FIELDS) + 2  # list, spec, 2 choices, the fields, Start
        for widget in stops:
            contrast = await _focus_contrast(pilot, app, widget, stops[1] if widget is stops[0] else stops[0])
            # Seen across a room on a projector: a clear change of background, not a shade.
            assert contrast >= 60, f"{widget.id}: focus changes the background by {contrast:.0f} of 255"


SEEN_CELLS = 3  # a label in reverse, a widget's background: never a lone cursor cell


async def _focus_contrast(pilot, app, widget, other) -> float:
    """How much SEEN_CELLS cells of `widget`'s row, at least, change in background brightness
    between `widget` focused and `other` focused, as drawn. More than one cell: a text cursor
    is one cell and blinks, so it cannot be the only sign of focus.

    A loaded machine draws a focus change late (CI saw a one-pause capture give 28), so a low
    reading is measured again, each time with longer pauses, until it clears 60 or MIN_WAIT_S
    runs out. A late draw shows one state twice (a low reading) or the two states swapped
    (the same reading): a retry cannot pass a row whose focus draws no change."""
    row, wait, deadline = _row_of(widget), None, time.monotonic() + MIN_WAIT_S
    while True:
        widget.focus()
        await pilot.pause(wait)
        focused = _styles(app, row.region)
        app.screen.set_focus(other)
        await pilot.pause(wait)
        changes = sorted((abs(_background_brightness(a) - _background_brightness(b))
                          for a, b in zip(focused, _styles(app, row.region), strict=True)), reverse=True)
        contrast = changes[SEEN_CELLS - 1]
        if contrast >= 60 or time.monotonic() > deadline:
            return contrast
        wait = min(2 * (wait or 0.0) + 0.05, 5.0)  # the first try waits for idle, as one pause did


async def test_setup_values_last_across_restarts(runs_root, tmp_path):
    prefs = tmp_path / "config" / "pfs" / "tui.json"
    app = PfsApp(Session(runs_root=runs_root, prefs_path=prefs), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#model-table")
        await wait_until(pilot, lambda: "resnet56" in table.rows, what="the model list")
        table.move_cursor(row=table.get_row_index("resnet56"))
        for name, value in (("budget", 0.35), ("sparsity", 0.3), ("gamma", 1.5), ("steps", 450)):
            app.screen.query_one(f"#{name}", NumberField).set_value(value)
        await pilot.pause()
    kept = json.loads(prefs.read_text())
    assert {k: kept[k] for k in ("model", "budget", "sparsity", "gamma", "steps")} == \
        {"model": "resnet56", "budget": 0.35, "sparsity": 0.3, "gamma": 1.5, "steps": 450}
    settings, warning = preferences.load(prefs, Settings())
    assert warning == ""
    app = PfsApp(Session(settings=settings, runs_root=runs_root, prefs_path=prefs), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert [app.screen.query_one(f"#{n}", NumberField).value for n in ("budget", "sparsity", "gamma", "steps")] \
            == [0.35, 0.3, 1.5, 450]
        table = app.screen.query_one("#model-table")
        await wait_until(pilot, lambda: "resnet56" in table.rows, what="the model list")
        assert app.session.settings.model == "resnet56"
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "resnet56"


async def test_a_model_whose_code_a_run_named_is_never_kept(runs_root, tmp_path):
    # Kept, it would run at the next start as if the user had typed it (engine/models/spec.py).
    prefs = tmp_path / "tui.json"
    app = PfsApp(Session(runs_root=runs_root, prefs_path=prefs), show_eta=False, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.set_setting("gamma", 2.0)
        app.set_setting("model", "someones_run_net.py:build")
        await pilot.pause()
    assert json.loads(prefs.read_text())["model"] != "someones_run_net.py:build"
    assert json.loads(prefs.read_text())["gamma"] == 2.0


def test_kept_values_setup_would_refuse_are_ignored_with_a_warning(tmp_path):
    prefs = tmp_path / "tui.json"
    prefs.write_text(json.dumps({"model": "", "budget": 3.0, "gamma": 0.7, "steps": 12.5}))
    settings, warning = preferences.load(prefs, Settings())
    assert (settings.model, settings.budget, settings.gamma, settings.steps) == ("resnet20", 0.5, 0.7, DEMO_STEPS)
    assert warning == f"ignoring model, budget, steps in {prefs}: not a value Setup accepts"


async def test_learn_names_the_demo_schedule_and_explains_chance_level_accuracy(runs_root):
    app = make_app(runs_root, start="learn")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert DEMO_NAME in text_of(app, "#learn-stats")
        assert len(DEMO_NAME) <= 78  # one line of the page at 80 columns
        await pilot.press("i")
        await pilot.pause()
        text = " ".join(text_of(app, "#explain").split())
        assert "held-out near chance" in text and "does not mean nothing was learned" in text
        assert "level with uniform pruning at the same MACs, not ahead" in text
        assert "about 1 minute against about 20" in text and "could not separate from seed noise" in text
        panel = app.screen.query_one("#explain")
        assert app.focused is panel and panel.max_scroll_y > 0  # longer than the page: it scrolls
        await pilot.press("end")
        await pilot.pause()
        assert panel.scroll_y == panel.max_scroll_y
        await pilot.press("i")
        await pilot.pause()
        assert not panel.display and app.focused is not panel


async def test_ties_say_whether_gates_did_not_separate_or_closed_gates_fill_the_target(runs_root):
    app = make_app(runs_root, start="structure", budget=0.6)
    async with app.run_test(size=(80, 24)) as pilot:
        widths = (await settled_structure(pilot, app)).dense_widths
        # Half the gates closed (exactly 0), the rest open and distinct: 0.6 of the MACs needs closed ones.
        gates = {g: [0.0 if i % 2 else 0.5 + i / (4 * w) for i in range(w)] for g, w in widths.items()}
        app.session.log.set_gates(gates, 7)
        await wait_until(pilot, lambda: app.screen.settled and app.screen.structure.threshold == 0, what="search")
        st = app.screen.structure
        assert st.tied > 0
        summary = text_of(app, "#structure-summary")
        assert f"ties {st.tied} (closed gates: target above the open share; r or target, i)" in summary
        await pilot.press("i")
        await pilot.pause()
        text = " ".join(text_of(app, "#explain").split())
        assert "Exactly 0" in text and "a lower FLOPs target or a larger r, not gamma" in text
        assert "did not separate; learn longer or raise gamma" in text


def test_a_tie_above_zero_is_gates_that_did_not_separate():
    class Found:
        tied, threshold = 3, 0.4

    assert _tie_cause(Found()) == " (gates not separated: learn longer or raise gamma, i)"
    Found.tied = 0
    assert _tie_cause(Found()) == ""


async def test_the_explanation_scrolls_but_leaves_the_targets_arrow_keys_to_the_page(runs_root):
    app = make_app(runs_root, start="structure", budget=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled_structure(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        assert app.focused is app.screen.query_one("#explain")
        await pilot.press("right", "right")
        await pilot.pause()
        assert app.session.settings.budget == 0.52  # two steps of 0.01, as without the panel
