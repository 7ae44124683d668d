"""A trained run's pruned network, without pickles and without pfs: load it or export it.

A run stores the pruned network as its spec and kept channels (structure.json) plus
weights (model.safetensors when training finished, else the plain-tensor checkpoint).
`load_pruned(RUN)` rebuilds the network in plain PyTorch, gates taken out; `export`
writes it as ONNX (checked against onnxruntime in the tests), safetensors (with the spec
and kept channels in the file's metadata) or TorchScript, for programs that do not import pfs.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.errors import PfsError, RunError, shell_path
from engine.gates import set_gates_enabled
from engine.gating import strip_gates
from engine.prune import pruned_model
from engine.runs.rundir import RunDir, atomic_write_bytes
from engine.search import Structure

FORMATS = ("onnx", "safetensors", "torchscript")
WEIGHTS = "model.safetensors"
TRAIN_CHECKPOINT = "checkpoints/last.pt"


def deployable(model: nn.Module) -> nn.Module:
    """The network with its gates taken out (identity in training, so nothing changes), eval mode.

    A foreign network comes back as the user's own class (torchvision's ResNet, ...), unless
    its input channels are repeated, which the pfs wrapper around it does.
    """
    strip_gates(model)
    if hasattr(model, "costs_at") and model.repeat == 1:
        model = model.net
    return model.eval()


def save_weights(run: RunDir, model: nn.Module) -> None:
    """Write RUN/model.safetensors: the trained network's weights, gates taken out (no pickle)."""
    from safetensors.torch import save

    plain = deployable(copy.deepcopy(model))
    state = {k: v.detach().cpu().contiguous() for k, v in plain.state_dict().items()}
    atomic_write_bytes(run.file(WEIGHTS), save(state))


def load_pruned(run_path: str | os.PathLike, *, unfinished: bool = False) -> nn.Module:
    """The trained pruned network of a run, in plain PyTorch (eval mode, no gates).

    Only a finished training's weights (model.safetensors), unless `unfinished`: then a
    training still running or stopped gives its last checkpoint's, which are not the result.
    """
    run = RunDir.open(run_path)
    if not run.exists("structure.json"):
        raise RunError(f"{run.path} has no structure.json; run `pfs search {shell_path(run.path)} --flops F` and "
                       f"`pfs train {shell_path(run.path)}` first")
    structure = Structure.from_json(run.read_json("structure.json"))
    summary = run.read_json_or_empty("summary.json")
    finished = summary.get("stage") == "train" and summary.get("status") == "finished"
    if not (finished and run.exists(WEIGHTS)) and not run.exists(TRAIN_CHECKPOINT):
        raise RunError(f"{run.path} has no trained network yet; run `pfs train {shell_path(run.path)}` first")
    if not finished and not unfinished:
        raise RunError(f"{run.path}'s training is not finished ({_checkpoint_epoch(run)} in its last checkpoint); "
                       f"`pfs resume {shell_path(run.path)}` finishes it, or pass --unfinished to export "
                       "those weights as they are")
    expand = float(summary.get("expand") or run.config.get("train", {}).get("expand") or 1.0)
    model = pruned_model(structure, expand=expand, seed=0)
    set_gates_enabled(model, False)
    if finished and run.exists(WEIGHTS):  # else a run from before model.safetensors: its last checkpoint
        from safetensors.torch import load_file

        model = deployable(model)
        try:
            weights = load_file(str(run.file(WEIGHTS)))
        except Exception:  # safetensors fails in its own types (SafetensorError, OSError): all mean damaged
            raise RunError(f"{run.file(WEIGHTS)} is corrupt (not a safetensors file); "
                           f"`pfs train {shell_path(run.path)} --overwrite` writes it again") from None
        _load(model, weights, run.file(WEIGHTS))
        return model
    state = run.load(TRAIN_CHECKPOINT)
    _load(model, state.get("model") if isinstance(state, dict) else None, run.file(TRAIN_CHECKPOINT))
    return deployable(model)


def _checkpoint_epoch(run: RunDir) -> str:
    """'step S, epoch E of N' of the run's training, from its newest checkpoint event."""
    saved = [e for e in run.events() if e.kind == "checkpoint" and getattr(e, "stage", "") == "train"]
    epochs = run.config.get("train", {}).get("epochs")
    if not saved:
        return "no step recorded"
    return f"step {saved[-1].step}, epoch {saved[-1].epoch}" + (f" of {epochs}" if epochs else "")


def _load(model: nn.Module, state, source: Path) -> None:
    if not isinstance(state, dict):
        raise RunError(f"{source} holds no model weights; re-run `pfs train`")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RunError(f"{source} does not fit the run's structure ({str(exc).splitlines()[0][:160]}); "
                       "it was written for another structure: re-run `pfs train`") from None


def export(run_path: str | os.PathLike, fmt: str, out: str | os.PathLike, *, unfinished: bool = False) -> Path:
    """Write the run's trained pruned network to `out` as onnx, safetensors or torchscript."""
    if fmt not in FORMATS:
        raise PfsError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if not str(out) or out.is_dir():
        raise PfsError(f"--out {str(out)!r} is a folder; name the file to write, e.g. --out {out / ('model.' + fmt)}")
    if out.parent and not out.parent.is_dir():
        raise PfsError(f"{out.parent} does not exist; create it or pick another --out")
    if not os.access(out.parent or ".", os.W_OK):
        raise PfsError(f"{out.parent} is not writable; pick another --out")
    run = RunDir.open(run_path)
    model = load_pruned(run.path, unfinished=unfinished)
    structure = run.read_json("structure.json")
    x = torch.randn(1, *structure["input_size"])
    fd, tmp = tempfile.mkstemp(dir=out.parent or ".", prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "safetensors":
                from safetensors.torch import save_file

                meta = {"pfs_spec": json.dumps(structure.get("spec", {})), "pfs_keep": json.dumps(structure["keep"]),
                        "pfs_input_size": json.dumps(structure["input_size"])}
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp, metadata=meta)
            elif fmt == "onnx":
                torch.onnx.export(model, (x,), tmp, dynamo=False, input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            else:
                torch.jit.trace(model, x).save(tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out
