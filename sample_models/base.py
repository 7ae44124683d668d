"""The shared shape of every sample model: width-configured, rebuildable, plain PyTorch.

A model is built from `widths`, an ordered mapping from channel group (channels kept or
pruned together) to channel count. Convs, BNs and linears carry `pfs_in` / `pfs_out`
(or `pfs_ref` for BN) naming the group that sets their channel count, or None where the
count is fixed (stem, residual stream, classes); engine.flops reads these to count MACs
for any widths without a forward pass. The BN that closes a group carries `pfs_gate`
(the group's name): the engine puts the group's gate there (engine.gating), as it does
for any other network. These tags are data; sample models import nothing from pfs.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping

from torch import nn


class ModelError(ValueError):
    """A bad model configuration (the engine reports it as a PfsError naming the fix)."""


MAX_EXPAND = 16.0  # wider than anyone trains (the paper's widest is 5x); 1e6 would exhaust memory


def scaled(channels: int, expand: float) -> int:
    """Channel count times an expansion factor, rounded, at least 1."""
    return max(1, int(round(channels * expand)))


class PrunableModel(nn.Module):
    """Base of the sample models: owns `widths`, `expand`, gates and the rebuild spec."""

    registry_name: str = ""
    default_input_size: tuple[int, int, int] = (3, 32, 32)

    def __init__(self, *, num_classes: int, in_channels: int, widths: Mapping[str, int] | None,
                 expand: float, arch: Mapping[str, object]) -> None:
        super().__init__()
        if not 0 < expand <= MAX_EXPAND:
            raise ModelError(f"expand must be in (0, {MAX_EXPAND:g}], got {expand:g}; use e.g. --expand 1.5 "
                             "(the official code's widest is 5x)")
        dense = self.dense_widths(**arch)
        if widths is None:
            built = OrderedDict((g, scaled(c, expand)) for g, c in dense.items())
        else:
            built = _checked_widths(widths, dense)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.expand = float(expand)
        self.arch = dict(arch)
        self.widths: OrderedDict[str, int] = built

    @classmethod
    def dense_widths(cls, **arch) -> OrderedDict[str, int]:
        """The unpruned, unexpanded group widths of this architecture."""
        raise NotImplementedError

    # -- building blocks -------------------------------------------------------------
    def fixed(self, channels: int) -> int:
        """A channel count outside every group (stem, residual stream), times expand."""
        return scaled(channels, self.expand)

    def conv(self, cin: int, cout: int, kernel: int, *, stride: int = 1, depthwise: bool = False,
             in_group: str | None = None, out_group: str | None = None) -> nn.Conv2d:
        """A bias-free conv tagged with the groups that set its input/output channels."""
        conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False,
                         groups=cout if depthwise else 1)
        conv.pfs_in, conv.pfs_out = in_group, out_group
        return conv

    def bn(self, channels: int, *, group: str | None = None, gate: str | None = None) -> nn.BatchNorm2d:
        """A BN tagged with its group; `gate` names the group whose gate goes after it."""
        layer = nn.BatchNorm2d(channels)
        layer.pfs_ref = group if group is not None else gate
        layer.pfs_gate = gate
        return layer

    def linear(self, cin: int, cout: int, *, in_group: str | None = None) -> nn.Linear:
        """The classifier, tagged with the group feeding it."""
        fc = nn.Linear(cin, cout)
        fc.pfs_in, fc.pfs_out = in_group, None
        return fc

    # -- public API ------------------------------------------------------------------
    def gates(self) -> OrderedDict[str, nn.Module]:
        """Group name -> its gate, in `widths` order (empty until the engine puts gates in)."""
        bns = self.gated_bns()
        return OrderedDict((g, bns[g].gate) for g in self.widths if hasattr(bns.get(g), "gate"))

    def gated_bns(self) -> OrderedDict[str, nn.BatchNorm2d]:
        """Group name -> the BatchNorm whose output its gate scales (the declared groups)."""
        found = {m.pfs_gate: m for m in self.modules() if getattr(m, "pfs_gate", None) is not None}
        return OrderedDict((g, found[g]) for g in self.widths if g in found)

    @property
    def spec(self) -> dict:
        """Everything create_model needs to build this architecture again (JSON-safe)."""
        return {"name": self.registry_name, "num_classes": self.num_classes,
                "in_channels": self.in_channels, "expand": self.expand,
                "widths": dict(self.widths), "arch": dict(self.arch)}

    def init_weights(self, bn_gamma: float = 1.0, linear_std: float | None = None) -> None:
        """The paper's code's random init: conv N(0, sqrt(2/(k*k*C_out))), BN (gamma, 0).

        The linear layer keeps PyTorch's default init unless `linear_std` is given (the
        paper's VGG uses N(0, 0.01); its ResNets leave the default). It matters for gate
        learning: the frozen classifier's scale bounds how far gates alone can move the logits.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, bn_gamma)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
                nn.init.zeros_(m.bias)


def _checked_widths(widths: Mapping[str, int], dense: Mapping[str, int]) -> OrderedDict[str, int]:
    unknown = [g for g in widths if g not in dense]
    missing = [g for g in dense if g not in widths]
    if unknown or missing:
        detail = f"unknown groups {unknown[:3]}" if unknown else f"missing groups {missing[:3]}"
        raise ModelError(f"widths do not fit this model ({detail}); use the structure.json made "
                       "for this model, or `pfs flops MODEL --json` to see its groups")
    out: OrderedDict[str, int] = OrderedDict()
    for g in dense:
        c = widths[g]
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ModelError(f"width of group {g!r} must be a positive integer, got {c!r}")
        out[g] = c
    return out
