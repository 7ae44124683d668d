"""Gates in any network: a foreign model (torchvision, timm, user code) wrapped for the method.

`ForeignModel` gives a foreign network the interface the method uses on sample models
(`widths`, `gates()`, `spec`, `registry_name`, `num_classes`, `in_channels`): its groups
come from the dependency graph (engine.models.graph), and one gate per channel is put
where the graph says: a BatchNorm2d there is swapped in place for a GatedBatchNorm2d (same
state dict plus the gate); any other layer gets a ChannelGate on its output (a forward
hook scaling the channel dimension). Where the data has fewer input channels than the
network's first conv expects, the input is repeated across channels.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from engine.errors import PfsError
from engine.gates import ChannelGate, GatedBatchNorm2d
from engine.models.costs import CostTable
from engine.models.graph import GraphPlan, build_graph, find_groups
from engine.models.spec import (
    ModelSpec,
    allow_model_code,
    build_plain,
    default_input_size,
    file_sha256,
    first_conv_channels,
    parse_spec,
)


class ForeignModel(nn.Module):
    """A foreign network with pfs gates, its groups, and a cost table at its input size."""

    def __init__(self, spec: str | ModelSpec, *, num_classes: int, in_channels: int,
                 input_size: Sequence[int] | None = None, prune_residual: bool = False,
                 net: nn.Module | None = None, plan: GraphPlan | None = None) -> None:
        super().__init__()
        self.model_spec = recorded_spec(spec if isinstance(spec, ModelSpec) else parse_spec(spec))
        self.registry_name = self.model_spec.text
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.prune_residual = bool(prune_residual)
        self.net = net if net is not None else build_plain(self.model_spec, num_classes=num_classes,
                                                             in_channels=in_channels)
        expected = first_conv_channels(self.net) or in_channels
        self.repeat = 1
        self.input_note = ""  # said once, by whoever creates the run (config.json keeps it)
        if expected != in_channels:
            if expected % in_channels == 0:
                self.repeat = expected // in_channels
                self.input_note = (f"{self.registry_name} expects {expected} input channels; the data's "
                                   f"{in_channels} are repeated {self.repeat}x")
            else:
                raise PfsError(f"{self.registry_name} expects {expected} input channels and the data has "
                               f"{in_channels}; use data with {expected} channels")
        size = tuple(input_size) if input_size is not None else default_input_size(self.model_spec, in_channels)
        self.default_input_size = (in_channels, *size[1:])
        net_size = (in_channels * self.repeat, *size[1:])
        self.plan = plan if plan is not None else find_groups(self.net, net_size, prune_residual=prune_residual)
        self.costs = CostTable(self.net, self.plan)
        self.widths: OrderedDict[str, int] = OrderedDict((g.name, g.channels) for g in self.plan.groups)
        self._gates = insert_gates(self.net, self.plan)
        self.expand = 1.0
        self.dense_costs = self.costs  # a pruned model keeps its dense model's table (budgets)

    def costs_at(self, input_size: Sequence[int] | None = None) -> CostTable:
        """The cost table at an input size [C, H, W] (the built one, or traced again)."""
        size = tuple(input_size) if input_size is not None else self.default_input_size
        if tuple(size) == tuple(self.default_input_size):
            return self.costs
        return self._retraced(self.costs, size)

    def dense_costs_at(self, input_size: Sequence[int] | None = None) -> CostTable:
        """The dense (unpruned) model's cost table at an input size."""
        size = tuple(input_size) if input_size is not None else self.default_input_size
        if tuple(size) == tuple(self.default_input_size):
            return self.dense_costs
        return self._retraced(self.dense_costs, size)

    def _retraced(self, table: CostTable, size) -> CostTable:
        import copy

        from engine.models.graph import _trace_order

        plain = copy.deepcopy(self.net)
        strip_gates(plain)
        try:
            _, positions = _trace_order(plain, (size[0] * self.repeat, *size[1:]))
        except (RuntimeError, ValueError) as exc:
            raise PfsError(f"input size {list(size)} is too small for {self.registry_name}; "
                           f"use at least {list(self.default_input_size)}") from exc
        return table.at_positions(positions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat > 1:
            x = x.repeat(1, self.repeat, 1, 1)
        return self.net(x)

    def gates(self) -> OrderedDict[str, ChannelGate]:
        """Group name -> its ChannelGate, in `widths` order."""
        return OrderedDict((g, self._gates[g]) for g in self.widths)

    @property
    def spec(self) -> dict:
        """Everything needed to rebuild this network (JSON-safe), as sample models' spec."""
        return {"name": self.registry_name, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "expand": 1.0, "widths": dict(self.widths),
                "arch": {"prune_residual": self.prune_residual, "input_size": list(self.default_input_size)},
                **({"sha256": self.model_spec.sha256} if self.model_spec.sha256 else {})}

    def graph_summary(self) -> dict:
        """Groups gated and not gated (with why), as listed to users."""
        return self.plan.summary()


def recorded_spec(spec: ModelSpec) -> ModelSpec:
    """A file spec as a run records it: absolute (a run opened from another folder finds the same
    file) and with the file's sha256 (a file changed since is refused, not run)."""
    if spec.kind != "file" or not Path(spec.source).expanduser().is_file():
        return spec  # a missing file fails where it is built, with its own message
    path = Path(spec.source).expanduser().resolve()
    return replace(spec, text=f"{path}:{spec.name}", source=str(path), sha256=spec.sha256 or file_sha256(path))


def insert_gates(net: nn.Module, plan: GraphPlan) -> dict[str, ChannelGate]:
    """Put one ChannelGate per group where the plan says; a tied group shares one gate."""
    modules = dict(net.named_modules())
    gates: dict[str, ChannelGate] = {}
    for group in plan.groups:
        gate = ChannelGate(group.channels)
        gates[group.name] = gate
        for name, dim in group.gate_at:
            m = modules[name]
            if type(m) is nn.BatchNorm2d:
                gated = _gated_bn(m)
                gated.gate = gate
                _set(net, name, gated)
                modules[name] = gated
            else:
                m.pfs_gate = gate
                m.pfs_gate_dim = dim
                m.register_forward_hook(_apply_output_gate)
    return gates


def strip_gates(net: nn.Module) -> None:
    """Take every gate out again (GatedBatchNorm2d back to BatchNorm2d, hooks removed)."""
    for name, m in list(net.named_modules()):
        if isinstance(m, GatedBatchNorm2d):
            bn = nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                                track_running_stats=m.track_running_stats).to(m.weight.device)
            state = {k: v for k, v in m.state_dict().items() if not k.startswith("gate.")}
            bn.load_state_dict(state)
            bn.train(m.training)
            _set(net, name, bn)
        elif isinstance(getattr(m, "pfs_gate", None), ChannelGate):
            del m.pfs_gate
            for key, hook in list(m._forward_hooks.items()):
                if hook is _apply_output_gate:
                    del m._forward_hooks[key]


