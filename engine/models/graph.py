"""Channel groups of any network, found with Torch-Pruning's dependency graph.

Torch-Pruning (1.6) traces the network once and yields every set of coupled channels: a
conv's outputs, the BN after it, the next layer's inputs, a depthwise conv that follows,
a concat's slice, the layers tied together by a residual add. pfs turns each such set
into a *channel group* with one gate per channel, placed where a zero gate removes the
channel exactly: after the group's last normaliser (BN, LayerNorm, ...), or on the
producing layer's output where no normaliser follows. Whether a zero gate there really
removes the channel is not assumed but checked: a probe forward pass on a copy with
randomised BN statistics zeroes half of every group's gates and reads the consuming
layers' inputs at those channels; any non-zero value means the group cannot be gated
(say a concat feeds a BN of the next layer) and it is listed with the reason.

Groups tied by residual adds follow the paper: not gated unless `prune_residual`, which
gates every normaliser of the tied set with one shared gate (the probe checks that too).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from engine.errors import PfsError

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
LAYERS = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class ChannelGroup:
    """One set of coupled channels pfs can gate: kept or pruned together, channel by channel."""

    name: str  # the module whose output channels root the group (Torch-Pruning's root)
    channels: int
    gate_at: tuple[tuple[str, int], ...]  # (module, channel dim) whose output the gate scales
    members: tuple[str, ...]  # named modules holding the group's channels
    tied: bool = False  # tied by residual adds: one gate for several normalisers


@dataclass(frozen=True)
class NotGated:
    """A coupled channel set pfs leaves whole, and why."""

    name: str
    channels: int
    why: str


@dataclass(frozen=True)
class DimUse:
    """`count` channels of one dimension of a layer or parameter belong to `group`."""

    group: str
    count: int


@dataclass
class GraphPlan:
    """What the dependency graph found: gated groups, the rest with reasons, and per-layer uses."""

    groups: list[ChannelGroup]
    not_gated: list[NotGated]
    # module name -> {"out": [DimUse], "in": [DimUse]} for every gateable group (tied ones too)
    uses: dict[str, dict[str, list[DimUse]]] = field(default_factory=dict)
    # parameter name -> (dim, [DimUse]) for parameters outside conv/linear/norm layers
    param_uses: dict[str, tuple[int, list[DimUse]]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)  # conv/linear name -> output positions
    tied_available: list[ChannelGroup] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-safe listing: groups gated (name, channels) and not gated (name, channels, why)."""
        return {"gated": [{"name": g.name, "channels": g.channels, "tied": g.tied,
                           "gate_at": [m for m, _ in g.gate_at]} for g in self.groups],
                "not_gated": [{"name": n.name, "channels": n.channels, "why": n.why} for n in self.not_gated]}


def channel_dim(module: nn.Module) -> int:
    """The dimension of a module's output that holds its channels."""
    if isinstance(module, (nn.Linear, nn.LayerNorm)) and not type(module).__name__.endswith("2d"):
        return -1
    return 1


def build_graph(net: nn.Module, input_size: Sequence[int]):
    """Torch-Pruning's DependencyGraph of `net` at one input (eval mode; a layer it cannot
    trace is one PfsError naming that layer)."""
    import torch_pruning as tp

    was_training = net.training
    net.eval()
    last: list[str] = ["(before the first layer)"]
    done = [False]
    names = {m: n for n, m in net.named_modules()}
    hooks = [m.register_forward_pre_hook(lambda m, a: last.__setitem__(0, names[m])) for m in names if names[m]]
    hooks.append(net.register_forward_hook(lambda m, a, o: done.__setitem__(0, True)))
    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(net, torch.randn(1, *input_size), verbose=False)
    except Exception as exc:  # the tracer raises anything from AssertionError to RuntimeError
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}" if str(exc) else type(exc).__name__
        if not done[0]:
            raise PfsError(f"Torch-Pruning cannot trace this network at layer {last[0]!r} ({what}); pass a "
                           "model whose forward is plain tensor code, or a larger --input-size") from None
        raise PfsError(f"Torch-Pruning traced this network but cannot map its channels through a reshape or "
                       f"split between layers ({what}; a channel shuffle does this); this model cannot be "
                       "pruned by pfs") from None
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)


