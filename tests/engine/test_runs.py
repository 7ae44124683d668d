from __future__ import annotations

import os

import pytest
import torch

from engine.errors import RunError
from engine.events import EpochEnd, RunFinished
from engine.runs import RunDir, atomic_write_bytes, list_runs, load_tensors


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(RunError, match="cannot write .*x.json: disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_checkpoints_with_code_are_refused_not_run(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/pwned",))

    torch.save({"w": torch.ones(2), "evil": Payload()}, tmp_path / "last.pt")
    with pytest.raises(RunError, match="refusing to load"):
        load_tensors(tmp_path / "last.pt")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match="refusing to load"):
        load_tensors(tmp_path / "junk.pt")


def test_run_directory_lifecycle_and_listing(tmp_path):
    run = RunDir.create(tmp_path / "a", {"model": "resnet20", "dataset": "fashion-mnist"})
    with pytest.raises(RunError, match="already holds a run"):
        RunDir.create(tmp_path / "a", {})
    run.save("gates.pt", {"layer1.0": torch.ones(4)})
    assert torch.equal(run.load("gates.pt")["layer1.0"], torch.ones(4))
    with run.event_sink() as sink:
        sink(EpochEnd(stage="train", epoch=1, total_epochs=2, train_loss=1.0, train_acc=0.4, test_acc=0.55))
    [info] = list_runs(tmp_path)
    assert (info.model, info.stage, info.status, info.progress, info.accuracy) == \
        ("resnet20", "train", "running", 0.5, 0.55)
    with run.event_sink() as sink:
        sink(RunFinished(stage="train"))
    assert list_runs(tmp_path)[0].status == "finished"


def test_missing_and_corrupt_runs_are_clear_errors(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        RunDir.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a pfs run"):
        RunDir.open(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="corrupt"):
        RunDir.open(tmp_path / "bad")
    [info] = list_runs(tmp_path)  # listed, not hidden: `pfs runs` names the broken file
    assert (info.name, info.model, info.corrupt) == ("bad", "?", "config.json")


def test_a_run_stopped_on_request_lists_as_stopped_not_finished(tmp_path):
    run = RunDir.create(tmp_path / "s", {"model": "resnet20", "dataset": "synthetic"})
    with run.event_sink() as sink:
        sink(RunFinished(stage="learn", summary={"status": "stopped"}))
    assert list_runs(tmp_path)[0].status == "stopped"
