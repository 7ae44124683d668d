"""Per-channel scalar gates, and the BatchNorm that carries one folded into its affine."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelGate(nn.Module):
    """One learnable scalar per channel (init 1); `enabled=False` makes it the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        return x * self.weight.view(1, -1, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, enabled={self.enabled}"


class GatedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d followed by a ChannelGate, computed as one op.

    BN(x) * g == x_hat * (gamma * g) + beta * g, so the gate folds into the affine
    parameters and costs no extra pass over the activations (the gate-learning hot path).
    """

    def __init__(self, channels: int, **kwargs) -> None:
        super().__init__(channels, **kwargs)
        self.gate = ChannelGate(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.gate.enabled:
            return super().forward(x)
        g = self.gate.weight
        weight = self.weight * g if self.weight is not None else g
        bias = self.bias * g if self.bias is not None else None
        # Same running-stat bookkeeping as nn.BatchNorm2d.forward.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep_stats = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if keep_stats else None,
            self.running_var if keep_stats else None,
            weight,
            bias,
            use_batch_stats,
            factor,
            self.eps,
        )

def set_gates_enabled(model: nn.Module, enabled: bool) -> None:
    """Switch every gate of a model on (learning) or off (identity, deployment)."""
    for m in model.modules():
        if isinstance(m, ChannelGate):
            m.enabled = enabled
