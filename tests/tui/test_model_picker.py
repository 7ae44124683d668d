"""The Setup page's model picker: typed specs (checked by the engine), torchvision's models listed."""
from __future__ import annotations

from pathlib import Path

from engine.models.spec import torchvision_names
from engine.runs import RunDir
from pfs_tui.testing import make_app, settled_structure, text_of, wait_until

TINY_NET = '''
from torch import nn


def build(num_classes, in_channels=3):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
'''


async def _loaded(pilot, app):
    table = app.screen.query_one("#model-table")
    await wait_until(pilot, lambda: table.row_count > 0, what="model list")
    return table


async def _type_spec(pilot, app, text: str) -> None:
    app.screen.query_one("#model-spec").focus()
    await pilot.press(*text, "enter")


async def test_torchvision_models_are_listed_beside_the_sample_ones_and_counted_when_highlighted(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await _loaded(pilot, app)
        names = [key.value for key in table.rows]
        tv = [n for n in names if n.startswith("torchvision:")]
        assert "resnet56" in names and len(tv) == len(torchvision_names()) >= 20
        assert "torchvision:resnet18" in tv and "torchvision:mobilenet_v3_small" in tv
        assert table.get_row("torchvision:resnet18")[1:] == ["-", "-"]  # not counted up front
        table.focus()
        table.move_cursor(row=names.index("torchvision:resnet18"))
        await wait_until(pilot, lambda: table.get_row("torchvision:resnet18")[1] != "-", what="lazy count")
        assert table.get_row("torchvision:resnet18")[1:] == ["34.2M", "11.2M"]  # at 1x28x28, 10 classes
        assert app.session.settings.model == "torchvision:resnet18"
        assert "34.2M MACs, 11.2M params (dense)" in text_of(app, "#model-desc")
        assert table.get_row("torchvision:resnet34")[1] == "-"  # only the highlighted one was built


async def test_typing_a_torchvision_spec_selects_it_and_shows_its_cost(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await _type_spec(pilot, app, "torchvision:mobilenet_v2")
        await wait_until(pilot, lambda: app.session.settings.model == "torchvision:mobilenet_v2", what="the spec")
        await wait_until(pilot, lambda: "MACs," in text_of(app, "#model-desc"), what="the cost")
        desc = text_of(app, "#model-desc")
        assert "torchvision classification model" in desc and "5.71M MACs, 2.24M params" in desc
        table = app.screen.query_one("#model-table")
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "torchvision:mobilenet_v2"
        assert table.get_row_at(table.cursor_row)[0] == "tv:mobilenet_v2"  # 'tv:' where 80 columns are short
        assert app.focused is table and app.screen.query_one("#model-spec").value == ""
        assert not app.screen.query_one("#model-note").display


async def test_a_bad_spec_shows_one_error_and_keeps_the_model(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        note = app.screen.query_one("#model-note")
        for bad, why in (("torchvision:resnet999", "torchvision has no classification model 'resnet999'"),
                         ("resnet999", "unknown model 'resnet999'"),
                         ("nets/missing.py:build", "model file nets/missing.py does not exist"),
                         ("my net:build", "is not understood")):
            spec = app.screen.query_one("#model-spec")
            spec.value = ""
            await _type_spec(pilot, app, bad)
            await wait_until(pilot, lambda: note.has_class("error"), what=f"the refusal of {bad}")
            assert text_of(app, "#model-note").startswith(f"cannot use {bad}: ") and why in text_of(app, "#model-note")
            assert app.session.settings.model == "resnet20"
            assert "resnet20" in text_of(app, "#model-desc") and "31M MACs" in text_of(app, "#model-desc")
            assert app.focused is spec  # still there to correct
        await pilot.press("backspace")
        await pilot.pause()
        assert not app.screen.query_one("#model-note").display  # editing clears the refusal
        await pilot.press("escape")  # Escape leaves the field, as the footer says
        await pilot.pause()
        assert app.focused is app.screen.query_one("#model-table")


async def test_a_file_spec_is_listed_and_learning_runs_on_it(runs_root, tmp_path):
    Path("nets").mkdir()
    Path("nets/tiny_net.py").write_text(TINY_NET)
    app = make_app(runs_root, dataset="synthetic", steps=2, batch_size=8, eval_every=2, heldout_limit=16,
                   snapshot_every=1)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await _type_spec(pilot, app, "nets/tiny_net.py:build")
        await wait_until(pilot, lambda: app.session.settings.model == "nets/tiny_net.py:build", what="the spec")
        table = app.screen.query_one("#model-table")
        assert "nets/tiny_net.py:build" in [k.value for k in table.rows]
        assert "your model, from a Python file" in text_of(app, "#model-desc")
        await pilot.press("s")
        await wait_until(pilot, lambda: app.session.log.status == "finished", what="learning")
        await app.workers.wait_for_complete()
        run = RunDir.open(app.session.run_path)
        assert run.config["model"] == "nets/tiny_net.py:build" and run.exists("gates.pt")
        assert app.session.run_path.parent == runs_root.resolve() or app.session.run_path.parent == runs_root
        assert app.session.run_path.name.startswith("tiny_net-build-synthetic-")
        assert "all 8 gates start at 1" in text_of(app, "#hist-title") or "(8 channels)" in text_of(app, "#hist-title")
        await pilot.press("3")  # the structure page searches the foreign model's learned gates
        await settled_structure(pilot, app)
        assert app.screen.error == "" and app.screen.structure is not None
        assert "learned gates" in text_of(app, "#structure-summary")


def test_pfs_tui_model_takes_a_spec_and_refuses_a_malformed_one_in_one_line(capsys):
    import pfs_tui.__main__ as entry

    assert entry.main(["--model", "my net:build"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfs: error: model spec 'my net:build' is not understood") and err.count("\n") == 1
    assert entry.main(["--model", "resnet999"]) == 2
    assert "or a spec such as torchvision:resnet18" in capsys.readouterr().err
