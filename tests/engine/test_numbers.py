"""Numbers: non-finite flags refused, a diverged loss stops the run as failed, strict JSON everywhere."""
from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
import torch

from engine import create_model
from engine.cli import main
from engine.cli.common import print_json
from engine.data import synthetic_dataset
from engine.errors import DivergedError, PfsError, RunError
from engine.events import EpochEnd, JsonlSink, read_events
from engine.learn import LearnConfig, learn_gates
from engine.runs import atomic_write_json, load_gates
from engine.training.train import TrainOptions


def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pfs: error: "), err
    return err[0]


@pytest.mark.parametrize("flag", ["--lr", "--wd", "--momentum", "--expand"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_training_numbers_are_refused_by_the_cli(tmp_path, capsys, make_run, flag, value):
    run, _, _ = make_run(tmp_path / "run", dataset="synthetic", input_size=(3, 32, 32))
    before = sorted(p.name for p in run.path.iterdir())
    assert main(["train", str(run.path), f"{flag}={value}", "--epochs", "1"]) == 2
    assert f"argument {flag}: expected a finite number, got '{value}'" in _error_line(capsys)
    assert sorted(p.name for p in run.path.iterdir()) == before


@pytest.mark.parametrize("flag", ["--lr", "--expand", "--gamma", "--sparsity"])
def test_non_finite_learning_numbers_are_refused_by_the_cli(tmp_path, capsys, flag):
    assert main(["learn", "resnet20", "--dataset", "synthetic", f"{flag}=nan", "--out", str(tmp_path / "r")]) == 2
    assert "expected a finite number" in _error_line(capsys)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("field", ["lr", "wd", "momentum", "expand", "label_smoothing"])
def test_train_options_refuse_non_finite_numbers_from_the_api(field):
    with pytest.raises(PfsError, match="must be a finite number"):
        TrainOptions(**{field: float("inf")}).validate()


def test_learn_refuses_a_batch_larger_than_its_training_images_before_making_a_run(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["learn", "resnet20", "--dataset", "synthetic", "--batch-size", "1801", "--out", str(out)]) == 2
    assert "--batch-size 1801 is larger than the 1800 images gate learning trains on" in _error_line(capsys)
    assert not out.exists()


def test_a_diverging_training_run_stops_as_failed_naming_the_step_and_the_fix(tmp_path, capsys, make_run, one_thread):
    run, _, _ = make_run(tmp_path / "run", dataset="synthetic", input_size=(3, 32, 32))
    code = main(["train", str(run.path), "--epochs", "2", "--subset", "320", "--batch-size", "32",
                 "--test-subset", "32", "--lr", "1e8", "--device", "cpu", "--quiet"])
    line = _error_line(capsys)
    assert code == 2 and "the training loss became nan by step" in line and "lower the learning rate" in line
    assert "--lr 1e+07" in line
    failed = read_events(run.events_path)[-1]
    assert failed.kind == "failed" and failed.error == line.removeprefix("pfs: error: ")
    assert not run.exists("summary.json") or "test_acc" not in run.read_json("summary.json")
    assert not any(isinstance(e, EpochEnd) for e in read_events(run.events_path))  # stopped in epoch 1


def test_a_diverging_gate_learning_run_stops_at_the_step_it_diverged(tmp_path, one_thread):
    data = synthetic_dataset(n_train=200, n_test=20)
    net = create_model("resnet20", num_classes=10, in_channels=3, expand=0.25)
    with torch.no_grad():
        net.conv1.weight.fill_(float("nan"))  # a network whose loss is NaN from the first step
    with pytest.raises(DivergedError, match=r"loss became nan at step 1.*--lr 0.001"):
        learn_gates(net, data, LearnConfig(steps=3, batch_size=32))


def test_gate_files_with_nan_are_refused():
    net = create_model("resnet20", num_classes=10, in_channels=3, expand=0.25)
    gates = {g: torch.ones_like(m.weight) for g, m in net.gates().items()}
    load_gates(net, gates)
    gates[next(iter(gates))][0] = float("nan")
    with pytest.raises(RunError, match="not finite numbers"):
        load_gates(net, gates, "gates.pt")


def test_no_gate_set_meeting_r_is_a_one_line_warning(tmp_path, capsys):
    code = main(["learn", "resnet20", "--dataset", "synthetic", "--steps", "1", "--batch-size", "32",
                 "--expand", "0.25", "--heldout-limit", "32", "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0 and len(err) == 1
    assert err[0].startswith("pfs: warning: ") and "r = 0.2" in err[0] and "last gates were kept" in err[0]


def test_every_json_pfs_writes_or_prints_is_strict(tmp_path):
    nan, inf = float("nan"), float("inf")
    atomic_write_json(tmp_path / "a.json", {"x": nan, "y": [inf, 1.0], "z": {"w": -inf}})
    assert _strict((tmp_path / "a.json").read_text()) == {"x": None, "y": [None, 1.0], "z": {"w": None}}
    with JsonlSink(tmp_path / "e.jsonl") as sink:
        sink(EpochEnd(stage="train", epoch=1, total_epochs=1, train_loss=nan, train_acc=inf, test_acc=nan))
    assert _strict((tmp_path / "e.jsonl").read_text())["train_loss"] is None
    out = io.StringIO()
    with redirect_stdout(out):
        print_json({"acc": nan})
    assert _strict(out.getvalue()) == {"acc": None}
