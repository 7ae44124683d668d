"""The dense network's accuracy at a race's training size: the line both arms aim at.

Training the dense network costs more than either arm, so it is trained once per
(network, data set, training options) and kept as an ordinary run directory named by a
key of those, `dense-MODEL-DATASET-KEY`, in the runs folder: a later race with the same
size finds it there (cached), and the explorer's recorded demo ships one (bundled).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.errors import PfsError
from engine.runs import RunDir, load_gated_model
from engine.search import uniform_structure

# Options that change where or how fast a training runs, not what it learns.
_NOT_IN_KEY = ("structure", "device", "workers", "log_every")


def dense_key(config: dict, options: dict) -> str:
    """A short key of what decides the dense accuracy: network, data and training options."""
    what = {"model_spec": config.get("model_spec"), "dataset": config.get("dataset"),
            "input_size": config.get("input_size"),
            "options": {k: v for k, v in sorted(options.items()) if k not in _NOT_IN_KEY}}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]


def dense_run_name(config: dict, options: dict) -> str:
    model = str(config.get("model", "model")).replace(":", "-").replace("/", "_").replace(".py", "")
    dataset = str(config.get("dataset", "data")).replace(":", "-").replace("/", "_")
    return f"dense-{model}-{dataset}-{dense_key(config, options)}"


def find_dense(roots: list[Path], config: dict, options: dict) -> tuple[float, Path] | None:
    """(final test accuracy, run) of a finished dense run of this size under any of `roots`."""
    name = dense_run_name(config, options)
    for root in roots:
        run = RunDir(Path(root) / name)
        try:
            summary = run.read_json_or_empty("summary.json")
        except PfsError:  # a damaged cache entry is no reference; `pfs race --dense` makes it again
            continue
        acc = summary.get("test_acc")
        if summary.get("stage") == "train" and summary.get("status") == "finished" \
                and isinstance(acc, (int, float)):
            return float(acc), run.path
    return None


def prepare_dense(run_path: str | Path, options: dict, root: str | Path) -> Path:
    """The dense run of this size under `root`, ready to train (made from RUN's network)."""
    source = RunDir.open(run_path)
    path = Path(root) / dense_run_name(source.config, options)
    if (path / "config.json").is_file():
        return path
    net = load_gated_model(source.path, gates=False)
    dense = uniform_structure(net, 1.0, source.config.get("input_size"))
    arm = source.branch(path)
    arm.write_json("structure.json", {**dense.to_json(), "dataset": source.config.get("dataset")})
    arm.write_json("config.json", {**arm.config, "dense_reference": dense_key(source.config, options)})
    return path


__all__ = ["dense_key", "dense_run_name", "find_dense", "prepare_dense"]
