"""The whole method on foreign models from the CLI: run, resume, runs, export, onnxruntime."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.runs.export import load_pruned

NETS = Path(__file__).with_name("small_nets.py")
TINY = ["--learn-steps", "2", "--learn-batch-size", "32", "--heldout-limit", "64", "--train-epochs", "1",
        "--subset", "128", "--test-subset", "64", "--train-batch-size", "32", "--quiet"]


def _onnx_matches_pytorch(run: Path, out: Path, size) -> None:
    import onnxruntime as ort

    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    x = torch.rand(4, *size)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = load_pruned(run)(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("flags", [[], ["--prune-residual", "--init", "ticket"]])
def test_pfs_run_on_user_code_then_export_onnx(tmp_path, capsys, one_thread, flags):
    run = tmp_path / "r"
    assert main(["run", f"{NETS}:residual", "--dataset", "fashion-mnist", "--flops", "0.5", "--out", str(run),
                 *TINY, *flags]) == 0
    structure = json.loads((run / "structure.json").read_text())
    assert structure["macs"] <= structure["budget_macs"]
    assert ("proj.0" in structure["widths"]) == bool(flags)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["macs"] == structure["macs"]
    assert (run / "model.safetensors").is_file()
    _onnx_matches_pytorch(run, tmp_path / "m.onnx", (1, 28, 28))
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in listed] == ["finished"]


def test_flops_lists_groups_and_why_not(capsys):
    assert main(["flops", f"{NETS}:grouped", "--input-size", "1,16,16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [g["name"] for g in out["groups"]["gated"]] == ["head.0"]
    assert {g["name"]: g["why"].split(" (")[0] for g in out["groups"]["not_gated"]} == {
        "stem.0": "grouped conv grouped.0", "grouped.0": "grouped conv grouped.0",
        "fc": "no layer consumes these channels"}


def test_a_bad_spec_is_one_line_exit_2(tmp_path, capsys):
    assert main(["run", "torchvision:resnet19", "--flops", "0.5", "--out", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfs: error: torchvision has no classification model 'resnet19'") and err.count("\n") == 1


@pytest.mark.slow
def test_pfs_run_torchvision_resnet18_then_onnx(tmp_path, capsys, one_thread):
    run = tmp_path / "r18"
    assert main(["run", "torchvision:resnet18", "--dataset", "fashion-mnist", "--flops", "0.5",
                 "--out", str(run), *TINY]) == 0
    assert "the data's 1 are repeated 3x" in capsys.readouterr().err
    loaded = load_pruned(run)  # the data's 1 channel is repeated: torchvision's ResNet inside pfs's wrapper
    assert loaded.repeat == 3 and type(loaded.net).__name__ == "ResNet"
    _onnx_matches_pytorch(run, tmp_path / "r18.onnx", (1, 28, 28))


@pytest.mark.slow  # torchrun + 2 ranks: ~10-30 s; the sample-model DDP test runs by default
def test_ddp_trains_a_foreign_model_as_one_process_does(make_run, tmp_path):
    import os
    import subprocess
    import sys

    from engine.runs import load_tensors
    from engine.training.train import TrainOptions, train_run

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to this python")
    spec = f"{NETS}:residual"
    ddp, ref = (make_run(tmp_path / n, model=spec, expand=1.0)[0] for n in ("ddp", "ref"))
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "engine", "train", str(ddp.path),
           "--device", "cpu", "--quiet", "--epochs", "1", "--subset", "128", "--test-subset", "64",
           "--batch-size", "32", "--lr", "0.05"]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_run(ref.path, TrainOptions(epochs=1, subset=128, test_subset=64, batch_size=32, lr=0.05, accum_steps=2))
    finally:
        torch.set_num_threads(n)
    a, b = (load_tensors(r.file("checkpoints/last.pt"))["model"] for r in (ddp, ref))
    # as for sample models (test_distributed): 2 ranks x B/2 train what 1 process x 2 micro-batches does
    # (parameters only: BN running stats are averaged per rank vs sequential)
    diffs = {k: float((a[k] - b[k]).abs().max()) for k in a if "running_" not in k and "num_batches" not in k}
    assert max(diffs.values()) <= 1e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    assert (ddp.path / "model.safetensors").is_file()
