"""`pfs train / run / resume / runs`: one-line errors, the whole pipeline, listing runs."""
from __future__ import annotations

import json

import pytest
import torch

from engine.cli import main
from engine.errors import PfsError
from engine.gating import create_model
from engine.jobs.pipeline import pipeline_run, resume_run
from engine.learn import LearnConfig
from engine.runs import RunDir
from engine.search import search
from engine.training.train import TrainOptions

TINY = ["--subset", "128", "--test-subset", "64", "--quiet"]


@pytest.fixture
def run(tmp_path) -> RunDir:
    torch.manual_seed(0)
    net = create_model("resnet20", num_classes=10, in_channels=1, expand=0.25)
    gates = {k: torch.rand(w, generator=torch.Generator().manual_seed(1)) for k, w in net.widths.items()}
    r = RunDir.create(tmp_path / "runs" / "r1", {"model": "resnet20", "dataset": "fashion-mnist",
                                                 "model_spec": net.spec, "seed": 0})
    r.write_json("structure.json", search(net, 0.5, (1, 28, 28), gates=gates).to_json())
    return r


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "argument --epochs: expected a positive integer"),
    (["--init", "inherit"], "--init inherit needs --from CHECKPOINT"),
    (["--from", "x.pt"], "--from is only used with --init inherit"),
    (["--schedule", "linear"], "argument --schedule: invalid choice"),
    (["--amp", "--device", "cpu"], "--amp needs a CUDA device"),
    (["--lr", "fast"], "argument --lr: expected a number"),
    (["--batch-size", "256", "--subset", "100"], "only 100 training images for a batch of 256"),
    (["--structure", "missing.json"], "missing.json does not exist"),
    (["--image-size", "64"], "--image-size only applies to imagefolder"),
    (["--momentum", "2"], "--momentum must be in [0, 1), got 2"),
])
def test_bad_train_flags_give_one_clear_line_and_exit_2(run, capsys, flags, message):
    assert main(["train", str(run.path), *flags, "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("pfs: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["train", "no/such/run"], "run directory no/such/run does not exist"),
    (["resume", "no/such/run"], "run directory no/such/run does not exist"),
    (["run", "resnet20", "--dataset", "synthetic", "--flops", "1.5"], "--flops must be a fraction"),
    (["run", "resnet20", "--dataset", "synthetic", "--flops", "0.5", "--init", "ticket", "--train-expand", "2"],
     "cannot widen"),
])
def test_bad_commands_give_one_clear_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "runs").exists()  # refused before any work


def test_train_then_runs_lists_stage_progress_budget_and_accuracy(run, capsys, one_thread):
    assert main(["train", str(run.path), "--epochs", "2", "--batch-size", "64", *TINY]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{run.path}: test accuracy ") and "2 epochs" in out
    assert main(["runs", str(run.path.parent), "--json"]) == 0
    [info] = json.loads(capsys.readouterr().out)
    summary = run.read_json("summary.json")
    assert (info["name"], info["stage"], info["status"], info["progress"]) == ("r1", "train", "finished", 1.0)
    assert info["budget"] == 0.5 and info["accuracy"] == summary["test_acc"]
    assert (info["epoch"], info["total_epochs"], info["best_accuracy"]) == (2, 2, summary["best_test_acc"])
    assert main(["runs", str(run.path.parent)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["run", "model", "stage", "status"] and table[1].split()[:4] == \
        ["r1", "resnet20", "train", "finished"]


def test_pipeline_stopped_while_learning_resumes_through_search_and_training(tmp_path, one_thread):
    calls = {"n": 0}

    def stop_after_three_steps() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    out = tmp_path / "p"
    with pytest.raises(PfsError, match="stopped while learning"):
        pipeline_run(out, model="resnet20", dataset="synthetic", learn=LearnConfig(steps=8, batch_size=32),
                     flops=0.5, train=TrainOptions(epochs=1, batch_size=64, subset=256, test_subset=100),
                     expand=0.25, should_stop=stop_after_three_steps)
    run = RunDir(out)
    assert run.config["pipeline"]["flops"] == 0.5 and not run.exists("structure.json")
    summary = resume_run(out)
    assert summary["stage"] == "train" and summary["epochs"] == 1
    assert run.read_json("structure.json")["budget"] == 0.5
    stages = [(e.kind, getattr(e, "stage", None)) for e in run.events() if e.kind in ("finished", "structure")]
    assert stages[-3:] == [("finished", "learn"), ("structure", None), ("finished", "train")]
    assert summary["learn"]["status"] == "finished"  # the learn summary is kept inside the train one


def test_train_out_keeps_several_trainings_of_one_structure_side_by_side(run, capsys, one_thread):
    run.write_json("summary.json", {"stage": "learn", "status": "finished", "heldout_acc": 0.3})
    assert main(["train", str(run.path), "--epochs", "1", "--batch-size", "64", *TINY]) == 0
    out = run.path.parent / "r1-budget"
    assert main(["train", str(run.path), "--out", str(out), "--epochs", "1", "--scratch-b", "--batch-size", "64",
                 *TINY]) == 0
    capsys.readouterr()
    first, second = run.read_json("summary.json"), RunDir(out).read_json("summary.json")
    assert (first["epochs"], first["budget"]) == (1, False)
    assert second["budget"] is True and second["epochs"] == round(second["dense_macs"] / second["macs"]) > 1
    assert second["learn"] == first["learn"] == {"stage": "learn", "status": "finished", "heldout_acc": 0.3}
    assert RunDir(out).read_json("structure.json") == run.read_json("structure.json")
    assert RunDir(out).config["branched_from"] == str(run.path)


def test_resume_finishes_a_stopped_learn_only_run(tmp_path, capsys, one_thread):
    from engine.jobs import learn_run

    calls = {"n": 0}

    def stop_soon() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    out = tmp_path / "learn-only"
    result = learn_run(out, model="resnet20", dataset="synthetic", learn=LearnConfig(steps=6, batch_size=32),
                       expand=0.25, should_stop=stop_soon)
    assert result.stopped
    assert main(["resume", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    # the line `pfs learn` prints for the same run
    assert f"{out}: gates from step 6, held-out accuracy " in stdout and "% open" in stdout
    assert f"pfs search {out}" in stdout
    assert RunDir(out).read_json("summary.json")["status"] == "finished"
    assert main(["resume", str(out)]) == 2  # nothing left: says what to run next
    assert "next: `pfs search" in capsys.readouterr().err


def test_an_absurd_expansion_is_refused_before_building(capsys):
    assert main(["flops", "resnet20", "--expand", "1e6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expand must be in (0, 16], got 1e+06" in err


def test_runs_of_a_folder_that_does_not_exist_is_an_error(tmp_path, capsys):
    assert main(["runs", str(tmp_path / "nosuch")]) == 2
    assert "does not exist; give the folder that holds the runs" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["runs", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty")]) == 0
