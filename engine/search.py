"""FLOPs-budget structure search: one global gate threshold, found by binary search.

All gates are ranked globally; keeping the top k gives widths whose MACs grow with k,
so a binary search over the integer k finds the largest structure within the budget
exactly (no tolerance). Equal gates (at init every gate is 1; after clamping many are 0)
are ordered deterministically by their relative position in the layer, so ties spread
evenly across layers, and the result says how many kept channels a tie decided.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np
import torch

from engine.errors import BudgetError, PfsError
from engine.flops import count_params, dense_macs, dense_params, input_size_of, layer_costs, macs_from_table


@dataclass
class Structure:
    """A pruned architecture: kept channels per group, and what it costs."""

    model: str
    widths: dict[str, int]
    dense_widths: dict[str, int]
    keep: dict[str, list[int]]
    macs: int
    params: int
    dense_macs: int
    dense_params: int
    budget: float
    budget_macs: int
    threshold: float
    tied: int
    input_size: list[int]
    num_classes: int
    spec: dict = field(default_factory=dict)
    min_channels: int = 1

    @property
    def macs_ratio(self) -> float:
        return self.macs / self.dense_macs

    @property
    def speedup(self) -> float:
        return self.dense_macs / self.macs

    def to_json(self) -> dict:
        """The structure.json payload (plain JSON; `tied_channels` spelled out for readers)."""
        return {**asdict(self), "tied_channels": self.tied}

    @classmethod
    def from_json(cls, data: Mapping) -> Structure:
        """A Structure from structure.json; a missing field is a PfsError naming the fix."""
        fix = "re-create it with `pfs search RUN --flops F`"
        if not isinstance(data, Mapping):
            raise PfsError(f"structure.json holds a JSON {type(data).__name__}, not a structure; {fix}")
        names = [f.name for f in fields(cls)]
        missing = [f.name for f in fields(cls) if f.name not in data
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise PfsError(f"structure.json lacks {', '.join(missing)}; {fix}")
        for name in names:
            if name in data and not _FIELD_CHECKS[name](data[name]):
                raise PfsError(f"structure.json field {name!r} is {data[name]!r:.60}, not {_FIELD_NAMES[name]}; {fix}")
        if set(data["widths"]) != set(data["dense_widths"]):
            raise PfsError(f"structure.json's widths and dense_widths name different groups; {fix}")
        for group, width in data["widths"].items():
            full = data["dense_widths"][group]
            if not _whole(width, 1) or width > full:
                raise PfsError(f"structure.json: group {group!r} keeps {width!r} channels; it must be a whole "
                               f"number in 1..{full}; {fix}")
        return cls(**{k: data[k] for k in names if k in data})


def _whole(v, least: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _counts(least: int):
    return lambda v: isinstance(v, dict) and all(isinstance(k, str) and _whole(w, least) for k, w in v.items())


def _spec(v: dict) -> bool:
    """A model spec as search writes it: the model's name, and its arch options as an object."""
    return isinstance(v.get("name"), str) and isinstance(v.get("arch", {}), dict)


