"""The new-user trial's workflow defects (issue 18, item 3), each as it was reported."""
from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.data import synthetic_dataset
from engine.runs import RunDir
from engine.training import TrainOptions, train_run

SYNTH = ["--dataset", "synthetic", "--steps", "3", "--batch-size", "8", "--heldout-limit", "16", "--quiet"]


def _stop_after(n: int):
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > n

    return should_stop


@pytest.fixture
def trained(tmp_path, make_run, one_thread):
    """A run trained for 2 epochs (finished), on synthetic 16x16 data."""
    run, _, _ = make_run(tmp_path / "parent", dataset="synthetic", input_size=(1, 16, 16), expand=0.25)
    data = synthetic_dataset(n_train=64, n_test=32, size=(1, 16, 16))
    train_run(run.path, TrainOptions(epochs=2, batch_size=32, device="cpu"), data=data)
    return run, data


def _stopped_branch(trained, out, steps: int) -> None:
    """Train the parent of `trained` into the branch `out`, stopped after `steps` steps of 5 epochs."""
    from engine.errors import StopRequested

    parent, data = trained
    with pytest.raises(StopRequested):
        train_run(parent.path, TrainOptions(epochs=5, batch_size=32, device="cpu"), out=out, data=data,
                  should_stop=_stop_after(steps))


def test_a_branch_keeps_the_parents_learning_events_never_its_training(trained, tmp_path, capsys):
    from engine.runs import list_runs

    branch = tmp_path / "branch"
    _stopped_branch(trained, branch, 1)
    stages = [getattr(e, "stage", None) for e in RunDir(branch).events()]
    train_events = [e for e in RunDir(branch).events() if getattr(e, "stage", None) == "train"]
    assert "train" in stages and all(e.kind != "finished" or e.summary.get("status") != "finished"
                                     for e in train_events)  # none of the parent's finished training
    [info] = [r for r in list_runs(tmp_path) if r.name == "branch"]
    assert info.status == "stopped" and info.accuracy is None and info.epoch is None  # stopped in epoch 1


