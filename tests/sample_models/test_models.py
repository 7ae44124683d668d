from __future__ import annotations

import pytest
import torch

from engine.errors import PfsError
from engine.gates import ChannelGate, GatedBatchNorm2d, set_gates_enabled
from engine.gating import create_model
from engine.gating import rebuild_model as rebuild
from sample_models import list_models

CIFAR = ["vgg16", "vgg19", "resnet20", "resnet32", "resnet56", "resnet110", "mobilenet_v2"]


def test_registry_has_the_papers_networks():
    assert set(CIFAR + ["resnet50", "mobilenet_v1"]) <= set(list_models())


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_models_classify_32px_and_28px_inputs(name):
    m = create_model(name, num_classes=7).eval()
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    gray = create_model(name, in_channels=1).eval()
    assert gray(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", list_models())
def test_every_group_has_one_gate_per_channel(name):
    with torch.device("meta"):
        m = create_model(name)
    gates = m.gates()
    assert list(gates) == list(m.widths)
    for group, gate in gates.items():
        assert isinstance(gate, ChannelGate)
        assert gate.weight.numel() == m.widths[group]


def test_prunable_groups_follow_the_papers_code():
    assert list(create_model("resnet20").widths) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert len(create_model("vgg16").widths) == 13
    with torch.device("meta"):
        r50 = create_model("resnet50")
        mb1 = create_model("mobilenet_v1")
    assert len(r50.widths) == 2 * 16 and "layer1.0.conv1" in r50.widths and "layer1.0.conv2" in r50.widths
    assert list(mb1.widths) == [f"pw{i}" for i in range(1, 14)]
    assert len(create_model("mobilenet_v2").widths) == 17


def test_pruned_model_is_the_same_class_with_other_widths():
    dense = create_model("resnet56")
    widths = {g: max(1, w // 3) for g, w in dense.widths.items()}
    small = create_model("resnet56", widths=widths)
    assert type(small) is type(dense)
    assert small.widths == widths
    assert small.layer2[3].conv1.out_channels == widths["layer2.3"]
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_expand_scales_every_channel_and_spec_rebuilds_it():
    m = create_model("resnet20", expand=1.5)
    assert m.conv1.out_channels == 24 and m.widths["layer3.0"] == 96
    again = rebuild(m.spec)
    assert again.spec == m.spec
    assert [p.shape for p in again.parameters()] == [p.shape for p in m.parameters()]


def test_shortcut_b_adds_projections_a_has_none():
    a, b = create_model("resnet20", shortcut="A"), create_model("resnet20", shortcut="B")
    assert sum(p.numel() for p in b.parameters()) > sum(p.numel() for p in a.parameters())
    assert isinstance(b.layer2[0].shortcut, torch.nn.Sequential)


def test_default_shortcut_is_b_and_a_recorded_run_rebuilds_as_a():
    assert create_model("resnet20").spec["arch"]["shortcut"] == "B"
    # a run made when A was the default recorded it in its spec: it rebuilds as it was
    torch.manual_seed(0)
    old = create_model("resnet20", shortcut="A")
    again = rebuild(old.spec)
    assert again.spec["arch"]["shortcut"] == "A"
    assert not isinstance(again.layer2[0].shortcut, torch.nn.Sequential)
    again.load_state_dict(old.state_dict())  # same tensors, strict: no projection weights appeared
    x = torch.randn(2, 3, 32, 32)
    old.eval(), again.eval()
    assert torch.equal(old(x), again(x))


def test_paper_initialisation():
    torch.manual_seed(0)
    vgg = create_model("vgg16")
    conv = vgg.features[0]
    expected = (2.0 / (3 * 3 * 64)) ** 0.5
    assert abs(conv.weight.std().item() - expected) / expected < 0.1
    assert torch.all(vgg.features[1].weight == 0.5)
    assert torch.all(create_model("resnet20").bn1.weight == 1.0)
    assert all(torch.all(g.weight == 1) for g in vgg.gates().values())


def test_folded_gate_equals_bn_then_gate():
    torch.manual_seed(1)
    bn = GatedBatchNorm2d(6)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.gate.weight.uniform_(0, 1)
    plain = torch.nn.BatchNorm2d(6)
    plain.load_state_dict({k: v for k, v in bn.state_dict().items() if not k.startswith("gate.")})
    x = torch.randn(4, 6, 5, 5)
    for train in (True, False):
        bn.train(train)
        plain.train(train)
        want = plain(x) * bn.gate.weight.view(1, -1, 1, 1)
        torch.testing.assert_close(bn(x), want)
    torch.testing.assert_close(bn.running_mean, plain.running_mean)
    assert bn.num_batches_tracked.item() == plain.num_batches_tracked.item() == 1


def test_gates_switched_off_are_the_identity():
    m = create_model("resnet20").eval()
    for g in m.gates().values():
        g.weight.data.zero_()
    x = torch.randn(2, 3, 32, 32)
    closed = m(x)
    set_gates_enabled(m, False)
    opened = m(x)
    assert not torch.allclose(closed, opened)
    set_gates_enabled(m, True)
    torch.testing.assert_close(m(x), closed)


@pytest.mark.parametrize("bad", [{"layer1.0": 0}, {"nope": 3}, {"layer1.0": 2.5}])
def test_bad_widths_are_a_clear_error(bad):
    widths = dict(create_model("resnet20").widths)
    widths.update(bad)
    if "nope" in bad:
        widths.pop("layer1.0")
    with pytest.raises(PfsError):
        create_model("resnet20", widths=widths)


def test_unknown_model_and_bad_options_are_clear_errors():
    with pytest.raises(PfsError, match="choose one of"):
        create_model("resnet99")
    with pytest.raises(PfsError, match="shortcut"):
        create_model("resnet20", shortcut="C")
    with pytest.raises(PfsError, match="only CIFAR ResNets"):
        create_model("vgg16", shortcut="A")