def find_groups(net: nn.Module, input_size: Sequence[int], *, prune_residual: bool = False,
                graph=None) -> GraphPlan:
    """The channel groups of `net` (plain, without gates) at `input_size` [C, H, W]."""
    dg = graph if graph is not None else build_graph(net, input_size)
    names = {m: n for n, m in net.named_modules()}
    order, positions = _trace_order(net, input_size)
    candidates, not_gated = [], []
    for group in dg.get_all_groups(root_module_types=LAYERS):
        cand = _candidate(dg, group, names, order, net)
        if isinstance(cand, NotGated):
            not_gated.append(cand)
        else:
            candidates.append(cand)
    single = {c["name"]: _single_gate(c) for c in candidates}
    failed = _probe(net, input_size, candidates, {k: v for k, v in single.items() if v is not None})
    plain, tied_ok = [], []
    retry = {}
    for c in candidates:
        gate_at = single[c["name"]]
        if gate_at is not None and c["name"] not in failed:
            plain.append(_group(c, gate_at, tied=False))
        elif len(c["norms"]) > 1 or len(c["producers"]) > 1:
            retry[c["name"]] = tuple((n, channel_dim(m)) for n, m in (c["norms"] or c["producers"]))
        else:
            not_gated.append(NotGated(c["name"], c["channels"], failed.get(c["name"], c.get("why", ""))
                                      or "a zero gate does not remove these channels exactly"))
    failed_tied = _probe(net, input_size, [c for c in candidates if c["name"] in retry], retry) if retry else {}
    for c in candidates:
        if c["name"] not in retry:
            continue
        if c["name"] in failed_tied:
            not_gated.append(NotGated(c["name"], c["channels"], "tied across layers and "
                                      + failed_tied[c["name"]]))
        else:
            tied_ok.append(_group(c, retry[c["name"]], tied=True))
    gated = plain + (tied_ok if prune_residual else [])
    if not prune_residual:
        not_gated += [NotGated(g.name, g.channels, f"tied by residual adds across {len(g.gate_at)} layers "
                               "(the paper keeps them; --prune-residual gates them as one)") for g in tied_ok]
    by_name = {c["name"]: c for c in candidates}
    exec_index = {n: i for i, n in enumerate(order)}
    gated.sort(key=lambda g: exec_index.get(g.name, len(exec_index)))
    uses: dict[str, dict[str, list[DimUse]]] = {}
    param_uses: dict[str, tuple[int, list[DimUse]]] = {}
    for g in gated:
        for module_name, side, count in by_name[g.name]["uses"]:
            uses.setdefault(module_name, {"out": [], "in": []})[side].append(DimUse(g.name, count))
        for pname, dim, count in by_name[g.name]["param_uses"]:
            param_uses.setdefault(pname, (dim, []))[1].append(DimUse(g.name, count))
    return GraphPlan(gated, not_gated, uses, param_uses, positions, tied_ok)


# -- one Torch-Pruning group -> a candidate --------------------------------------------------
def _candidate(dg, group, names, order, net) -> dict | NotGated:
    import torch_pruning as tp

    root = group[0].dep.target.module
    name = names.get(root, "?")
    channels = len(group[0].idxs)
    exec_index = {n: i for i, n in enumerate(order)}
    producers, consumers, norms, uses, param_uses, members = [], [], [], [], [], []
    for item in group.items:
        dep, idxs = item.dep, item.idxs
        target = dep.target
        if target.type == tp.ops.OPTYPE.OUTPUT:
            return NotGated(name, channels, "its channels are the network's outputs")
        module = target.module
        if target.type == tp.ops.OPTYPE.PARAMETER:
            pname = dg._param_to_name.get(module, "?")
            param_uses.append((pname, target.pruning_dim, len(idxs)))
            members.append(pname)
            continue
        mname = names.get(module)
        if mname is None:
            continue  # a functional op (add, cat, view): no weights
        members.append(mname)
        out = dg.is_out_channel_pruning_fn(dep.handler)
        if isinstance(module, nn.Conv2d) and 1 < module.groups and not _depthwise(module):
            return NotGated(name, channels, f"grouped conv {mname} (groups={module.groups}) ties channels "
                                            "across its groups")
        if isinstance(module, NORMS):
            if list(item.root_idxs) != list(range(channels)) or list(idxs) != list(range(channels)) \
                    or _norm_channels(module) != channels:
                norms.append((mname, module, False))
            else:
                norms.append((mname, module, True))
            uses.append((mname, "out", len(idxs)))
        elif isinstance(module, LAYERS):
            if out:
                producers.append((mname, module))
                uses.append((mname, "out", len(idxs)))
            else:
                consumers.append((mname, module, list(idxs), list(item.root_idxs)))
                uses.append((mname, "in", len(idxs)))
        elif any(p.requires_grad for p in module.parameters(recurse=False)):
            return NotGated(name, channels, f"layer {mname} ({type(module).__name__}) has weights pfs "
                                            "cannot prune")
    if not any(not _depthwise(m) for _, m, *_ in consumers):
        return NotGated(name, channels, "no layer consumes these channels (network output)")
    norms.sort(key=lambda t: exec_index.get(t[0], -1))
    producers.sort(key=lambda t: exec_index.get(t[0], -1))
    whole = [(n, m) for n, m, ok in norms if ok]
    partial = [n for n, _, ok in norms if not ok]
    cand = {"name": name, "channels": channels, "producers": producers, "consumers": consumers,
            "norms": whole, "uses": uses, "param_uses": param_uses, "members": tuple(dict.fromkeys(members))}
    if partial:
        return NotGated(name, channels, f"normalised together with other channels by {partial[-1]} "
                                        "(after a concatenation)")
    return cand