def test_an_impossible_budget_is_refused_before_learning(tmp_path, capsys):
    for cmd in (["prune", "resnet20", *SYNTH, "--flops", "0.01"],
                ["run", "resnet20", "--dataset", "synthetic", "--learn-steps", "3", "--flops", "0.01"]):
        out = tmp_path / cmd[0]
        assert main([*cmd, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "raise --flops to at least 0.0539" in err[0], err
        assert not out.exists()  # nothing learned, nothing written
    assert main(["prune", "resnet20", *SYNTH, "--flops", "0.5", "--min-channels", "1000",
                 "--out", str(tmp_path / "wide")]) == 2
    err = capsys.readouterr().err
    assert "lower --min-channels (the narrowest layer has 16 channels)" in err and "raise --flops" not in err


@pytest.mark.parametrize("flags, message", [
    (["--dataset", "nosuch"], "unknown data set 'nosuch'"),
    (["--dataset", "synthetic", "--flops", "0.001"], "raise --flops to at least 0.0539"),
])
def test_a_refused_experiment_writes_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "exp"
    argv = ["experiment", "baselines", "resnet20", "--flops", "0.5", "--train-epochs", "1", *flags, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not out.exists()


def test_export_takes_finished_weights_only_and_names_an_unfinished_training(trained, tmp_path, capsys):
    parent, _ = trained
    stopped = tmp_path / "stopped"
    _stopped_branch(trained, stopped, 3)
    assert main(["export", str(stopped), "--format", "safetensors", "--out", str(tmp_path / "a.st")]) == 2
    err = capsys.readouterr().err.strip()
    assert "training is not finished (step 4, epoch 2 of 5 in its last checkpoint)" in err
    assert "--unfinished" in err and not (tmp_path / "a.st").exists()
    assert main(["export", str(stopped), "--format", "safetensors", "--out", str(tmp_path / "a.st"),
                 "--unfinished"]) == 0
    assert (tmp_path / "a.st").stat().st_size > 0
    # A new structure discards the training: its weights are never exported again.
    assert main(["search", str(parent.path), "--flops", "0.4", "--overwrite"]) == 0
    assert not parent.exists("model.safetensors")
    capsys.readouterr()
    assert main(["export", str(parent.path), "--format", "onnx", "--out", str(tmp_path / "b.onnx")]) == 2
    assert "has no trained network yet" in capsys.readouterr().err


@pytest.mark.parametrize("out, message", [(".", "is a folder; name the file to write"),
                                          ("nodir/x.onnx", "nodir does not exist")])
def test_export_to_a_folder_or_a_missing_one_is_one_line(trained, tmp_path, capsys, monkeypatch, out, message):
    monkeypatch.chdir(tmp_path)
    parent, _ = trained
    assert main(["export", str(parent.path), "--format", "onnx", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pfs: error:") and message in err[0]


def test_report_out_a_file_or_missing_notes_is_one_line_and_writes_nothing(tmp_path, capsys):
    grid = "docs/reproduction/grid/f30"  # committed cells: a real experiment on disk
    taken = tmp_path / "file"
    taken.write_text("mine")
    assert main(["report", grid, "--out", str(taken)]) == 2
    assert "is a file" in capsys.readouterr().err and taken.read_text() == "mine"
    out = tmp_path / "rep"
    assert main(["report", grid, "--out", str(out), "--notes", str(tmp_path / "missing.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.md does not exist" in err[0] and not out.exists()
    assert main(["report", grid, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["experiments"][0]["paired_differences"][0]["versus"] == "uniform"


def test_an_experiment_tells_each_cell_as_it_starts_and_a_stop_names_the_experiment(tmp_path, capsys, one_thread):
    import engine.cli.evidence as cli_evidence

    out = tmp_path / "exp"
    argv = ["experiment", "baselines", "resnet20", "--dataset", "synthetic", "--flops", "0.5", "--arms", "uniform",
            "random", "--seeds", "0", "--train-epochs", "1", "--expand", "0.25", "--subset", "64",
            "--train-batch-size", "32", "--out", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "pfs: cell 1 of 2: uniform seed 0" in err and "pfs: cell 2 of 2: random seed 0" in err
    assert "warning" not in err  # no arm here learns gates
    more = [*argv[:argv.index("--seeds") + 1], "0", "1", *argv[argv.index("--seeds") + 2:]]
    stops = iter([False] + [True] * 1000)  # stop inside the first new cell's training
    real = cli_evidence.graceful_stop

    def stopping():
        from contextlib import contextmanager

        @contextmanager
        def ctx():
            with real():
                yield lambda: next(stops)
        return ctx()

    cli_evidence.graceful_stop = stopping
    try:
        assert main(more) == 130
    finally:
        cli_evidence.graceful_stop = real
    err = capsys.readouterr().err
    assert "pfs: 2 of 4 cells already finished, skipped" in err and "pfs: cell 3 of 4: uniform seed 1" in err
    last = err.strip().splitlines()[-1]
    assert "repeat this `pfs experiment` command to continue" in last and "pfs resume" not in last
    assert main(more) == 0
    err = capsys.readouterr().err
    assert "pfs: 2 of 4 cells already finished, skipped" in err and "pfs: cell 3 of 4: uniform seed 1" in err
    assert len(json.loads((out / "results.json").read_text())["cells"]) == 4


def test_runs_shows_a_killed_learn_at_its_checkpoint_and_no_test_accuracy_for_learning(tmp_path, one_thread):
    import os

    from engine.events import CheckpointSaved, EpochEnd, RunStarted, StepEnd
    from engine.runs import list_runs

    run = RunDir.create(tmp_path / "killed", {"model": "resnet20", "dataset": "synthetic", "seed": 0})
    with run.event_sink() as sink:
        sink(RunStarted(stage="learn"))
        for step in range(1, 8):
            sink(StepEnd(stage="learn", step=step, total_steps=10, epoch=1, loss=1.0))
            if step == 4:
                sink(CheckpointSaved(stage="learn", path="checkpoints/learn.pt", step=4))
        sink(EpochEnd(stage="learn", epoch=1, total_epochs=2, train_loss=1.0, train_acc=0.5, test_acc=0.31))
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    run.file("pid.json").write_text(json.dumps({"pid": dead, "host": __import__("socket").gethostname(),
                                                  "stage": "learn", "started": 0, "time": 0}))
    [info] = list_runs(tmp_path)
    assert info.status == "killed" and info.progress == pytest.approx(0.4)  # the checkpoint's, not step 7's
    assert info.accuracy is None  # learning's epochs measure held-out gates, not the test split


def test_debug_does_not_ask_for_debug_and_a_file_is_not_a_missing_run(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["train", str(tmp_path / "afile")]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err
    assert main(["--debug", "flops", "resnet20", "--input-size", "1", "1", "1"]) in (1, 2)
    assert "re-run with --debug" not in capsys.readouterr().err


def test_events_read_back_after_a_resume_have_each_step_once(tmp_path, one_thread):
    """A killed learn left steps past its checkpoint in the log; the resume re-does them and
    readers see every step once, in order (the log itself stays append-only for followers)."""
    from engine.events import EvalEnd, StepEnd
    from engine.jobs import learn_run, resume_learn
    from engine.learn import LearnConfig

    data = synthetic_dataset(n_train=64, n_test=16, size=(1, 16, 16))
    out = tmp_path / "learn"
    config = LearnConfig(steps=8, batch_size=16, eval_every=3, seed=0)
    result = learn_run(out, model="resnet20", dataset="synthetic", learn=config, data=data, expand=0.25,
                       should_stop=_stop_after(5))
    assert result.stopped and result.steps == 5
    run = RunDir(out)
    with run.event_sink() as sink:  # what a process killed after two more steps had written
        for step in (6, 7):
            sink(StepEnd(stage="learn", step=step, total_steps=8, epoch=2, loss=9.0))
        sink(EvalEnd(stage="learn", step=6, accuracy=0.99, loss=0.1))
    resume_learn(out, data=data)
    steps = [e.step for e in run.events() if isinstance(e, StepEnd)]
    assert steps == list(range(1, 9))
    assert all(e.loss != 9.0 for e in run.events() if isinstance(e, StepEnd))  # the re-done ones, not the dead
    assert 0.99 not in [e.accuracy for e in run.events() if isinstance(e, EvalEnd)]
    raw = run.events_path.read_text().count('"type": "step"')
    assert raw > 8  # nothing was rewritten: followers never see the file shrink


@pytest.mark.parametrize("edit", ["model", "width", "keep"])
def test_runs_flags_another_models_structure_or_impossible_widths(tmp_path, make_run, edit):
    from engine.runs import list_runs

    run, _, _ = make_run(tmp_path / "r")
    structure = run.read_json("structure.json")
    group = next(iter(structure["widths"]))
    if edit == "model":
        structure["model"] = "vgg16"
    elif edit == "width":
        structure["widths"][group] = structure["dense_widths"][group] + 5
    else:
        structure["keep"][group] = [structure["dense_widths"][group] + 3] * structure["widths"][group]
    [before] = list_runs(tmp_path)
    assert before.corrupt is None
    run.write_json("structure.json", structure)
    [after] = list_runs(tmp_path)
    assert after.corrupt == "structure.json"


def test_compare_says_null_not_nan_for_a_structure_with_every_layer_alike(tmp_path, make_run, capsys):
    learned, _, _ = make_run(tmp_path / "learned")
    uniform, _, _ = make_run(tmp_path / "uniform")
    structure = uniform.read_json("structure.json")
    for g, full in structure["dense_widths"].items():
        structure["widths"][g] = full // 2
        structure["keep"][g] = list(range(full // 2))
    uniform.write_json("structure.json", structure)
    assert main(["compare", str(learned.path), str(uniform.path), "--json"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out and json.loads(out)["mean_correlation"] is None
    assert main(["compare", str(learned.path), str(uniform.path)]) == 0
    text = capsys.readouterr().out
    assert " nan" not in text and "mean pairwise correlation n/a" in text


def test_help_and_words(capsys):
    from engine.cli import build_parser

    for argv in (["learn", "resnet20", "--out", ""], ["report", "x", "--notes", " "]):
        assert main(argv) == 2
        assert "is empty; name a path" in capsys.readouterr().err
    args = build_parser().parse_args(["run", "resnet20", "--flops", "0.5", "--train-subset", "100"])
    assert args.subset == 100
    for command in (["baseline", "--help"], ["experiment", "baselines", "--help"]):
        with pytest.raises(SystemExit):
            main(command)
        text = " ".join(capsys.readouterr().out.split())
        assert "torchvision:NAME, timm:NAME, path/to/file.py:factory" in text and "imagefolder:PATH" in text
        assert "--subset N" in text and "--subset K" not in text


def test_a_missing_checkpoint_is_named_missing_and_user_code_errors_are_named_theirs(trained, tmp_path, capsys):
    parent, _ = trained
    assert main(["train", str(parent.path), "--out", str(tmp_path / "x"), "--init", "inherit",
                 "--from", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "missing.pt is not a file; pass a trained dense model's weights" in err and "stage" not in err
    assert main(["experiment", "ticket", str(parent.path), "--pretrained", str(tmp_path / "nope.pt"),
                 "--train-epochs", "1", "--out", str(tmp_path / "t")]) == 2
    assert "nope.pt is not a file" in capsys.readouterr().err and not (tmp_path / "t").exists()
    code = tmp_path / "mine.py"
    code.write_text("def build(num_classes):\n    raise ValueError('my bug')\n")
    assert main(["flops", f"{code}:build"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("pfs: error: your model code") and "raised ValueError: my bug" in line


def test_counts_read_as_words():
    from engine.errors import plural

    assert (plural(1, "epoch"), plural(0, "cell"), plural(3, "seed")) == ("1 epoch", "0 cells", "3 seeds")


def test_resume_hints_name_commands_that_take_the_flag_and_a_folder_is_not_a_structure(tmp_path, make_run, capsys):
    run, _, _ = make_run(tmp_path / "piped")
    run.write_json("config.json", {**run.config, "pipeline": {"flops": 0.001, "min_channels": 1, "train": {}}})
    run.write_json("summary.json", {"stage": "learn", "status": "finished", "heldout_acc": 0.2})
    run.file("structure.json").unlink()
    assert main(["resume", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert f"`pfs search {run.path} --flops F`, then `pfs train {run.path}`" in err
    other, _, _ = make_run(tmp_path / "other")
    assert main(["train", str(other.path), "--structure", str(other.path), "--out", str(tmp_path / "n")]) == 2
    assert f"is a folder; name the file (--structure {other.path}/structure.json)" in capsys.readouterr().err


def test_baseline_and_experiment_print_the_learn_warning(tmp_path, capsys, one_thread):
    common = ["resnet20", "--dataset", "synthetic", "--flops", "0.5", "--expand", "0.25", "--steps", "2",
              "--learn-batch-size", "8", "--heldout-limit", "16"]
    assert main(["baseline", "pfs", *common, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert "pfs: warning: no evaluated step met r" in capsys.readouterr().err
    assert main(["experiment", "baselines", *common, "--arms", "pfs", "--seeds", "0", "--train-epochs", "1",
                 "--subset", "64", "--train-batch-size", "32", "--out", str(tmp_path / "e")]) == 0
    err = capsys.readouterr().err
    assert "pfs: warning: cell pfs-s0: no evaluated step met r (" in err and "after 2 steps" in err


def test_runs_of_a_missing_folder_exits_2_and_download_is_offered_where_it_is_taken(tmp_path, capsys):
    assert main(["runs", str(tmp_path / "nonexist")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "no-cifar"
    empty.mkdir()
    assert main(["learn", "resnet20", "--dataset", "cifar10", "--data-root", str(empty), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--download" in err and "`pfs learn`, `prune` and `run` take it" in err
    assert list(empty.iterdir()) == []  # nothing written, nothing downloaded
