"""Build the pruned network: the same model class at the structure's widths.

`init="scratch"` is the paper's default (a fresh random init, trained from scratch).
`init="copy"` copies the kept channels of a source model (conv, BN with running stats,
linear, gates); in eval mode the result computes exactly what the source computes with
the dropped gates set to zero. Copying from the gated network at initialisation is the
lottery-ticket comparison; copying from a trained network is the fine-tuning baseline.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from engine.errors import PfsError
from engine.gates import ChannelGate, GatedBatchNorm2d
from engine.search import Structure

INITS = ("scratch", "copy")


def pruned_model(structure: Structure, *, expand: float = 1.0, seed: int | None = None) -> nn.Module:
    """A freshly initialised network at the structure's widths, optionally expanded by `expand`.

    Expansion scales every channel count (pruned groups and the fixed stream alike), as in
    the paper's channel-expansion experiments.
    """
    from engine.gating import create_model, is_foreign, prune_foreign, rebuild_model
    from sample_models import scaled

    if not expand > 0:
        raise PfsError(f"expand must be > 0, got {expand}; use e.g. --expand 1.5")
    spec = structure.spec
    if not spec:
        raise PfsError("structure.json has no model spec; re-create it with `pfs search RUN --flops F`")
    if is_foreign(spec):
        # Scratch for a foreign model: its own constructor's init (a new dense network at
        # this seed), cut to the structure; the constructor cannot be re-run at other widths.
        if expand != 1.0:
            raise PfsError(f"--expand widens sample models only; {spec['name']} cannot be widened (use --expand 1)")
        if seed is not None:
            torch.manual_seed(seed)
        return prune_foreign(rebuild_model({**spec, "widths": structure.dense_widths}), structure.keep)
    widths = {g: scaled(w, expand) for g, w in structure.widths.items()}
    if seed is not None:
        torch.manual_seed(seed)
    return create_model(spec["name"], num_classes=spec["num_classes"], in_channels=spec["in_channels"],
                        expand=spec["expand"] * expand, widths=widths, **spec.get("arch", {}))


def extract(model: nn.Module, structure: Structure, init: str = "copy", *, seed: int | None = None) -> nn.Module:
    """`model` cut down to `structure`: kept weights copied (`copy`) or a new init (`scratch`)."""
    if init not in INITS:
        raise PfsError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if dict(structure.dense_widths) != dict(model.widths):
        raise PfsError("the structure was searched on a model of other widths; "
                       "extract from the model the structure was found on")
    pruned = pruned_model(structure, seed=seed) if init == "scratch" or not hasattr(model, "costs_at") else None
    if init == "copy":
        pruned = copy_kept(model, pruned, structure.keep)
    pruned.train(model.training)
    return pruned


@torch.no_grad()
def copy_kept(source: nn.Module, target: nn.Module | None, keep: Mapping[str, list[int]]) -> nn.Module:
    """Copy the kept channels of every conv/BN/linear/gate of `source` into `target` (returned).

    A foreign source is cut by its dependency graph instead: the result is a new network
    (`target` may be None).
    """
    if hasattr(source, "costs_at"):
        from engine.gating import prune_foreign

        return prune_foreign(source, keep)
    index = {g: torch.as_tensor(ix, dtype=torch.long) for g, ix in keep.items()}
    src = dict(source.named_modules())
    for name, dst in target.named_modules():
        m = src.get(name)
        if isinstance(dst, nn.Conv2d):
            w = _take(m.weight, 0, index.get(dst.pfs_out))
            if dst.groups == 1:
                w = _take(w, 1, index.get(dst.pfs_in))
            dst.weight.copy_(w)
            if dst.bias is not None:
                dst.bias.copy_(_take(m.bias, 0, index.get(dst.pfs_out)))
        elif isinstance(dst, nn.BatchNorm2d):
            ix = index.get(dst.pfs_ref)
            for attr in ("weight", "bias", "running_mean", "running_var"):
                if getattr(dst, attr) is not None:
                    getattr(dst, attr).copy_(_take(getattr(m, attr), 0, ix))
            if dst.num_batches_tracked is not None:
                dst.num_batches_tracked.copy_(m.num_batches_tracked)
            if isinstance(dst, GatedBatchNorm2d):
                dst.gate.weight.copy_(_take(m.gate.weight, 0, ix))
                dst.gate.enabled = m.gate.enabled
        elif isinstance(dst, nn.Linear):
            dst.weight.copy_(_take(m.weight, 1, index.get(dst.pfs_in)))
            dst.bias.copy_(m.bias)
    return target


def _take(t: torch.Tensor, dim: int, ix: torch.Tensor | None) -> torch.Tensor:
    return t if ix is None else t.index_select(dim, ix.to(t.device))


@torch.no_grad()
def fold_gates(model: nn.Module) -> None:
    """Fold every gate into its BN's affine (gamma*g, beta*g) and reset it to 1.

    The network computes the same function; used before training from copied weights so
    the gates' values carry over while the gates themselves are switched off.
    """
    folded = set()
    for m in model.modules():
        if isinstance(m, GatedBatchNorm2d):
            g = m.gate.weight
            m.weight.mul_(g)
            m.bias.mul_(g)
            folded.add(m.gate)
        elif isinstance(getattr(m, "pfs_gate", None), ChannelGate):
            # a gate on a layer's output (foreign models): scale the rows that make each channel
            g = m.pfs_gate.weight
            m.weight.mul_(g.view(-1, *([1] * (m.weight.dim() - 1))))
            if getattr(m, "bias", None) is not None:
                m.bias.mul_(g)
            folded.add(m.pfs_gate)
    for gate in folded:  # a tied group's gate is shared: reset once, after every fold
        gate.weight.fill_(1.0)
