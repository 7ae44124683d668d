"""The dependency graph finds each sample model's declared channel groups.

Sample models declare their groups (tags on convs and BNs, sample_models.base); foreign
models get theirs from Torch-Pruning's graph. For every sample model the graph must find
each declared group with exactly the declared layers and its gate after the declared BN.
The graph also finds a few groups the paper keeps whole (stems, the last 1x1 conv, linear
bottleneck outputs without a residual add): each is listed here, and each is a set of
channels the sample model declares fixed.
"""
from __future__ import annotations

import copy

import pytest
from torch import nn

from engine.gating import create_model, strip_gates
from engine.models.graph import find_groups
from sample_models import list_models

SMALL_INPUT = {"resnet50": (3, 64, 64), "mobilenet_v1": (3, 64, 64), "mobilenet_v2_imagenet": (3, 64, 64)}
# gateable by the graph, kept whole by the paper's choice: (channels, BN where the gate would go)
KEPT_BY_THE_PAPER = {
    "mobilenet_v2": {(32, "bn1"), (1280, "bn2")},
    "resnet50": {(64, "bn1")},
    "mobilenet_v1": {(32, "features.1")},
    "mobilenet_v2_imagenet": {(16, "layers.0.bn3"), (320, "layers.16.bn3"), (1280, "bn2")},
}


def declared_members(model, group: str) -> set[str]:
    """Conv/BN/linear layers whose channels the sample model ties to `group`."""
    return {name for name, m in model.named_modules()
            if group in (getattr(m, "pfs_in", None), getattr(m, "pfs_out", None), getattr(m, "pfs_ref", None))}


# Deeper siblings (same blocks, more of them) only in the slow run.
DEEP = ("vgg13", "vgg19", "resnet32", "resnet56", "resnet110")
CASES = [pytest.param(n, {}, marks=[pytest.mark.slow] if n in DEEP else []) for n in list_models()]


@pytest.mark.parametrize("name, arch", CASES + [("resnet20", {"shortcut": "B"})])
def test_graph_finds_the_declared_groups(name, arch):
    model = create_model(name, **arch)
    bn_names = {m: n for n, m in model.named_modules()}
    declared = {g: (model.widths[g], bn_names[bn]) for g, bn in model.gated_bns().items()}
    plain = copy.deepcopy(model)
    strip_gates(plain)
    plan = find_groups(plain, SMALL_INPUT.get(name, (3, 32, 32)))
    found = {(g.channels, g.gate_at[0][0]): g for g in plan.groups}
    assert set(found) - set(declared.values()) == KEPT_BY_THE_PAPER.get(name, set())
    modules = dict(model.named_modules())
    for group, key in declared.items():
        assert key in found, f"{name}: the graph does not find declared group {group}"
        layers = {m for m in found[key].members if isinstance(modules.get(m), (nn.Conv2d, nn.BatchNorm2d, nn.Linear))}
        assert layers == declared_members(model, group), group
    for _, bn in KEPT_BY_THE_PAPER.get(name, ()):
        assert getattr(modules[bn], "pfs_ref", None) is None  # declared fixed by the sample model