def _apply_output_gate(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    gate = module.pfs_gate
    if not gate.enabled:
        return output
    shape = [1] * output.dim()
    shape[module.pfs_gate_dim] = -1
    return output * gate.weight.view(shape)


def _gated_bn(bn: nn.BatchNorm2d) -> GatedBatchNorm2d:
    """A GatedBatchNorm2d with the BN's state (and its pfs tags), on its device; gate at 1."""
    device = bn.weight.device if bn.weight is not None else torch.device("cpu")
    with torch.device(device):
        gated = GatedBatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                                 track_running_stats=bn.track_running_stats)
    if device.type != "meta":
        gated.load_state_dict(bn.state_dict(), strict=False)
    for tag in ("pfs_ref", "pfs_gate"):
        if hasattr(bn, tag):
            setattr(gated, tag, getattr(bn, tag))
    gated.train(bn.training)
    return gated


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def graph_of(model: ForeignModel, input_size: Sequence[int] | None = None):
    """A fresh dependency graph of the model's plain network (gates taken out on a copy)."""
    import copy

    plain = copy.deepcopy(model.net)
    strip_gates(plain)
    size = input_size or model.default_input_size
    return plain, build_graph(plain, (size[0] * model.repeat, *size[1:]))


def is_foreign(spec_or_model) -> bool:
    """Whether a spec (string or dict) or a model is a foreign one (not a sample model)."""
    if isinstance(spec_or_model, ForeignModel):
        return True
    if isinstance(spec_or_model, Mapping):
        spec_or_model = spec_or_model.get("name", "")
    return isinstance(spec_or_model, str) and ":" in spec_or_model


