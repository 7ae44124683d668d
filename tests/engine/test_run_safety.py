"""A run directory is the user's work: no command destroys it, mixes two runs up, or
contradicts itself; a refused command leaves every file as it was (issue: trustworthy runs)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.data import synthetic_dataset
from engine.errors import StopRequested
from engine.jobs import learn_run, resume_learn
from engine.learn import LearnConfig
from engine.runs import RunDir, run_info
from engine.training import TrainOptions, train_run

TINY_TRAIN = ["--subset", "128", "--test-subset", "64", "--batch-size", "64", "--quiet"]


def snapshot(path: Path) -> dict[str, str]:
    """Every file of a run and a hash of its bytes."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def one_error_line(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and err.startswith("pfs: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run that learned (synthetic data), searched and trained one epoch."""
    path = tmp_path_factory.mktemp("trained") / "run"
    assert main(["learn", "resnet20", "--dataset", "synthetic", "--steps", "4", "--batch-size", "32",
                 "--eval-every", "2", "--expand", "0.25", "--quiet", "--out", str(path)]) == 0
    assert main(["search", str(path), "--flops", "0.5", "--json"]) == 0
    assert main(["train", str(path), "--epochs", "1", *TINY_TRAIN]) == 0
    return path


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


# -- 1. check everything before touching anything --------------------------------------
@pytest.mark.parametrize("flags, corrupt, message", [
    (["--subset", "10"], None, "only 10 training images for a batch of 64"),
    (["--image-size", "64"], None, "--image-size only applies to imagefolder"),
    ([], "structure.json", "structure.json is corrupt"),
    ([], "config.json", "config.json is corrupt"),
])
def test_a_refused_train_overwrite_changes_no_file(run, capsys, flags, corrupt, message):
    if corrupt:
        (run / corrupt).write_text("{ not json")
    before = snapshot(run)
    assert main(["train", str(run), "--overwrite", "--epochs", "1", *TINY_TRAIN, *flags]) == 2
    one_error_line(capsys.readouterr().err, message)
    assert snapshot(run) == before  # checkpoints/last.pt, config.json and events.jsonl untouched


def test_train_out_is_not_created_when_a_flag_is_refused(run, tmp_path, capsys):
    assert main(["train", str(run), "--out", str(tmp_path / "new"), "--epochs", "1", *TINY_TRAIN,
                 "--subset", "10"]) == 2
    one_error_line(capsys.readouterr().err, "only 10 training images")
    assert not (tmp_path / "new").exists()


# -- 2. one owner per run ----------------------------------------------------------------
@pytest.fixture
def owned_by_another_process(run):
    """The run's owner record names a live process that is not this one."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        from engine.runs.rundir import OWNER_FILE, _process_start

        (run / OWNER_FILE).write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename,
                                                  "stage": "train", "started": _process_start(sleeper.pid)}))
        yield run, sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("argv", [
    ["learn", "resnet20", "--dataset", "synthetic", "--steps", "2", "--overwrite", "--quiet", "--out", "{run}"],
    ["search", "{run}", "--flops", "0.4", "--overwrite"],
    ["train", "{run}", "--overwrite", "--epochs", "1", *TINY_TRAIN],
    ["resume", "{run}", "--quiet"],
])
def test_a_run_in_use_refuses_every_other_writer_naming_the_owner(owned_by_another_process, capsys, argv):
    run, pid = owned_by_another_process
    before = snapshot(run)
    assert main([a.replace("{run}", str(run)) for a in argv]) == 2
    one_error_line(capsys.readouterr().err, f"in use by process {pid}")
    assert snapshot(run) == before


