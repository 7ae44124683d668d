"""Exact MACs and parameter counts of a sample model at any widths, with no forward pass.

MACs are counted as the paper (and ptflops' aten backend) count them: convolutions and
linear layers only; a linear's bias adds one MAC per output. The spatial size each layer
sees does not depend on widths, so it is traced once per architecture on the meta device
(no memory, no compute) and cached; after that a count is a short sum over layers.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from engine.errors import PfsError


@dataclass(frozen=True)
class LayerCost:
    """One conv/linear: channel sources (group name or None = fixed count) and its shape."""

    name: str
    in_group: str | None
    in_fixed: int
    out_group: str | None
    out_fixed: int
    kernel: int  # kh * kw (1 for linear)
    depthwise: bool
    positions: int  # output H * W (1 for linear)
    bias: bool


def input_size_of(model, input_size: Sequence[int] | None = None) -> tuple[int, int, int]:
    """The [C, H, W] to count at: given, else the model's default with its in_channels."""
    if input_size is None:
        _, h, w = model.default_input_size
        return (model.in_channels, h, w)
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or min(size) < 1:
        raise PfsError(f"input size must be C,H,W with positive entries, got {list(input_size)}")
    if size[0] != model.in_channels:
        raise PfsError(f"input has {size[0]} channels but the model was built for "
                       f"{model.in_channels}; build it with in_channels={size[0]}")
    return size


def layer_costs(model, input_size: Sequence[int] | None = None):
    """The cost table of a model's conv and linear layers at an input size (cached).

    A foreign model (engine.gating.ForeignModel) brings its own table, built from its
    dependency graph (engine.models.costs); macs_from_table reads either kind.
    """
    size = input_size_of(model, input_size)
    if hasattr(model, "costs_at"):
        return model.costs_at(size)
    key = json.dumps({k: v for k, v in model.spec.items() if k != "widths"}, sort_keys=True)
    return _cached_costs(key, size, json.dumps(dict(model.widths)))


@lru_cache(maxsize=64)
def _cached_costs(spec_key: str, size: tuple[int, int, int], widths_key: str) -> tuple[LayerCost, ...]:
    # The widths only fix which groups exist; channel counts are read per call, so the
    # table is shared by all widths of one architecture (see count_macs).
    from engine.gating import rebuild_model

    spec = {**json.loads(spec_key), "widths": json.loads(widths_key)}
    with torch.device("meta"):
        skeleton = rebuild_model(spec).eval()  # eval: BN accepts a 1x1 map of a single image
    positions: dict[str, int] = {}
    hooks = [m.register_forward_hook(_recorder(positions, name))
             for name, m in skeleton.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            skeleton(torch.empty(1, *size, device="meta"))
    except (RuntimeError, ValueError) as exc:
        raise PfsError(f"input size {list(size)} is too small for {spec['name']}; "
                       f"use at least its default {list(skeleton.default_input_size)}") from exc
    finally:
        for h in hooks:
            h.remove()
    table = []
    for name, m in skeleton.named_modules():
        if isinstance(m, nn.Conv2d):
            depthwise = m.groups > 1
            if depthwise and m.groups != m.in_channels:
                raise ValueError(f"{name}: only plain and depthwise convs are supported")
            table.append(LayerCost(name, m.pfs_in, m.in_channels, m.pfs_out, m.out_channels,
                                   m.kernel_size[0] * m.kernel_size[1], depthwise,
                                   positions[name], m.bias is not None))
        elif isinstance(m, nn.Linear):
            table.append(LayerCost(name, m.pfs_in, m.in_features, None, m.out_features, 1,
                                   False, positions.get(name, 1), m.bias is not None))
    return tuple(table)


def _recorder(positions: dict[str, int], name: str):
    def hook(module, args, output):
        positions[name] = output.shape[2] * output.shape[3] if output.dim() == 4 else 1
    return hook


def _channels(group: str | None, fixed: int, widths: Mapping[str, int]) -> int:
    return fixed if group is None else widths[group]


def macs_from_table(table: Sequence[LayerCost], widths: Mapping[str, int]) -> int:
    """MACs of a cost table at the given group widths."""
    if hasattr(table, "macs"):
        return table.macs(widths)
    total = 0
    for t in table:
        cout = _channels(t.out_group, t.out_fixed, widths)
        if t.depthwise:
            total += t.kernel * cout * t.positions
        else:
            total += t.kernel * _channels(t.in_group, t.in_fixed, widths) * cout * t.positions
        if t.bias:
            total += cout * t.positions
    return total


def count_macs(model, input_size: Sequence[int] | None = None,
               widths: Mapping[str, int] | None = None) -> int:
    """MACs (conv + linear) of one image through `model`, or through it at other `widths`."""
    return macs_from_table(layer_costs(model, input_size), widths or model.widths)


def count_params(model, widths: Mapping[str, int] | None = None) -> int:
    """Parameters of conv, BN and linear layers (gates excluded), at the model's or other widths."""
    widths = widths or model.widths
    if hasattr(model, "costs_at"):
        return model.costs.count_params(widths)
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            cout = _channels(m.pfs_out, m.out_channels, widths)
            cin = 1 if m.groups > 1 else _channels(m.pfs_in, m.in_channels, widths)
            total += cin * cout * m.kernel_size[0] * m.kernel_size[1] + (cout if m.bias is not None else 0)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            total += 2 * _channels(m.pfs_ref, m.num_features, widths)
        elif isinstance(m, nn.Linear):
            cin = _channels(m.pfs_in, m.in_features, widths)
            total += cin * m.out_features + (m.out_features if m.bias is not None else 0)
    return total


def _architecture_key(model) -> str:
    """The model's architecture, less its widths and expansion (what 'dense' means for it)."""
    return json.dumps({k: v for k, v in model.spec.items() if k not in ("widths", "expand")}, sort_keys=True)


@lru_cache(maxsize=64)
def _dense_counts(arch_key: str, size: tuple[int, int, int]) -> tuple[int, int]:
    # Building even a meta-device ResNet-110 costs ~75 ms (its init calls), and search asks
    # for the dense size on every call: cache it per architecture and input size.
    from engine.gating import create_model

    spec = json.loads(arch_key)
    with torch.device("meta"):
        dense = create_model(spec["name"], num_classes=spec["num_classes"], in_channels=spec["in_channels"],
                             **spec.get("arch", {}))
    return count_macs(dense, size), count_params(dense)


def dense_macs(model, input_size: Sequence[int] | None = None) -> int:
    """MACs of the dense, unexpanded version of the model (budgets are fractions of it)."""
    if hasattr(model, "dense_costs_at"):
        table = model.dense_costs_at(input_size_of(model, input_size))
        return table.macs(table.dense_widths)
    return _dense_counts(_architecture_key(model), input_size_of(model, input_size))[0]


def dense_params(model) -> int:
    """Parameters of the dense, unexpanded version of the model."""
    if hasattr(model, "dense_costs_at"):
        return model.dense_costs.count_params(model.dense_costs.dense_widths)
    return _dense_counts(_architecture_key(model), input_size_of(model))[1]