def _single_gate(c: dict) -> tuple[tuple[str, int], ...] | None:
    """One gate point: the last normaliser, else the last producing layer (None: ambiguous)."""
    if c["norms"]:
        n, m = c["norms"][-1]
        return ((n, channel_dim(m)),)
    real = [(n, m) for n, m in c["producers"]]
    if not real:
        return None
    n, m = real[-1]
    return ((n, channel_dim(m)),)


def _group(c: dict, gate_at, *, tied: bool) -> ChannelGroup:
    return ChannelGroup(c["name"], c["channels"], tuple(gate_at), c["members"], tied)


def _depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def _norm_channels(m: nn.Module) -> int:
    if isinstance(m, nn.LayerNorm):
        return m.normalized_shape[-1]
    if isinstance(m, nn.GroupNorm):
        return m.num_channels
    return m.num_features


# -- execution order and output positions --------------------------------------------------
def _trace_order(net: nn.Module, input_size) -> tuple[list[str], dict[str, int]]:
    order: list[str] = []
    positions: dict[str, int] = {}

    def hook(name):
        def f(module, args, output):
            if name not in positions and isinstance(module, LAYERS):
                positions[name] = 0
            if isinstance(module, nn.Conv2d):
                positions[name] += output.shape[2] * output.shape[3]
            elif isinstance(module, nn.Linear):
                positions[name] += output.numel() // output.shape[0] // output.shape[-1]
            if name not in order:
                order.append(name)
        return f

    hooks = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if n]
    was_training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, *input_size))
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    return order, positions


# -- the probe: does a zero gate remove the channel exactly? -----------------------------------
@torch.no_grad()
def _probe(net: nn.Module, input_size, candidates: list[dict], gates: dict) -> dict[str, str]:
    """Names of candidate groups whose zero gates leak into a consuming layer, with why."""
    probe = copy.deepcopy(net).eval()
    modules = dict(probe.named_modules())
    gen = torch.Generator().manual_seed(0)
    for m in probe.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
            # BN(0) = beta - mean * gamma / std: with positive beta a leaked zero shows up
            m.running_mean.zero_()
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
        if isinstance(m, NORMS) and getattr(m, "weight", None) is not None:
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.5 + 0.5)
    masks, leaks, hooks = {}, {}, []
    for c in candidates:
        if c["name"] not in gates:
            continue
        n = c["channels"]
        mask = torch.ones(n)
        dropped = torch.randperm(n, generator=gen)[: max(1, n // 2)] if n > 1 else torch.tensor([0])
        mask[dropped] = 0.0
        masks[c["name"]] = mask
        for mname, dim in gates[c["name"]]:
            hooks.append(modules[mname].register_forward_hook(_masker(mask, dim)))
        dropped_set = set(dropped.tolist())
        for mname, module, idxs, roots in c["consumers"]:
            at = [i for i, r in zip(idxs, roots) if r in dropped_set]
            if at:
                hooks.append(modules[mname].register_forward_pre_hook(
                    _reader(leaks, c["name"], mname, torch.tensor(at), -1 if isinstance(module, nn.Linear) else 1)))
    try:
        probe(torch.rand(2, *input_size, generator=gen) + 0.1)
    except Exception as exc:
        return {c["name"]: f"gating it breaks the forward pass ({type(exc).__name__})" for c in candidates}
    finally:
        for h in hooks:
            h.remove()
    return {name: f"a zero gate leaks into {layer}" for name, layer in leaks.items()}


def _masker(mask: torch.Tensor, dim: int):
    def hook(module, args, output):
        shape = [1] * output.dim()
        shape[dim] = -1
        return output * mask.view(shape).to(output.dtype)
    return hook


def _reader(leaks: dict, group: str, layer: str, at: torch.Tensor, dim: int):
    def hook(module, args):
        x = args[0]
        if x.index_select(dim, at).abs().max() > 0:
            leaks.setdefault(group, layer)
    return hook