def test_pfs_learn_killed_with_9_lists_as_killed_at_once(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "learn", "resnet20", "--dataset", "synthetic",
                             "--steps", "100000", "--batch-size", "8", "--expand", "0.25", "--quiet",
                             "--out", str(out)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (out / "pid.json").is_file() or run_info(out).status != "running":
            assert proc.poll() is None and time.monotonic() < deadline, "learn did not start"
            time.sleep(0.05)  # polling the run's files, not waiting for time to pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert run_info(out).status == "killed"
    finally:
        proc.kill()


def test_two_owners_cannot_both_claim_a_run(run):
    r = RunDir.open(run)
    with r.owned("learn"):
        assert json.loads((run / "pid.json").read_text())["pid"] == os.getpid()
    assert not (run / "pid.json").exists()


# -- 3. no silent contradiction -----------------------------------------------------------
def test_search_refuses_a_trained_run_and_overwrite_discards_its_training(run, capsys):
    before = snapshot(run)
    assert main(["search", str(run), "--flops", "0.4"]) == 2
    one_error_line(capsys.readouterr().err, "has been trained", "--overwrite", "--out NEW")
    assert snapshot(run) == before
    assert main(["search", str(run), "--flops", "0.4", "--overwrite", "--json"]) == 0
    capsys.readouterr()
    config = json.loads((run / "config.json").read_text())
    assert "train" not in config and not (run / "checkpoints" / "last.pt").exists()
    info = run_info(run)
    assert info.budget == 0.4 and info.stage != "train"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stage"] == "learn"  # no test accuracy of the old structure left behind


# -- 4. a structure must fit its run --------------------------------------------------------
def _edit_structure(run: Path, edit) -> None:
    data = json.loads((run / "structure.json").read_text())
    edit(data)
    (run / "structure.json").write_text(json.dumps(data))


def _first_group(data: dict) -> str:
    return next(iter(data["widths"]))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["widths"].__setitem__(_first_group(d), 999), "must be a whole number in 1.."),
    (lambda d: d["widths"].__setitem__(_first_group(d), 0), "must be a whole number in 1.."),
    (lambda d: d["widths"].__setitem__(_first_group(d), 2.5), "must be a whole number in 1.."),
    (lambda d: d.__setitem__("model", "resnet32"), "is a structure of 'resnet32'"),
    (lambda d: d["keep"].__setitem__(_first_group(d), [10_000] * d["widths"][_first_group(d)]),
     "channel indices"),
    (lambda d: d["keep"].__setitem__(_first_group(d), [0]), "channel indices"),
    (lambda d: d.__setitem__("num_classes", 100), "has 100 classes"),
    (lambda d: d.__setitem__("input_size", [1, 28, 28]), "is for inputs [1, 28, 28]"),
])
def test_a_structure_that_does_not_fit_the_run_is_refused_before_training(run, capsys, edit, message):
    _edit_structure(run, edit)
    before = snapshot(run)
    assert main(["train", str(run), "--overwrite", "--epochs", "1", *TINY_TRAIN]) == 2
    one_error_line(capsys.readouterr().err, message)
    assert snapshot(run) == before


def test_a_structure_of_another_model_given_with_structure_is_refused(run, tmp_path, capsys):
    other = tmp_path / "r32"
    assert main(["learn", "resnet32", "--dataset", "synthetic", "--steps", "2", "--batch-size", "16",
                 "--quiet", "--out", str(other)]) == 0
    assert main(["search", str(other), "--flops", "0.5"]) == 0
    capsys.readouterr()
    assert main(["train", str(run), "--overwrite", "--structure", str(other / "structure.json"), "--epochs", "1",
                 *TINY_TRAIN]) == 2
    one_error_line(capsys.readouterr().err, "is a structure of 'resnet32'", "'resnet20' run")


# -- 6. data paths ----------------------------------------------------------------------------
def _fashion_copy(folder: Path) -> None:
    folder.mkdir(parents=True)
    for f in Path("/usr/share/datasets/fashion-mnist").glob("*-ubyte.gz"):
        (folder / f.name).symlink_to(f)


