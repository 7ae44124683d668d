"""The network `pfs train` starts from: fresh (scratch), lottery ticket, or inherited weights.

- scratch: a new random init at the structure's widths (times --expand): the paper's method.
- ticket: the kept channels of the gated network's own random init (RUN/init.pt), the
  lottery-ticket comparison: same architecture, same starting weights as were pruned.
- inherit: the kept channels of a trained dense network (--from CHECKPOINT), the
  fine-tuning baseline. Learned gates, if the checkpoint has any, are folded into BN first.
Gates are switched off and frozen in every case: retraining trains weights only.
"""
from __future__ import annotations

from torch import nn

from engine.errors import PfsError
from engine.gates import ChannelGate, set_gates_enabled
from engine.prune import copy_kept, fold_gates, pruned_model
from engine.runs import RunDir, load_gated_model, load_tensors
from engine.search import Structure


def build_model(run: RunDir, structure: Structure, options, seed: int) -> nn.Module:
    """The pruned network to train, initialised as `options.init` says (see module doc)."""
    model = pruned_model(structure, expand=options.expand, seed=seed)
    if options.init == "ticket":
        model = copy_kept(init_model(run, structure), model, structure.keep)
    elif options.init == "inherit":
        source = dense_model(run, structure)
        state = load_tensors(options.from_checkpoint)
        state = state.get("model", state) if isinstance(state, dict) else state
        _load_strict(source, state, f"--from {options.from_checkpoint}")
        fold_gates(source)
        model = copy_kept(source, model, structure.keep)
    set_gates_enabled(model, False)
    for m in model.modules():
        if isinstance(m, ChannelGate):
            m.weight.requires_grad_(False)
    model.train()
    return model


def dense_model(run: RunDir, structure: Structure) -> nn.Module:
    """The unpruned network the structure was searched on (random init)."""
    from engine.gating import rebuild_model

    spec = run.config.get("model_spec") or {**structure.spec, "widths": structure.dense_widths}
    return rebuild_model(spec, structure.dense_widths)


def init_model(run: RunDir, structure: Structure) -> nn.Module:
    """The gated network at its random initialisation (RUN/init.pt), gates at 1."""
    if not run.exists("init.pt"):
        raise PfsError(f"{run.path}/init.pt is missing: --init ticket needs the run made by "
                       "`pfs learn`; use --init scratch otherwise")
    model = load_gated_model(run.path, gates=False)
    if dict(model.widths) != dict(structure.dense_widths):
        raise PfsError("the structure was not searched on this run's network; use the run's own "
                       "structure.json for --init ticket")
    return model


def _load_strict(model: nn.Module, state, what: str) -> None:
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise PfsError(f"{what} is not a model state_dict; pass a checkpoint written by pfs")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:160]
        raise PfsError(f"{what} does not fit the dense {getattr(model, 'registry_name', 'model')} "
                       f"of this run ({first}); pass a checkpoint of the same model") from None
