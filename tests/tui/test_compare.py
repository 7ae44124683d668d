"""Compare page: two runs side by side, the correlation heat-map, the table; refusals in one line;
marks without colour, labels at 80 columns, new structures followed, foreign models compared."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.analysis import random_structure
from engine.errors import PfsError
from engine.jobs import learn_run, search_run
from engine.learn import LearnConfig
from engine.models import spec as model_spec
from pfs_tui.comparison import compare, short_labels
from pfs_tui.tasks import set_run_label
from pfs_tui.testing import copy_run, make_app, text_of, wait_until
from pfs_tui.widgets.keep_bars import UNIFORM_MARK, ratio_bar
from pfs_tui.widgets.mark_list import MARKED, UNMARKED
from sample_models import create_model


def second_run(root, name: str = "seed1", seed: int = 1, model: str = "resnet20"):
    """A copy of the trained fixture run whose structure.json is a random one at the same budget."""
    run = copy_run("trained", root, as_name=name, mtime=1_700_000_100)
    net = create_model(model, in_channels=1, num_classes=10)
    structure = random_structure(net, 0.5, (1, 28, 28), seed=seed)
    (run / "structure.json").write_text(json.dumps({**structure.to_json(), "dataset": "fashion-mnist"}))
    return run


def two_runs(root):
    return copy_run("trained", root, as_name="seed0"), second_run(root)


async def compared(pilot, app, rows: int = 2):
    """Mark every run listed on the Compare page (the app starts there) and wait for the comparison."""
    screen = app.screen
    picker = screen.query_one("#compare-runs")
    await wait_until(pilot, lambda: picker.option_count == rows, what="the runs list")
    picker.select_all()
    await wait_until(pilot, lambda: screen.settled, what="the comparison")
    await pilot.pause()
    return screen


async def test_compare_page_shows_two_runs_side_by_side(runs_root):
    two_runs(runs_root)
    app = make_app(runs_root, start="compare")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await compared(pilot, app)
        c = screen.comparison
        assert [i.label for i in c.items] == ["seed1", "seed0"]  # newest first, as on the Runs page
        assert c.correlation.shape == (2, 2) and c.correlation[0, 1] == pytest.approx(c.correlation[1, 0])
        assert -1 <= c.correlation[0, 1] < 1
        bars = text_of(app, "#compare-bars").splitlines()
        assert len(bars) == 1 + 9  # a header, then one line per gated layer of resnet20
        assert all(line.count(UNIFORM_MARK) == 2 for line in bars[1:])  # uniform marked on both bars
        assert "69%" in bars[1]  # seed0 keeps 11 of 16 channels of layer1.0
        summary = text_of(app, "#compare-summary")
        assert "resnet20 on fashion-mnist" in summary and f"{c.correlation[0, 1]:+.2f}" in summary
        await pilot.press("c")  # the Correlation tab
        assert screen.query_one("#compare-tabs").active == "correlation"
        heat = text_of(app, "#compare-heatmap")
        assert heat.count("+1.00") == 2  # the diagonal
        table = screen.query_one("#compare-table")
        assert table.row_count == 2
        assert [str(v) for v in table.get_row_at(1)][1:6] == ["seed0", "15.3M", "102k", "0.120", "0.376"]


async def test_compare_page_explains_on_demand(runs_root):
    two_runs(runs_root)
    app = make_app(runs_root, start="compare")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await compared(pilot, app)
        box = screen.query_one("#compare-explain")
        assert not box.display
        await pilot.press("i")
        assert box.display and "uniform" in text_of(app, "#compare-explain")
        await pilot.press("c")
        await pilot.pause()
        assert "Pearson" in text_of(app, "#compare-explain")
        await pilot.press("i")
        assert not box.display


async def test_compare_page_refuses_runs_of_different_data_sets_in_one_line(runs_root):
    two_runs(runs_root)
    config = runs_root / "seed1" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "dataset": "cifar10"}))
    app = make_app(runs_root, start="compare")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await compared(pilot, app)
        assert screen.comparison is None
        line = text_of(app, "#compare-summary")
        assert line.startswith("cannot compare runs on different data sets") and "\n" not in line
        assert "pick runs of one model and data set" in line


def test_compare_refuses_runs_of_different_models(runs_root):
    a = copy_run("trained", runs_root, as_name="a")
    b = second_run(runs_root, name="b", model="resnet32")
    with pytest.raises(PfsError, match=r"^cannot compare runs of different models: a is resnet20, b is resnet32"):
        compare([a, b])


def test_compare_reads_an_experiment_directory_as_its_runs(runs_root):
    exp = runs_root / "exp"
    (exp / "runs").mkdir(parents=True)
    (exp / "results.json").write_text("{}")
    copy_run("trained", exp / "runs", as_name="pfs-s0")
    second_run(exp / "runs", name="random-s1")
    result = compare([exp])
    assert [i.label for i in result.items] == ["pfs-s0", "random-s1"]
    with pytest.raises(PfsError, match="at least two runs"):
        compare([exp / "runs" / "pfs-s0"])
    shutil.rmtree(exp / "runs")
    with pytest.raises(PfsError, match="holds no run with a structure.json"):
        compare([exp])


def test_uniform_mark_sits_where_the_uniform_ratio_ends():
    bar = ratio_bar(0.75, 0.5, 20, "green").plain
    assert len(bar) == 20 and bar.index(UNIFORM_MARK) == 9  # the 10th of 20 cells: half
    assert bar.count("░") == 5  # 15 of 20 cells kept
    assert UNIFORM_MARK not in ratio_bar(0.3, None, 10, "green").plain


async def test_structure_page_marks_the_uniform_width_on_every_bar(runs_root):
    from engine.events import read_events
    from pfs_tui.testing import FIXTURES, settled_structure

    app = make_app(runs_root, start="learn", budget=0.4)
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.session.reset_log()
        for event in read_events(FIXTURES / "learned" / "events.jsonl"):
            log.add(event)
        await pilot.press("3")
        structure = await settled_structure(pilot, app)
        uniform = app.screen.uniform
        lines = text_of(app, "#bars").splitlines()
        assert len(lines) == len(structure.widths)
        for line, group in zip(lines, structure.widths):
            assert line.count(UNIFORM_MARK) == 1, line
            assert f"u{uniform.widths[group]}" in line


def test_compare_snapshot_80x24(snap_compare, runs_root):
    two_runs(runs_root)
    app = make_app(runs_root, start="compare")

    async def ready(pilot):
        await compared(pilot, app)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


async def test_an_experiment_directory_added_by_path_compares_its_runs(runs_root, tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "results.json").write_text("{}")
    copy_run("trained", exp, as_name="pfs-s0")
    second_run(exp, name="uniform-s0")
    app = make_app(runs_root, start="compare")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await pilot.press("o")
        await pilot.press(*str(exp), "enter")
        await wait_until(pilot, lambda: screen.settled and screen.comparison is not None, what="the comparison")
        assert [i.label for i in screen.comparison.items] == ["pfs-s0", "uniform-s0"]
        assert not screen.query_one("#compare-path").display  # the path field closes after Enter


# -- issue 16 item 4: marks, focus, labels at 80 columns, new structures, foreign models --
SMALL_NETS = Path(__file__).resolve().parent.parent / "engine" / "models" / "small_nets.py"
STAMPED = ("resnet20-fashion-mnist-20261207-104512", "resnet20-fashion-mnist-20261207-104733")


def _list_lines(app) -> list[str]:
    picker = app.screen.query_one("#compare-runs")
    return [picker.render_line(y).text for y in range(picker.option_count)]


async def _arrive(pilot, app, rows: int):
    await pilot.press("5")
    picker = app.screen.query_one("#compare-runs")
    await wait_until(pilot, lambda: picker.option_count == rows, what="the runs list")
    return app.screen, picker


async def test_arriving_on_compare_space_marks_and_marks_show_as_x_without_colour(runs_root):
    copy_run("trained", runs_root, as_name="seed0")
    second_run(runs_root)
    app = make_app(runs_root)  # starts on Setup: Compare is reached with 5, as a user does
    async with app.run_test(size=(80, 24)) as pilot:
        screen, picker = await _arrive(pilot, app, 2)
        assert app.focused is picker
        await pilot.press("space")
        await pilot.pause()
        assert [Path(p).name for p in picker.selected] == ["seed1"]  # the first row, no cursor move needed
        lines = _list_lines(app)
        assert lines[0].startswith(f"{MARKED} seed1") and lines[1].startswith(f"{UNMARKED} seed0")
        await pilot.press("down", "space")
        await wait_until(pilot, lambda: screen.comparison is not None and screen.settled, what="the comparison")
        assert all(line.startswith(MARKED) for line in _list_lines(app))


async def test_labels_name_runs_in_the_list_bars_heatmap_and_table_and_stay_apart_at_80_columns(runs_root):
    a = copy_run("trained", runs_root, as_name=STAMPED[0])
    b = second_run(runs_root, name=STAMPED[1])
    c = second_run(runs_root, name="resnet20-fashion-mnist-20261207-104901", seed=2)
    set_run_label(c, "PFS at lr 0.01, seed 2, target 0.5 of dense MACs")
    app = make_app(runs_root, start="compare")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        picker = screen.query_one("#compare-runs")
        await wait_until(pilot, lambda: picker.option_count == 3, what="the runs list")
        assert _list_lines(app)[0].startswith(f"{UNMARKED} PFS at lr 0.01, seed 2")
        picker.select_all()
        await wait_until(pilot, lambda: screen.comparison is not None and screen.settled, what="the comparison")
        await pilot.pause()
        shown = short_labels([i.label for i in screen.comparison.items], screen._label_width(3))
        assert shown[0].startswith("PFS at lr") and len(set(shown)) == 3
        assert shown[1].endswith("104733") and shown[2].endswith("104512")  # the end kept: the second they began
        header = text_of(app, "#compare-bars").splitlines()[0]
        assert all(f"{k + 1} {label}" in header for k, label in enumerate(shown))
        await pilot.press("c")
        await pilot.pause()
        heat = text_of(app, "#compare-heatmap")
        assert all(label in heat for label in shown)
        await pilot.press("t")
        await pilot.pause()
        table = screen.query_one("#compare-table")
        assert [str(table.get_row_at(k)[1]) for k in range(3)] == shown
        assert table.virtual_size.width <= table.size.width  # nothing cut off at the right edge
    assert a.is_dir() and b.is_dir()


async def test_the_list_follows_a_run_that_gets_a_structure(runs_root):
    copy_run("trained", runs_root, as_name="seed0")
    later = copy_run("trained", runs_root, as_name="later", mtime=1_700_000_200)
    structure = (later / "structure.json").read_text()
    (later / "structure.json").unlink()
    app = make_app(runs_root, start="compare")
    async with app.run_test(size=(80, 24)) as pilot:
        picker = app.screen.query_one("#compare-runs")
        await wait_until(pilot, lambda: picker.option_count == 1, what="the runs list")
        (later / "structure.json").write_text(structure)  # as `pfs search` writes it, while the page is shown
        await wait_until(pilot, lambda: picker.option_count == 2, what="the list to refresh by itself")
        assert any(line.startswith(f"{UNMARKED} later") for line in _list_lines(app))


def _user_code_run(root: Path, name: str, seed: int) -> Path:
    learn_run(root / name, model=f"{SMALL_NETS}:residual", dataset="synthetic",
              learn=LearnConfig(steps=2, batch_size=8, heldout_limit=16, snapshot_every=1, seed=seed))
    search_run(root / name, 0.5)
    return root / name


async def test_foreign_model_runs_compare_and_a_refusal_clears_the_stale_result(runs_root):
    model_spec.allow_model_code(f"{SMALL_NETS}:residual")  # this test names the code it writes runs of
    first, second = _user_code_run(runs_root, "user0", 0), _user_code_run(runs_root, "user1", 1)
    model_spec._ALLOWED.clear()  # the explorer, a fresh process, was not told to trust it
    copy_run("trained", runs_root, as_name="resnet", mtime=1)
    app = make_app(runs_root, start="compare")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        picker = screen.query_one("#compare-runs")
        await wait_until(pilot, lambda: picker.option_count == 3, what="the runs list")
        picker.select(str(first))
        picker.select(str(second))
        await wait_until(pilot, lambda: screen.comparison is not None and screen.settled, what="the comparison")
        items = screen.comparison.items
        assert screen.comparison.model.endswith("small_nets.py:residual") and len(items) == 2
        assert all(np.isnan(i.uniform).all() for i in items)  # no model code ran to count them
        summary = text_of(app, "#compare-summary")
        assert "no uniform marks" in summary and "--trust-model-code" in summary
        picker.select(str(runs_root / "resnet"))  # another model: refused in one line
        await wait_until(pilot, lambda: screen.settled and screen.comparison is None, what="the refusal")
        summary = text_of(app, "#compare-summary")
        assert summary.startswith("cannot compare runs of different models") and "\n" not in summary
        assert "pick two or more runs" in text_of(app, "#compare-bars")  # the stale bars are gone
        assert screen.query_one("#compare-table").row_count == 0
        model_spec.allow_model_code(f"{SMALL_NETS}:residual")  # trusted (named by the user): uniform drawn
        picker.deselect(str(runs_root / "resnet"))
        await wait_until(pilot, lambda: screen.comparison is not None and screen.settled, what="the comparison")
        assert all(np.isfinite(i.uniform).all() for i in screen.comparison.items)


def test_short_labels_are_distinct_and_fit():
    assert short_labels(list(STAMPED), 12) == ["…1207-104512", "…1207-104733"]
    assert short_labels(["run-a-with-one-end", "run-a-with-one-end2"], 12) == ["…ith-one-end", "…th-one-end2"]
    assert short_labels(["pfs seed 1, budget 0.5", "pfs seed 0, budget 0.5"], 15) == \
        ["pfs seed 1, bu…", "pfs seed 0, bu…"]
    assert short_labels(["same", "same"], 12) == ["same#1", "same#2"]
    long = [f"run with a long shared beginning and then {k}" for k in range(3)]
    assert all(len(x) <= 8 for x in short_labels(long, 8)) and len(set(short_labels(long, 8))) == 3
