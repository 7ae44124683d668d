"""A trained run's pruned network loads without pickles and exports; ONNX equals PyTorch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import PfsError, RunError
from engine.gates import set_gates_enabled
from engine.gating import build_model
from engine.prune import extract
from engine.runs import RunDir
from engine.runs.export import export, load_pruned, save_weights
from engine.search import search

NETS = Path(__file__).parent / "models" / "small_nets.py"


def trained_run(tmp_path, model: str, *, input_size=(1, 16, 16), weights: bool = False):
    """A run as `pfs train` leaves it: structure.json, the trained net in checkpoints/last.pt."""
    torch.manual_seed(0)
    net = build_model(model, num_classes=10, in_channels=input_size[0], input_size=input_size,
                      **({"expand": 0.25} if ":" not in model else {}))
    gates = {k: torch.rand(w, generator=torch.Generator().manual_seed(1)) for k, w in net.widths.items()}
    structure = search(net, 0.5, input_size, gates=gates)
    run = RunDir.create(tmp_path / "run", {"model": model, "dataset": "fashion-mnist", "model_spec": net.spec,
                                           "input_size": list(input_size), "num_classes": 10, "seed": 0})
    run.write_json("structure.json", structure.to_json())
    trained = extract(net, structure, "copy")  # stands in for trained weights
    set_gates_enabled(trained, False)
    with torch.no_grad():
        for m in trained.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.bias.uniform_(-0.5, 0.5)
    run.save("checkpoints/last.pt", {"model": trained.state_dict()})
    run.write_json("summary.json", {"stage": "train", "status": "finished", "expand": 1.0})
    if weights:
        save_weights(run, trained)
    return run, trained.eval()


@pytest.mark.parametrize("model", ["resnet20", f"{NETS}:residual", f"{NETS}:no_bn"])
@pytest.mark.parametrize("weights", [False, True])
def test_load_pruned_computes_what_was_trained(tmp_path, model, weights):
    run, trained = trained_run(tmp_path, model, weights=weights)
    loaded = load_pruned(run.path)
    assert not any("gate" in k for k in loaded.state_dict())
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), trained(x))


def test_a_foreign_network_loads_as_its_own_class(tmp_path):
    run, _ = trained_run(tmp_path, f"{NETS}:residual")
    assert type(load_pruned(run.path)).__name__ == "Residual"


@pytest.mark.parametrize("model", ["resnet20", f"{NETS}:concat"])
def test_exports_equal_pytorch(tmp_path, model):
    import onnxruntime as ort
    from safetensors import safe_open

    run, trained = trained_run(tmp_path, model, weights=True)
    x = torch.randn(5, 1, 16, 16)
    with torch.no_grad():
        expected = trained(x).numpy()
    onnx_file = export(run.path, "onnx", tmp_path / "m.onnx")
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, rtol=1e-4, atol=1e-5)
    ts = torch.jit.load(str(export(run.path, "torchscript", tmp_path / "m.pt")))
    np.testing.assert_allclose(ts(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    st = export(run.path, "safetensors", tmp_path / "m.safetensors")
    with safe_open(str(st), "pt") as f:
        assert set(f.keys()) == set(load_pruned(run.path).state_dict())
        assert f.metadata()["pfs_keep"].startswith("{")


def test_export_refuses_an_untrained_run_and_a_bad_format(tmp_path):
    run, _ = trained_run(tmp_path, "resnet20")
    with pytest.raises(PfsError, match="--format must be one of onnx, safetensors, torchscript"):
        export(run.path, "tflite", tmp_path / "m.tflite")
    run.file("checkpoints/last.pt").unlink()
    with pytest.raises(RunError, match="no trained network yet; run `pfs train"):
        load_pruned(run.path)
    assert not (tmp_path / "m.tflite").exists()