# -- sample models: plain networks that declare their groups; the engine gates them --------
@contextmanager
def _model_errors():
    """A sample model's configuration error is a user mistake: report it as a PfsError."""
    from sample_models import ModelError

    try:
        yield
    except ModelError as exc:
        raise PfsError(str(exc)) from None


def gate_declared(model: nn.Module) -> nn.Module:
    """Swap each BatchNorm a sample model declares (`pfs_gate`) for a GatedBatchNorm2d, in place.

    The same swap as for foreign models (same state dict plus the gate), at the places the
    model declares; a test checks the dependency graph finds exactly these groups.
    """
    for name, m in list(model.named_modules()):
        if type(m) is nn.BatchNorm2d and getattr(m, "pfs_gate", None) is not None:
            _set(model, name, _gated_bn(m))
    return model


def create_model(name: str, *, num_classes: int = 10, in_channels: int = 3, widths: Mapping[str, int] | None = None,
                 expand: float = 1.0, **arch) -> nn.Module:
    """A gated model: a sample model at `widths` (see sample_models.create_model), or a foreign spec."""
    if is_foreign(name):
        if widths is not None:
            raise PfsError(f"{name} is built dense; prune it with a structure (engine.prune) for other widths")
        return build_model(name, num_classes=num_classes, in_channels=in_channels, expand=expand, **arch)
    import sample_models

    if arch.pop("prune_residual", False):
        raise PfsError(f"--prune-residual applies to foreign models; {name} declares its own groups (drop the flag)")
    with _model_errors():
        return gate_declared(sample_models.create_model(name, num_classes=num_classes, in_channels=in_channels,
                                                        widths=widths, expand=expand, **arch))


def model_entry(name: str):
    """The registry entry of a sample model (unknown names: a PfsError listing the known ones)."""
    import sample_models

    with _model_errors():
        return sample_models.model_entry(name)


def build_model(name: str | ModelSpec, *, num_classes: int, in_channels: int, expand: float = 1.0,
                input_size: Sequence[int] | None = None, **arch) -> nn.Module:
    """Any model a spec names, gated: a sample model, or a ForeignModel around a foreign one.

    A spec given as a string is the caller's own choice, so its code may run; a parsed
    ModelSpec (what rebuild_model reads back from a run) runs only where engine.models.spec
    allows it (see allow_model_code)."""
    spec = name if isinstance(name, ModelSpec) else parse_spec(name)
    if isinstance(name, str):
        allow_model_code(spec)
    name = spec.text
    if spec.is_sample:
        return create_model(name, num_classes=num_classes, in_channels=in_channels, expand=expand, **arch)
    if expand != 1.0:
        raise PfsError(f"--expand widens sample models only; {name} cannot be widened by pfs (use --expand 1)")
    arch = dict(arch)
    size = arch.pop("input_size", None) or input_size
    prune_residual = bool(arch.pop("prune_residual", False))
    if arch:
        raise PfsError(f"{name} takes no model options {sorted(arch)}; they apply to sample models only")
    return ForeignModel(spec, num_classes=num_classes, in_channels=in_channels, input_size=size,
                        prune_residual=prune_residual)


