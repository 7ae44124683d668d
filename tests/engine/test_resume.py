"""Resumable training: kill -9 then `pfs resume` ends bit-identical; unsafe checkpoints refused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import torch

from engine.cli import main
from engine.runs import load_tensors, run_info
from engine.training.train import TrainOptions

TRAIN = ["--epochs", "6", "--subset", "640", "--test-subset", "200", "--batch-size", "64", "--quiet"]


def pfs(*args: str) -> subprocess.Popen:
    # One thread in every process: the same float summation order, so results can match bit for bit.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "engine", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_event(path, kind: str, timeout: float = 120.0) -> dict:
    """Poll an events file until an event of `kind` appears (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            for line in path.read_text().splitlines():
                event = json.loads(line)
                if event["type"] == kind:
                    return event
        time.sleep(0.01)  # polling interval, not synchronisation: the loop checks the file
    raise AssertionError(f"no {kind} event in {path} within {timeout}s")


def test_kill_9_mid_run_then_resume_gives_the_same_final_weights(make_run, tmp_path, capsys):
    ref, killed = make_run(tmp_path / "ref")[0], make_run(tmp_path / "killed")[0]
    reference = pfs("train", str(ref.path), *TRAIN)
    victim = pfs("train", str(killed.path), *TRAIN)
    wait_for_event(killed.events_path, "checkpoint")
    assert main(["resume", str(killed.path)]) == 2  # a live run is not resumed twice
    assert "is in use by process" in capsys.readouterr().err
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    kinds = [e.kind for e in killed.events()]
    assert "finished" not in kinds
    saved = load_tensors(killed.file("checkpoints/last.pt"))["epoch"]
    assert 1 <= saved < 6
    assert run_info(killed.path).status == "killed"  # its owner process is gone

    resumed = pfs("resume", str(killed.path), "--quiet")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    started = [e for e in killed.events() if e.kind == "started"]
    assert started[-1].config["resumed_from_epoch"] == saved

    a, b = load_tensors(ref.file("checkpoints/last.pt")), load_tensors(killed.file("checkpoints/last.pt"))
    assert a["epoch"] == b["epoch"] == 6
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for i, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    assert [h["test_acc"] for h in a["history"]] == [h["test_acc"] for h in b["history"]]
    assert run_info(killed.path).status == "finished"


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if ever unpickled


def test_resume_refuses_an_unsafe_checkpoint_without_running_it(make_run, tmp_path, capsys):
    run = make_run(tmp_path / "r")[0]
    run.write_json("config.json", {**run.config, "train": TrainOptions(epochs=2).to_json()})
    marker = tmp_path / "pwned"
    run.file("checkpoints").mkdir()
    torch.save({"model": _Payload(str(marker))}, run.file("checkpoints/last.pt"))
    assert main(["resume", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pfs: error: refusing to load")
    assert "last.pt" in err
    assert not marker.exists()


def test_inherit_refuses_an_unsafe_checkpoint_without_running_it(make_run, tmp_path, capsys):
    run = make_run(tmp_path / "r")[0]
    marker = tmp_path / "pwned"
    torch.save(_Payload(str(marker)), tmp_path / "evil.pt")
    assert main(["train", str(run.path), "--init", "inherit", "--from", str(tmp_path / "evil.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to load" in err and "evil.pt" in err
    assert not marker.exists()


def test_resume_of_a_finished_run_does_no_work(make_run, tmp_path, capsys):
    run = make_run(tmp_path / "r")[0]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", str(run.path), "--epochs", "1", "--subset", "128", "--test-subset", "64",
                     "--batch-size", "64", "--quiet", "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        events = len(run.events())
        assert main(["resume", str(run.path), "--quiet", "--json"]) == 0
    finally:
        torch.set_num_threads(n)
    assert json.loads(capsys.readouterr().out)["test_acc"] == first["test_acc"]
    assert len(run.events()) == events
    assert isinstance(first["macs"], int)
