"""Fixtures shared by the engine's training tests."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.gating import create_model
from engine.runs import RunDir
from engine.search import search


def _fake_learned_run(path, *, model="resnet20", dataset="fashion-mnist", expand=0.25, budget=0.5, seed=0,
                      input_size=(1, 28, 28), num_classes=10) -> tuple[RunDir, nn.Module, object]:
    """A run directory as `pfs learn` + `pfs search` leave it (random gates instead of learned)."""
    torch.manual_seed(seed)
    net = create_model(model, num_classes=num_classes, in_channels=input_size[0], expand=expand)
    g = torch.Generator().manual_seed(seed + 1)
    gates = {k: torch.rand(w, generator=g) for k, w in net.widths.items()}
    structure = search(net, budget, input_size, gates=gates)
    run = RunDir.create(path, {"model": model, "dataset": dataset, "data_root": None, "expand": expand,
                               "arch": {}, "model_spec": net.spec, "input_size": list(input_size),
                               "num_classes": num_classes, "seed": seed})
    run.save("init.pt", net.state_dict())
    run.save("gates.pt", gates)
    run.write_json("structure.json", structure.to_json())
    return run, net, structure


@pytest.fixture
def make_run():
    """Factory of fake learned runs: make_run(path, **options) -> (RunDir, gated net, Structure)."""
    return _fake_learned_run
