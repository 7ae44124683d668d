from __future__ import annotations

import pytest
import torch

from engine.errors import PfsError
from engine.flops import count_macs
from engine.gating import create_model
from engine.prune import extract, fold_gates, pruned_model
from engine.search import search
from sample_models import list_models

SIZE = {"resnet50": (3, 64, 64), "mobilenet_v1": (3, 64, 64), "mobilenet_v2_imagenet": (3, 64, 64)}


def trained_looking(name):
    """A gated model whose BN stats and gates are not the init values (so copying is tested)."""
    torch.manual_seed(0)
    m = create_model(name)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
        for g in m.gates().values():
            g.weight.uniform_(0, 1)
    return m


@pytest.mark.parametrize("name", list_models())
def test_copied_network_equals_gated_network_with_dropped_gates_zeroed(name):
    size = SIZE.get(name, (3, 32, 32))
    m = trained_looking(name)
    s = search(m, 0.5, size)
    pruned = extract(m, s, "copy").eval()
    with torch.no_grad():
        for g, gate in m.gates().items():
            mask = torch.zeros_like(gate.weight)
            mask[s.keep[g]] = 1
            gate.weight.mul_(mask)
    m.eval()
    x = torch.randn(3, *size)
    with torch.no_grad():
        want, got = m(x), pruned(x)
    assert count_macs(pruned, size) == s.macs
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


def test_scratch_init_is_fresh_and_seeded():
    m = trained_looking("resnet20")
    s = search(m, 0.5)
    a, b = extract(m, s, "scratch", seed=3), extract(m, s, "scratch", seed=3)
    assert a.widths == s.widths
    for (_, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb)
    kept = s.keep["layer1.0"]
    assert not torch.equal(a.layer1[0].conv1.weight, m.layer1[0].conv1.weight[kept])
    assert all(torch.all(g.weight == 1) for g in a.gates().values())


def test_fold_gates_keeps_the_function():
    m = trained_looking("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = m(x)
        fold_gates(m)
        after = m(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-6)
    assert all(torch.all(g.weight == 1) for g in m.gates().values())


def test_expansion_scales_the_pruned_network():
    s = search(trained_looking("resnet20"), 0.5)
    wide = pruned_model(s, expand=2.0)
    assert wide.widths == {g: 2 * w for g, w in s.widths.items()}
    assert wide.conv1.out_channels == 32


def test_mismatched_structure_and_bad_init_are_clear_errors():
    s = search(trained_looking("resnet20"), 0.5)
    with pytest.raises(PfsError, match="other widths"):
        extract(create_model("resnet20", expand=2.0), s)
    with pytest.raises(PfsError, match="init must be"):
        extract(trained_looking("resnet20"), s, "lottery")