def _names(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


# structure.json is read back from disk (and may be hand-edited): each field's check and its
# description, so a damaged file is one PfsError naming the field, not a TypeError mid-job.
_FIELD_CHECKS = {
    "model": lambda v: isinstance(v, str), "widths": _names,
    "dense_widths": _counts(1),
    "keep": lambda v: isinstance(v, dict) and all(isinstance(k, list) and all(_whole(i) for i in k)
                                                  for k in v.values()),
    "macs": _whole, "params": _whole, "dense_macs": lambda v: _whole(v, 1), "dense_params": lambda v: _whole(v, 1),
    "budget": lambda v: _finite(v) and v > 0, "budget_macs": _whole, "threshold": _finite, "tied": _whole,
    "input_size": lambda v: isinstance(v, list) and len(v) == 3 and all(_whole(x, 1) for x in v),
    "num_classes": lambda v: _whole(v, 1), "spec": lambda v: isinstance(v, dict) and (not v or _spec(v)),
    "min_channels": lambda v: _whole(v, 1),
}
_FIELD_NAMES = {"model": "a model name", "widths": "channels per group", "dense_widths": "channels per group",
                "keep": "kept channel indices per group", "budget": "a positive number",
                "threshold": "a number", "input_size": "[C, H, W]", "spec": "the model's spec (name, arch)"}
_FIELD_NAMES = {f.name: _FIELD_NAMES.get(f.name, "a whole number") for f in fields(Structure)}


def budget_to_macs(budget: float, dense: int) -> int:
    """Absolute MACs of a budget: a fraction of the dense model in (0, 1], or MACs if > 1."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise BudgetError(f"FLOPs budget must be a fraction in (0, 1] of the dense model or "
                          f"absolute MACs > 1, got {budget!r}")
    return int(budget * dense) if budget <= 1 else int(budget)


def search(model, budget: float, input_size: Sequence[int] | None = None, *, min_channels: int = 1,
           gates: Mapping[str, torch.Tensor] | None = None) -> Structure:
    """The largest structure within `budget` MACs, keeping the highest |gate| channels.

    `budget` is a fraction of the dense, unexpanded model's MACs, or absolute MACs if > 1.
    `gates` defaults to the model's current gate values.
    """
    candidates = Candidates(model, input_size, min_channels=min_channels, gates=gates)
    dense = candidates.dense_macs
    limit = budget_to_macs(budget, dense)
    macs_at = candidates.macs_at
    if macs_at(0) > limit:
        smallest = macs_at(0)
        raise BudgetError(
            f"FLOPs budget {limit:,} MACs is below the smallest structure ({smallest:,} MACs, "
            f"{smallest / dense:.4f} of dense, with min_channels={min_channels}); "
            + (f"lower --min-channels (the narrowest layer has {min(model.widths.values())} channels)"
               if min_channels > 1 and smallest > dense * 0.999 else
               f"raise --flops to at least {np.ceil(smallest / dense * 1e4) / 1e4:.4f}"
               + (" or lower --min-channels" if min_channels > 1 else "")))
    lo, hi = 0, candidates.size  # invariant: macs_at(lo) <= limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if macs_at(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return candidates.structure(lo, budget=float(budget), budget_macs=limit)


class Candidates:
    """The structures a global gate threshold can give, indexed by k, the kept channels above
    the forced minimum: k = 0 is the smallest, k = size keeps every channel.

    Shared by the FLOPs search (bisection on MACs) and the latency search (bisection on
    measured time), so both rank the gates the same way.
    """

    def __init__(self, model, input_size: Sequence[int] | None = None, *, min_channels: int = 1,
                 gates: Mapping[str, torch.Tensor] | None = None) -> None:
        self.model = model
        self.input_size = input_size_of(model, input_size)
        self.table = layer_costs(model, self.input_size)
        self.dense_macs = dense_macs(model, self.input_size)
        self.min_channels = min_channels
        if gates is None:
            gates = {g: gate.weight for g, gate in model.gates().items()}
        self.ranking = _Ranking(model.widths, gates, min_channels)
        self.size = self.ranking.size

    def macs_at(self, k: int) -> int:
        return macs_from_table(self.table, self.ranking.widths(k))

    def structure(self, k: int, *, budget: float | None = None, budget_macs: int | None = None) -> Structure:
        """The structure keeping the top k ranked channels; the budget defaults to its own MACs."""
        model, macs = self.model, self.macs_at(k)
        widths = self.ranking.widths(k)
        threshold, tied = self.ranking.threshold_and_ties(k)
        return Structure(
            model=model.registry_name, widths=widths, dense_widths=dict(model.widths),
            keep=self.ranking.keep(k), macs=macs, params=count_params(model, widths),
            dense_macs=self.dense_macs, dense_params=dense_params(model),
            budget=float(budget if budget is not None else macs / self.dense_macs),
            budget_macs=budget_macs if budget_macs is not None else macs,
            threshold=threshold, tied=tied, input_size=list(self.input_size), num_classes=model.num_classes,
            spec={key: v for key, v in model.spec.items() if key != "widths"}, min_channels=self.min_channels)


def uniform_structure(model, budget: float, input_size: Sequence[int] | None = None, *,
                      min_channels: int = 1) -> Structure:
    """The same-budget baseline that keeps the same fraction of every layer.

    Equal gates rank by relative position in their layer, so searching over all-equal
    gates keeps channel 0..k of every layer in step: a uniform width multiplier.
    """
    ones = {g: torch.ones(w) for g, w in model.widths.items()}
    return search(model, budget, input_size, min_channels=min_channels, gates=ones)


class _Ranking:
    """Global channel order (forced minimum first, then by |gate| with stable tie-break)."""

    def __init__(self, widths: Mapping[str, int], gates: Mapping[str, torch.Tensor], min_channels: int) -> None:
        if isinstance(min_channels, bool) or not isinstance(min_channels, int) or min_channels < 1:
            raise PfsError(f"min_channels must be a positive integer, got {min_channels!r}")
        self.groups = list(widths)
        values, group_idx, channel, rel = [], [], [], []
        for i, g in enumerate(self.groups):
            if g not in gates:
                raise PfsError(f"no gate values for group {g!r}; the gates do not belong to this model")
            v = gates[g].detach().abs().float().cpu().numpy().reshape(-1)
            if v.size != widths[g]:
                raise PfsError(f"group {g!r} has {v.size} gate values for {widths[g]} channels; "
                               "the gates do not belong to this model")
            values.append(v)
            group_idx.append(np.full(v.size, i))
            channel.append(np.arange(v.size))
            rel.append(np.arange(v.size) / v.size)
        values, group_idx = np.concatenate(values), np.concatenate(group_idx)
        channel, rel = np.concatenate(channel), np.concatenate(rel)
        # Within a group: best first, then lowest index. The first min_channels are forced.
        by_group = np.lexsort((channel, -values, group_idx))
        rank_in_group = np.empty_like(by_group)
        starts = np.searchsorted(group_idx[by_group], np.arange(len(self.groups)))
        rank_in_group[by_group] = np.arange(by_group.size) - starts[group_idx[by_group]]
        forced = rank_in_group < min_channels
        self.forced_counts = np.bincount(group_idx[forced], minlength=len(self.groups))
        rest = np.flatnonzero(~forced)
        order = rest[np.lexsort((channel[rest], group_idx[rest], rel[rest], -values[rest]))]
        self.order, self.values, self.group_idx, self.channel = order, values, group_idx, channel
        self.forced = forced
        self.size = order.size

    def widths(self, k: int) -> dict[str, int]:
        counts = self.forced_counts + np.bincount(self.group_idx[self.order[:k]], minlength=len(self.groups))
        return {g: int(c) for g, c in zip(self.groups, counts)}

    def keep(self, k: int) -> dict[str, list[int]]:
        kept = np.zeros(self.values.size, dtype=bool)
        kept[self.forced] = True
        kept[self.order[:k]] = True
        return {g: self.channel[kept & (self.group_idx == i)].tolist() for i, g in enumerate(self.groups)}

    def threshold_and_ties(self, k: int) -> tuple[float, int]:
        """The first pruned gate's value, and how many kept channels share it (decided by a tie)."""
        if k >= self.size:
            return 0.0, 0
        threshold = float(self.values[self.order[k]])
        return threshold, int(np.count_nonzero(self.values[self.order[:k]] == threshold))