def test_a_relative_data_root_is_stored_absolute_and_train_can_point_at_moved_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _fashion_copy(tmp_path / "data-a")
    assert main(["learn", "resnet20", "--data-root", "data-a", "--steps", "2", "--batch-size", "16",
                 "--expand", "0.25", "--heldout-limit", "64", "--quiet", "--out", "r"]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["data_root"] == str(tmp_path / "data-a")
    assert main(["search", "r", "--flops", "0.5"]) == 0
    (tmp_path / "data-a").rename(tmp_path / "data-b")
    capsys.readouterr()
    assert main(["train", "r", "--epochs", "1", *TINY_TRAIN]) == 2  # the data is gone from where it was
    assert "Fashion-MNIST" in capsys.readouterr().err
    assert main(["train", "r", "--epochs", "1", "--data-root", "data-b", *TINY_TRAIN]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data_root"] == str(tmp_path / "data-b")


def test_an_image_folder_path_is_stored_absolute(tmp_path, monkeypatch):
    from engine.data import absolute_data_paths, moved_data

    monkeypatch.chdir(tmp_path)
    assert absolute_data_paths("d", "imagefolder:imgs") == (str(tmp_path / "d"), f"imagefolder:{tmp_path / 'imgs'}")
    assert moved_data({"dataset": "imagefolder:/old"}, "new") == {"dataset": f"imagefolder:{tmp_path / 'new'}"}


# -- 9. file-system mistakes ----------------------------------------------------------------
@pytest.mark.parametrize("out, message", [("afile", "afile is a file, not a folder"),
                                          ("afile/run", "afile is a file, not a folder")])
def test_out_that_is_or_is_under_a_file_is_one_line(tmp_path, monkeypatch, capsys, out, message):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("keep me")
    assert main(["learn", "resnet20", "--dataset", "synthetic", "--steps", "2", "--quiet", "--out", out]) == 2
    one_error_line(capsys.readouterr().err, message)
    assert Path("afile").read_text() == "keep me"


def test_a_start_that_fails_on_a_full_disk_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    import errno

    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("init.pt"):  # the disk fills up while the run saves its init
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert main(["learn", "resnet20", "--dataset", "synthetic", "--steps", "2", "--quiet",
                 "--out", str(tmp_path / "r")]) == 2
    one_error_line(capsys.readouterr().err, "cannot write", "init.pt", "free some disk space")
    assert not (tmp_path / "r").exists()


def test_the_files_of_a_run_share_one_permission_mode(trained):
    modes = {oct(p.stat().st_mode & 0o777) for p in trained.rglob("*") if p.is_file()}
    assert len(modes) == 1, modes


# -- 10. stopping is one behaviour ---------------------------------------------------------
def _learn(out: Path, stop_after: int | None = None):
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return stop_after is not None and calls["n"] > stop_after

    data = synthetic_dataset(n_train=512, n_test=64)
    return learn_run(out, model="resnet20", dataset="synthetic", expand=0.25, data=data,
                     learn=LearnConfig(steps=30, batch_size=16, eval_every=10, seed=0), should_stop=should_stop)


def test_a_stopped_learn_saves_the_current_step_and_resumes_to_the_same_gates(tmp_path, one_thread):
    whole = _learn(tmp_path / "whole")
    stopped = _learn(tmp_path / "stopped", stop_after=17)
    assert stopped.stopped and stopped.steps == 17
    assert torch.load(tmp_path / "stopped" / "checkpoints" / "learn.pt", weights_only=True)["step"] == 17
    resumed = resume_learn(tmp_path / "stopped", data=synthetic_dataset(n_train=512, n_test=64))
    assert resumed.steps == 30
    for g in whole.gates:
        assert torch.equal(whole.gates[g], resumed.gates[g])


def test_a_stopped_training_saves_mid_epoch_and_resumes_bit_identically(make_run, tmp_path, one_thread):
    data = synthetic_dataset(n_train=256, n_test=64)
    options = TrainOptions(epochs=2, batch_size=32, device="cpu")
    for name in ("whole", "stopped"):
        make_run(tmp_path / name, dataset="synthetic", input_size=(3, 32, 32))
    train_run(tmp_path / "whole", options, data=data)
    calls = {"n": 0}

    def stop_at_step_11() -> bool:
        calls["n"] += 1
        return calls["n"] == 11  # epoch 2, batch 3 of 8

    with pytest.raises(StopRequested, match="stopped at step 11"):
        train_run(tmp_path / "stopped", options, data=data, should_stop=stop_at_step_11)
    ckpt = torch.load(tmp_path / "stopped" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 11 and ckpt["batch"] == 3
    assert run_info(tmp_path / "stopped").status == "stopped"
    summary = train_run(tmp_path / "stopped", data=data, resume=True)
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "stopped" / "checkpoints" / "last.pt", weights_only=True)
    for k in whole["model"]:
        assert torch.equal(whole["model"][k], resumed["model"][k]), k
    assert summary["epochs"] == 2
    whole_hist = json.loads((tmp_path / "whole" / "summary.json").read_text())["history"]
    assert [h["train_loss"] for h in summary["history"]] == pytest.approx([h["train_loss"] for h in whole_hist])


def test_ctrl_c_in_pfs_learn_exits_130_and_says_how_to_continue(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "learn", "resnet20", "--dataset", "synthetic",
                             "--steps", "100000", "--batch-size", "8", "--expand", "0.25", "--out", str(out)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (out / "events.jsonl").is_file() or '"step"' not in (out / "events.jsonl").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "learn did not start"
            time.sleep(0.05)  # polling the run's files
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert f"pfs resume {out}" in err and "checkpoint saved" in err and "Traceback" not in err
    step = torch.load(out / "checkpoints" / "learn.pt", weights_only=True)["step"]
    assert step >= 1 and run_info(out).status == "stopped"


# -- 11. the CLI reads as one tool ------------------------------------------------------------
def test_abbreviated_flags_are_refused(tmp_path, capsys):
    assert main(["learn", "resnet20", "--dataset", "synthetic", "--ste", "2", "--out", str(tmp_path / "r")]) == 2
    one_error_line(capsys.readouterr().err, "--ste", "pfs learn --help")
    assert not (tmp_path / "r").exists()


def test_an_unknown_flag_points_to_the_commands_own_help(run, capsys):
    assert main(["search", str(run), "--flops", "0.5", "--no-such-flag"]) == 2
    one_error_line(capsys.readouterr().err, "--no-such-flag", "see `pfs search --help`")


def test_pfs_run_spells_learn_and_train_epochs_apart(capsys):
    from engine.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = capsys.readouterr().out
    assert "--learn-epochs" in text and "--train-epochs" in text and "--scratch-b" in text
    assert "--budget" not in text


def test_every_flag_has_help_and_no_internal_metavar():
    import re

    from engine.cli import build_parser

    def commands(parser, prefix="pfs"):
        for name, sub in (parser._subparsers._group_actions[0].choices.items() if parser._subparsers else []):
            if name != "tui":
                yield f"{prefix} {name}", sub
                yield from commands(sub, f"{prefix} {name}")

    checked = 0
    for name, sub in commands(build_parser()):
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        assert not re.search(r"[A-Z]+_[A-Z_]+", sub.format_usage()), sub.format_usage()
        checked += 1
    assert checked >= 17  # every command and experiment kind


def test_next_hints_are_quoted_to_paste(tmp_path, capsys):
    out = tmp_path / "my run"
    assert main(["learn", "resnet20", "--dataset", "synthetic", "--steps", "2", "--batch-size", "16",
                 "--quiet", "--out", str(out)]) == 0
    assert f"next: pfs search '{out}' --flops 0.5" in capsys.readouterr().out


def test_the_progress_bar_writes_plain_lines_when_not_a_terminal():
    import io

    from engine.events import ProgressBar, StepEnd

    stream = io.StringIO()
    bar = ProgressBar(stream)
    for step in range(1, 101):
        bar(StepEnd(stage="learn", step=step, total_steps=100, epoch=1, loss=1.0, steps_per_s=10.0))
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text and 10 <= text.count("\n") <= 12


def test_evaluations_show_progress_before_they_finish(tmp_path):
    import io

    from engine.events import EvalStarted, ProgressBar

    events = []
    data = synthetic_dataset(n_train=256, n_test=64)
    learn_run(tmp_path / "r", model="resnet20", dataset="synthetic", expand=0.25, data=data,
              learn=LearnConfig(steps=4, batch_size=16, eval_every=2), on_event=events.append)
    starts = [e for e in events if isinstance(e, EvalStarted)]
    assert [e.step for e in starts][:2] == [2, 4] and starts[0].images == 25  # 256 // 10 held out
    stream = io.StringIO()
    ProgressBar(stream)(starts[0])
    assert stream.getvalue() == "learn: evaluating 25 held-out images at step 2\n"


def test_compare_refuses_runs_of_other_models_or_data_sets(trained, tmp_path, capsys):
    fm = tmp_path / "fm"
    assert main(["learn", "resnet20", "--steps", "2", "--batch-size", "16", "--expand", "0.25",
                 "--heldout-limit", "64", "--quiet", "--out", str(fm)]) == 0
    assert main(["search", str(fm), "--flops", "0.5"]) == 0
    r32 = tmp_path / "r32"
    assert main(["learn", "resnet32", "--dataset", "synthetic", "--steps", "2", "--batch-size", "16",
                 "--quiet", "--out", str(r32)]) == 0
    assert main(["search", str(r32), "--flops", "0.5"]) == 0
    capsys.readouterr()
    assert main(["compare", str(trained), str(r32)]) == 2
    one_error_line(capsys.readouterr().err, "a resnet32 structure", "compare structures of one model")
    assert main(["compare", str(trained), str(fm)]) == 2
    one_error_line(capsys.readouterr().err, "fashion-mnist", "synthetic", "learned on one data set")


def test_commands_suggested_in_messages_are_quoted_to_paste(run, tmp_path, capsys):
    spaced = tmp_path / "my trained run"
    shutil.copytree(run, spaced)
    assert main(["search", str(spaced), "--flops", "0.4"]) == 2
    one_error_line(capsys.readouterr().err, f"`pfs train '{spaced}' --out NEW ...`")


def test_train_out_owns_the_new_run_not_the_one_it_branches_from(make_run, tmp_path, one_thread):
    from engine.events import StepEnd

    make_run(tmp_path / "src", dataset="synthetic", input_size=(3, 32, 32))
    owners = []

    def look(event) -> None:
        if isinstance(event, StepEnd):
            owners.append(((tmp_path / "src" / "pid.json").exists(), (tmp_path / "new" / "pid.json").exists()))

    train_run(tmp_path / "src", TrainOptions(epochs=1, batch_size=32, device="cpu", log_every=1),
              data=synthetic_dataset(n_train=64, n_test=32), out=tmp_path / "new", on_event=look)
    assert owners and set(owners) == {(False, True)}
    assert not (tmp_path / "new" / "pid.json").exists()  # released when training ends
