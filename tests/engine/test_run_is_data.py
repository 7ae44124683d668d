"""A run directory is data, never code: opening a run you were sent runs none of its model code.

The hostile run is real: a run learned, searched and trained from a model file, whose file
is then rewritten to create a marker file when imported, with the recorded sha256 updated
to match (a sender controls both). Every way of opening the run must refuse it with one
line naming the file and --trust-model-code, and leave no marker; with the flag the same
command does import it (so the trigger is real and the refusals are not vacuous). A file
changed behind a run's back is refused even when trusted.
"""
from __future__ import annotations

import json
import shutil
import sys

import pytest

from engine.cli import main
from engine.errors import PfsError
from engine.models import spec as model_spec

NET = '''
from torch import nn


def build(num_classes, in_channels):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 12, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, num_classes))
'''


def _forget_model_code() -> None:
    """A fresh process: nothing allowed, no user module imported yet."""
    model_spec._ALLOWED.clear()
    model_spec._TRUST_ALL["on"] = False
    for name in [n for n in sys.modules if n.startswith("pfs_user_model_")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def sent(tmp_path_factory, fashion_mnist):
    """(run, model file, marker): a trained run whose model file now plants a marker on import."""
    from engine.jobs import learn_run, search_run
    from engine.learn import LearnConfig
    from engine.training.train import TrainOptions, train_run

    home = tmp_path_factory.mktemp("sender")
    net, marker = home / "net.py", home / "MARKER"
    net.write_text(NET)
    run = home / "run"
    learn_run(run, model=f"{net}:build", dataset="fashion-mnist", data=fashion_mnist,
              learn=LearnConfig(steps=2, batch_size=16, heldout_limit=16, eval_every=1))
    search_run(run, 0.6)
    train_run(run, TrainOptions(epochs=1, batch_size=32, subset=64, test_subset=32), data=fashion_mnist)
    net.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n{NET}")
    sha = model_spec.file_sha256(net)
    for name, key in (("config.json", "model_spec"), ("structure.json", "spec")):
        data = json.loads((run / name).read_text())
        data[key]["sha256"] = sha
        (run / name).write_text(json.dumps(data))
    return run, net, marker


@pytest.fixture
def hostile(sent):
    run, net, marker = sent
    _forget_model_code()
    marker.unlink(missing_ok=True)
    yield run, net, marker
    _forget_model_code()


def test_a_file_spec_is_recorded_absolute_with_its_hash(sent):
    run, net, _ = sent
    recorded = json.loads((run / "config.json").read_text())["model_spec"]
    assert recorded["name"] == f"{net.resolve()}:build"
    assert recorded["sha256"] == model_spec.file_sha256(net)


@pytest.mark.parametrize("command", [
    ["export", "{run}", "--format", "safetensors", "--out", "{tmp}/x"],
    ["train", "{run}", "--out", "{tmp}/branch", "--epochs", "1", "--subset", "64", "--quiet"],
    ["search", "{copy}", "--flops", "0.5", "--overwrite"],
    ["search", "{copy}", "--latency-ms", "1000", "--overwrite", "--json"],
    ["bench", "{copy}", "--repeats", "3", "--no-compile", "--no-onnx"],
], ids=lambda c: c[0] + ("-latency" if "--latency-ms" in c else ""))
def test_cli_refuses_to_import_a_runs_code(hostile, tmp_path, capsys, command):
    run, net, marker = hostile
    shutil.copytree(run, tmp_path / "copy")
    argv = [a.format(run=run, tmp=tmp_path, copy=tmp_path / "copy") for a in command]
    code = main(argv)
    err = capsys.readouterr().err
    if code == 0:
        pytest.fail(f"`pfs {' '.join(argv)}` succeeded without trust: {err}")
    assert not marker.exists(), f"`pfs {command[0]}` ran the run's code"
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert str(net.resolve()) in lines[0] and "--trust-model-code" in lines[0]
    assert not (tmp_path / "copy" / "speed.json").exists()


def test_export_from_inside_the_run_is_refused(hostile, tmp_path, capsys, monkeypatch):
    run, _, marker = hostile
    monkeypatch.chdir(run)
    assert main(["export", ".", "--format", "safetensors", "--out", str(tmp_path / "x")]) == 2
    assert "--trust-model-code" in capsys.readouterr().err and not marker.exists()


def test_listing_and_comparing_runs_import_nothing(hostile, capsys):
    run, _, marker = hostile
    assert main(["runs", str(run.parent), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 1
    main(["compare", str(run), str(run)])
    capsys.readouterr()
    assert not marker.exists()


def test_python_api_refuses_and_names_the_way_to_allow(hostile):
    import engine

    run, net, marker = hostile
    with pytest.raises(PfsError, match=r"engine\.allow_model_code\(\)") as info:
        engine.load_pruned(run)
    assert str(net.resolve()) in str(info.value) and not marker.exists()


def test_the_explorer_opens_compares_and_replays_without_importing(hostile, tmp_path):
    from pfs_tui.comparison import compare
    from pfs_tui.tasks import load_replay

    run, _, marker = hostile
    load_replay(run)
    shutil.copytree(run, tmp_path / "other")
    try:
        compare([run, tmp_path / "other"])
    except PfsError as exc:
        assert "--trust-model-code" in str(exc)
    assert not marker.exists()


def test_the_explorer_passes_trust_to_its_children_only_when_it_has_it(hostile):
    from pfs_tui.tasks import resume_command, train_command

    run, net, _ = hostile
    assert "--trust-model-code" not in train_command(run, 1) + resume_command(run)
    model_spec.allow_model_code(f"{net}:build")  # the user typed this model on Setup
    assert "--trust-model-code" in train_command(run, 1) and "--trust-model-code" in resume_command(run)


def test_trust_runs_the_code_and_a_changed_file_is_refused_anyway(hostile, tmp_path, capsys):
    run, net, marker = hostile
    export = ["export", str(run), "--format", "safetensors", "--out"]
    assert main(["--trust-model-code", *export, str(tmp_path / "x")]) == 0
    assert marker.read_text() == "ran"  # the refusals above refused a real trigger
    _forget_model_code()
    original = net.read_text()
    try:
        net.write_text(original + "\n# edited\n")
        assert main([*export, str(tmp_path / "y"), "--trust-model-code"]) == 2
        assert "changed since the run was made" in capsys.readouterr().err
    finally:
        net.write_text(original)


def test_naming_the_model_again_on_the_command_line_allows_it(hostile, capsys):
    run, net, marker = hostile
    assert main(["flops", f"{net}:build", "--input-size", "1,28,28", "--json"]) == 0
    capsys.readouterr()
    assert marker.exists()  # the user's own command line names it: it is theirs to run
