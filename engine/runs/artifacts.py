"""A run's artifacts read back: its gated network at init, its gates, its structure.

Shared by training (ticket and inherit inits rebuild the gated network) and the jobs.
"""
from __future__ import annotations

from pathlib import Path

import torch

from engine.errors import RunError, shell_path
from engine.runs.rundir import RunDir, read_json
from engine.search import Structure


def load_gated_model(run_path: str | Path, *, gates: bool = True):
    """The run's network at its random init, with the learned gates when `gates`."""
    from engine.gating import rebuild_model

    run = RunDir.open(run_path)
    config = run.config
    if "model_spec" not in config:
        raise RunError(f"{run.path}/config.json has no model_spec; it was not written by `pfs learn`")
    net = rebuild_model(config["model_spec"])
    state = _checked_state(run.load("init.pt"), run.path / "init.pt")
    try:
        net.load_state_dict(state)
    except RuntimeError:  # missing keys or other shapes: another model's init, or a damaged one
        raise RunError(f"{run.path / 'init.pt'} does not fit the run's {config.get('model', 'model')} "
                       "(other layers or shapes); re-run `pfs learn`") from None
    if gates:
        load_gates(net, run.load("gates.pt"), run.path / "gates.pt")
    return net


def load_gates(net, values: dict, source: str | Path = "gates") -> None:
    """Put saved gate values (group -> tensor) into a model's gates, checking they fit."""
    if not isinstance(values, dict):
        raise RunError(f"{source} does not hold gate values; re-run `pfs learn`")
    with torch.no_grad():
        for group, gate in net.gates().items():
            v = values.get(group)
            if not isinstance(v, torch.Tensor) or v.shape != gate.weight.shape:
                raise RunError(f"{source} does not fit the model (group {group!r}); re-run `pfs learn`")
            if not v.is_floating_point() or not torch.isfinite(v).all():
                raise RunError(f"{source} holds gate values that are not finite numbers (group {group!r}); "
                               "re-run `pfs learn` (with a lower --lr if the loss diverged)")
            gate.weight.copy_(v)


def _checked_state(state, source: Path) -> dict:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RunError(f"{source} is not a model state dict; re-run `pfs learn`")
    return state


def load_structure(path: str | Path) -> Structure:
    """A Structure from a structure.json file (or a run directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "structure.json"
        if not path.is_file():
            raise RunError(f"{path.parent} has no structure.json yet; "
                           f"run `pfs search {shell_path(path.parent)} --flops F`")
    data = read_json(path)
    if not isinstance(data, dict):
        raise RunError(f"{path} is not a structure.json; re-create it with `pfs search RUN --flops F`")
    return Structure.from_json(data)


def check_structure(structure: Structure, config: dict, source: str | Path = "structure.json") -> None:
    """Raise a RunError naming the fix unless `structure` fits the run `config` describes.

    A structure is trained on the run's model and data, so it must name the run's model and
    its groups, keep 1..dense channels of each (whole numbers), list that many distinct
    in-range channel indices per group, and match the run's class count and input size.
    Anything else would train a different network than the one the run's gates chose.
    """
    fix = f"make it for this run with `pfs search {shell_path(Path(source).parent)} --flops F`"
    spec = config.get("model_spec") or {}
    if structure.model != config.get("model"):
        raise RunError(f"{source} is a structure of {structure.model!r}, but the run is a {config.get('model')!r} run; "
                       f"{fix}")
    dense = spec.get("widths") or structure.dense_widths
    if not isinstance(structure.dense_widths, dict) or dict(structure.dense_widths) != dict(dense):
        raise RunError(f"{source} was made for other dense widths than the run's {structure.model}; {fix}")
    if not isinstance(structure.widths, dict) or set(structure.widths) != set(dense):
        raise RunError(f"{source} does not name the run's channel groups; {fix}")
    if not isinstance(structure.keep, dict) or (structure.keep and set(structure.keep) != set(dense)):
        raise RunError(f"{source} lists kept channels for other groups than the run's; {fix}")
    for group, width in structure.widths.items():
        full = dense[group]
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= full:
            raise RunError(f"{source}: group {group!r} keeps {width!r} channels; it must be a whole number "
                           f"in 1..{full}; {fix}")
        keep = structure.keep.get(group)
        if keep is not None and not _valid_keep(keep, width, full):
            raise RunError(f"{source}: group {group!r} lists channel indices that are not {width} distinct "
                           f"numbers in 0..{full - 1}; {fix}")
    if config.get("num_classes") is not None and structure.num_classes != config["num_classes"]:
        raise RunError(f"{source} has {structure.num_classes} classes, the run's data set {config['num_classes']}; "
                       f"{fix}")
    if config.get("input_size") is not None and list(structure.input_size) != list(config["input_size"]):
        raise RunError(f"{source} is for inputs {structure.input_size}, the run's data set "
                       f"{config['input_size']}; {fix}")


def _valid_keep(keep, width: int, full: int) -> bool:
    return (isinstance(keep, list) and len(keep) == width and len(set(keep)) == width
            and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < full for i in keep))
