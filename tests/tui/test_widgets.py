"""The small widgets and helpers: validation messages, nudging, histogram, thinning."""
from __future__ import annotations

from textual.app import App, ComposeResult

from pfs_tui.widgets.channel_bars import ChannelBars
from pfs_tui.widgets.curve_plot import moving_average, thin
from pfs_tui.widgets.gate_histogram import histogram
from pfs_tui.widgets.number_field import NumberField, parse_number


def test_parse_number_says_why_a_value_is_refused():
    assert parse_number("0.3", 0, 1, False) == (0.3, "")
    assert parse_number("", 0, 1, False) == (None, "enter a number")
    assert parse_number("abc", 0, 1, False) == (None, "not a number")
    assert parse_number("1.5", 0, 1, False) == (None, "must be between 0 and 1")
    assert parse_number("2.5", 0, 10, True) == (None, "a whole number, please")
    assert parse_number("nan", 0, 1, False) == (None, "not a number")


def test_histogram_puts_one_in_the_last_bin_and_counts_everything():
    counts = histogram([0.0, 0.05, 0.5, 0.99, 1.0], 10)
    assert counts == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]


def test_thin_keeps_first_and_last_and_caps_the_count():
    xs = list(range(10_000))
    tx, ty = thin(xs, xs, limit=100)
    assert len(tx) == 100 and tx[0] == 0 and tx[-1] == 9_999 and tx == ty


class FieldApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[float] = []

    def compose(self) -> ComposeResult:
        yield NumberField("FLOPs target", 0.5, minimum=0.01, maximum=1.0, step=0.05, id="budget")
        yield ChannelBars(id="bars")

    def on_number_field_changed(self, event: NumberField.Changed) -> None:
        self.changes.append(event.value)


async def test_number_field_nudges_with_keys_and_refuses_bad_text():
    app = FieldApp()
    async with app.run_test() as pilot:
        field = app.query_one(NumberField)
        field.input.focus()
        await pilot.press("+", "+", "up")
        await pilot.pause()
        assert field.value == 0.65 and field.input.value == "0.65"
        await pilot.press("-", "down")
        await pilot.pause()
        assert field.value == 0.55
        field.input.value = ""
        await pilot.press(*"1.7")
        await pilot.pause()
        assert field.has_class("-invalid")
        assert "must be between 0.01 and 1" in field.query_one(".error").visual.plain
        assert field.value == 1.0  # the last valid text ("1.") stands until the text is fixed
        await pilot.press("backspace")
        await pilot.pause()
        assert not field.has_class("-invalid") and field.value == 1.0
        await pilot.press("backspace", "backspace", *"0.3")
        await pilot.pause()
        assert not field.has_class("-invalid") and field.value == 0.3
        assert app.changes == [0.55, 0.6, 0.65, 0.6, 0.55, 1.0, 1.0, 0.3]  # 1.0 again: valid after a refusal


async def test_number_field_clamps_at_its_range_and_follows_the_mouse():
    app = FieldApp()
    async with app.run_test(size=(80, 10)) as pilot:
        field = app.query_one(NumberField)
        field.set_value(5.0)
        await pilot.pause()
        assert field.value == 1.0
        await pilot.click(".slider", offset=(0, 0))
        await pilot.pause()
        assert field.value == 0.95  # a click moves one step towards it, never to the end at once


async def test_one_click_on_a_wide_gauge_never_jumps_to_an_extreme():
    # Retrain epochs (1-1000, step 5): one click at 90% of the gauge once set 905 epochs.
    app = FieldApp()
    async with app.run_test(size=(80, 10)) as pilot:
        field = app.query_one(NumberField)
        field.minimum, field.maximum, field.step, field.integer = 1, 1000, 5, True
        field.set_value(20)
        await pilot.pause()
        width = field.query_one(".slider").size.width
        await pilot.click(".slider", offset=(int(width * 0.9), 0))
        await pilot.pause()
        assert field.value == 25
        await pilot.click(".slider", offset=(0, 0))
        await pilot.click(".slider", offset=(0, 0))
        await pilot.pause()
        assert field.value == 15


async def test_channel_bars_draw_one_line_per_group_with_counts():
    app = FieldApp()
    async with app.run_test(size=(80, 10)) as pilot:
        bars = app.query_one(ChannelBars)
        bars.show({"a": 16, "b": 64}, {"a": 4, "b": 64}, {"a": 8, "b": 32})
        await pilot.pause()
        lines = bars.render().plain.splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("a  4/16 u8  █") and lines[1].startswith("b 64/64 u32 █")
        assert lines[1].count("█") > lines[0].count("█") > 0


def test_moving_average_is_trailing_and_starts_at_the_first_value():
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


async def test_a_plot_draws_two_points_as_two_points():
    from textual.app import App

    from pfs_tui.widgets.curve_plot import CurvePlot

    class PlotApp(App):
        def compose(self):
            yield CurvePlot("test accuracy", id="p", marker="dot", zero_based=True)

    app = PlotApp()
    async with app.run_test(size=(60, 16)) as pilot:
        plot = app.query_one(CurvePlot)
        plot.show([("cyan", [1, 2], [0.61, 0.74])])  # two retraining epochs
        await pilot.pause()
        text = plot.render().plain
        assert text.count("•") == 2  # two dots, no line of dots between them
        assert "1.5" not in text and "1.25" not in text  # ticks at the epochs measured
        plot.show([("cyan", list(range(40)), [i / 40 for i in range(40)])])
        await pilot.pause()
        assert plot.render().plain.count("•") > 40  # a long series is a line