def rebuild_model(spec: Mapping, widths: Mapping[str, int] | None = None) -> nn.Module:
    """The model a `.spec` describes (a foreign model only at its dense widths)."""
    if not is_foreign(spec):
        import sample_models

        with _model_errors():
            return gate_declared(sample_models.rebuild(spec, widths))
    named = parse_spec(spec["name"])
    if named.kind == "file" and isinstance(spec.get("sha256"), str):
        named = replace(named, sha256=spec["sha256"])
    model = build_model(named, num_classes=spec["num_classes"], in_channels=spec["in_channels"],
                        **spec.get("arch", {}))
    wanted = dict(widths if widths is not None else spec.get("widths", model.widths))
    if wanted != dict(model.widths):
        raise PfsError(f"{spec['name']} rebuilds at its dense widths only; prune it with its structure.json "
                       "(engine.prune) to get other widths")
    return model


@torch.no_grad()
def prune_foreign(model: ForeignModel, keep: Mapping[str, Sequence[int]]) -> ForeignModel:
    """`model` physically pruned to the kept channels of each group (weights, BN stats and gate
    values copied), through Torch-Pruning's dependency graph."""

    missing = [g for g in model.widths if g not in keep]
    if missing:
        raise PfsError(f"the structure has no kept channels for group {missing[0]!r}; it was not searched "
                       "on this model")
    values = {g: (gate.weight.detach().clone(), gate.enabled) for g, gate in model.gates().items()}
    plain, dg = graph_of(model)
    for group in model.plan.groups:
        kept = sorted(int(i) for i in keep[group.name])
        if not kept or kept[-1] >= group.channels or len(set(kept)) != len(kept):
            raise PfsError(f"kept channels of group {group.name!r} do not fit its {group.channels} channels; "
                           "use the structure.json searched on this model")
        dropped = [i for i in range(group.channels) if i not in set(kept)]
        if dropped:
            root = plain.get_submodule(group.name)
            dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels, dropped).prune()
    plan = _shrunk_plan(model.plan, {g: len(keep[g]) for g in model.widths})
    pruned = ForeignModel(model.model_spec, num_classes=model.num_classes, in_channels=model.in_channels,
                          input_size=model.default_input_size, prune_residual=model.prune_residual,
                          net=plain, plan=plan)
    for g, gate in pruned.gates().items():
        v, enabled = values[g]
        gate.weight.copy_(v[torch.as_tensor(sorted(keep[g]), dtype=torch.long)])
        gate.enabled = enabled
    pruned.dense_costs = model.dense_costs
    pruned.train(model.training)
    return pruned


@torch.no_grad()
def with_dropped_gates_zeroed(model: nn.Module, keep: Mapping[str, Sequence[int]]) -> nn.Module:
    """A copy of a gated model (eval mode) whose dropped channels' gates are 0: what the
    pruned network with copied weights must compute exactly."""
    import copy

    zeroed = copy.deepcopy(model).eval()
    for g, gate in zeroed.gates().items():
        mask = torch.zeros_like(gate.weight)
        mask[torch.as_tensor(list(keep[g]), dtype=torch.long)] = 1
        gate.weight.mul_(mask)
    return zeroed


def _shrunk_plan(plan: GraphPlan, widths: Mapping[str, int]) -> GraphPlan:
    from dataclasses import replace

    from engine.models.graph import DimUse

    dense = {g.name: g.channels for g in plan.groups}

    def scale(u: DimUse) -> DimUse:
        return DimUse(u.group, u.count * widths[u.group] // dense[u.group])

    groups = [replace(g, channels=widths[g.name]) for g in plan.groups]
    uses = {m: {side: [scale(u) for u in us] for side, us in sides.items()} for m, sides in plan.uses.items()}
    param_uses = {p: (dim, [scale(u) for u in us]) for p, (dim, us) in plan.param_uses.items()}
    return GraphPlan(groups, list(plan.not_gated), uses, param_uses, dict(plan.positions), [])
