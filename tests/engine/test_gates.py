"""GatedBatchNorm2d must compute exactly BN followed by the channel gate, gradients included."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from engine.gates import ChannelGate, GatedBatchNorm2d, set_gates_enabled


def pair(channels: int = 6):
    torch.manual_seed(0)
    gated = GatedBatchNorm2d(channels)
    with torch.no_grad():
        gated.weight.uniform_(0.5, 1.5)
        gated.bias.uniform_(-0.5, 0.5)
        gated.gate.weight.copy_(torch.tensor([1.0, 0.0, 0.3, 0.7, 0.0, 0.9])[:channels])
    bn = nn.BatchNorm2d(channels)
    bn.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("gate.")})
    gate = ChannelGate(channels)
    with torch.no_grad():
        gate.weight.copy_(gated.gate.weight)
    return gated, bn, gate


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gated_bn_equals_bn_then_gate_with_gradients_and_running_stats(training, channels_last):
    gated, bn, gate = pair()
    gated.train(training)
    bn.train(training)
    x = torch.randn(4, 6, 5, 5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_a, out_b = gated(xa), gate(bn(xb))
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(out_a)
    out_a.backward(grad)
    out_b.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gated.gate.weight.grad, gate.weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gated.weight.grad, bn.weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gated.running_mean, bn.running_mean)
    torch.testing.assert_close(gated.running_var, bn.running_var)
    assert int(gated.num_batches_tracked) == int(bn.num_batches_tracked)


def test_closed_gate_zeroes_its_channel_and_disabled_gates_are_plain_bn():
    gated, bn, _ = pair()
    x = torch.randn(4, 6, 5, 5)
    out = gated(x)
    assert torch.count_nonzero(out[:, 1]) == 0 and torch.count_nonzero(out[:, 4]) == 0
    holder = nn.Sequential(copy.deepcopy(gated))
    set_gates_enabled(holder, False)
    torch.testing.assert_close(holder(x), bn(x))


def test_cumulative_momentum_none_counts_like_bn():
    gated, bn, gate = pair()
    gated.momentum = bn.momentum = None
    for _ in range(3):
        x = torch.randn(4, 6, 5, 5)
        torch.testing.assert_close(gated(x), gate(bn(x)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gated.running_var, bn.running_var)
