"""Exact MACs and params of any network at any kept channels, from a table built once.

Each conv and linear layer is recorded with its output positions (traced once at the
input size) and, for each of its channel dimensions, how many of the channels belong to
which gated group (GraphPlan.uses). A count at other widths is then a short sum: every
dimension shrinks by (dropped channels of the group) x (channels per group channel), which
also covers a concat's slice and a conv flattened into a linear. Counted as ptflops'
aten backend counts the physically pruned network: conv and linear only, a bias adds one
MAC per output; params are all parameters (gates excluded).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from engine.models.graph import DimUse, GraphPlan, _depthwise


def _shrunk(dense: int, uses: Sequence[DimUse], dense_widths: Mapping[str, int], widths: Mapping[str, int]) -> int:
    n = dense
    for u in uses:
        if u.group in widths:
            n -= (dense_widths[u.group] - widths[u.group]) * u.count // dense_widths[u.group]
    return n


@dataclass(frozen=True)
class _Layer:
    name: str
    out: int
    out_uses: tuple[DimUse, ...]
    cin: int
    in_uses: tuple[DimUse, ...]
    groups: int
    depthwise: bool
    kernel: int
    positions: int
    bias: bool


@dataclass(frozen=True)
class _Param:
    shape: tuple[int, ...]
    uses: tuple[tuple[int, tuple[DimUse, ...]], ...]  # (dim, uses of that dim)


class CostTable:
    """MACs and params of one network at any widths of its gated groups."""

    def __init__(self, net: nn.Module, plan: GraphPlan) -> None:
        self.dense_widths = {g.name: g.channels for g in plan.groups}
        uses = plan.uses
        self.layers: list[_Layer] = []
        self.params: list[_Param] = []
        for name, m in net.named_modules():
            u = uses.get(name, {"out": [], "in": []})
            out_u, in_u = tuple(u["out"]), tuple(u["in"])
            if isinstance(m, nn.Conv2d):
                dw = _depthwise(m)
                if name in plan.positions:
                    self.layers.append(_Layer(name, m.out_channels, out_u, m.in_channels, in_u, m.groups, dw,
                                              m.kernel_size[0] * m.kernel_size[1], plan.positions[name],
                                              m.bias is not None))
                self._param(m.weight, ((0, out_u),) if dw else ((0, out_u), (1, in_u)))
                self._param(m.bias, ((0, out_u),))
            elif isinstance(m, nn.Linear):
                if name in plan.positions:
                    self.layers.append(_Layer(name, m.out_features, out_u, m.in_features, in_u, 1, False, 1,
                                              plan.positions[name], m.bias is not None))
                self._param(m.weight, ((0, out_u), (1, in_u)))
                self._param(m.bias, ((0, out_u),))
            else:
                for p in m.parameters(recurse=False):
                    # norms: channel dim 0 of weight/bias; others only via unwrapped-parameter uses
                    self._param(p, ((0, out_u),) if out_u else ())
        by_name = dict(net.named_parameters())
        for pname, (dim, puses) in plan.param_uses.items():
            p = by_name.get(pname)
            if p is not None:
                self._replace(p, dim, tuple(puses))

    def _param(self, p, dims) -> None:
        if p is None or not p.requires_grad:
            return
        self.params.append(_Param(tuple(p.shape), tuple((d, u) for d, u in dims if u)))
        self._ids = getattr(self, "_ids", {})
        self._ids[id(p)] = len(self.params) - 1

    def _replace(self, p, dim: int, uses) -> None:
        i = self._ids.get(id(p))
        if i is not None:
            self.params[i] = _Param(self.params[i].shape, ((dim, uses),))

    def at_positions(self, positions: Mapping[str, int]) -> CostTable:
        """The same table with other output positions (another input size)."""
        import copy

        table = copy.copy(self)
        table.layers = [_Layer(**{**t.__dict__, "positions": positions.get(t.name, t.positions)})
                        for t in self.layers]
        return table

    def macs(self, widths: Mapping[str, int]) -> int:
        """MACs (conv + linear) of one image at `widths` (missing groups: dense)."""
        total = 0
        dw = self.dense_widths
        for t in self.layers:
            out = _shrunk(t.out, t.out_uses, dw, widths)
            per_group = 1 if t.depthwise else _shrunk(t.cin, t.in_uses, dw, widths) // t.groups
            total += (out * per_group * t.kernel + (out if t.bias else 0)) * t.positions
        return total

    def count_params(self, widths: Mapping[str, int]) -> int:
        """Parameters at `widths` (all of the network's trainable tensors, gates excluded)."""
        dw = self.dense_widths
        total = 0
        for p in self.params:
            shape = list(p.shape)
            for dim, uses in p.uses:
                shape[dim] = _shrunk(shape[dim], uses, dw, widths)
            n = 1
            for s in shape:
                n *= s
            total += n
        return total
