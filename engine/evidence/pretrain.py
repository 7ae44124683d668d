"""Pre-training the dense network, as a run directory `engine.train` trains and resumes.

The baselines that need trained weights (network slimming, pruning after pre-training,
inherited weights) train the dense gated model with the ordinary training loop: the run
holds a structure.json that keeps every channel, so `train_run` builds the full network
and all of its recipe, checkpointing and resume apply unchanged. Weights taken at chosen
epochs (`snapshots`) are copied to checkpoints/epoch-E.pt as each epoch's checkpoint lands.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from engine.events import CheckpointSaved, fanout
from engine.runs import RunDir, atomic_write_bytes
from engine.search import search
from engine.training import CHECKPOINT, TrainOptions, train_run


def snapshot_name(epoch: int) -> str:
    """Where a pre-training keeps its weights after `epoch` epochs."""
    return f"checkpoints/epoch-{epoch}.pt"


def pretrain(out: str | Path, config: dict, options: TrainOptions, *, snapshots: Sequence[int] = (),
             data=None, on_event: Callable | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Train (or resume, or just return) the dense network of `config` in run directory `out`.

    `config` is a gated run's config.json (model_spec, dataset, seed); returns its summary.json.
    """
    from engine.gating import rebuild_model

    path = Path(out)
    if (path / "config.json").is_file():
        run = RunDir.open(path)
        summary = run.read_json_or_empty("summary.json")
        if summary.get("stage") == "train" and summary.get("status") == "finished":
            return summary
    else:
        base = {k: v for k, v in config.items() if k not in ("learn", "baseline", "train", "pipeline")}
        run = RunDir.create(path, {**base, "stage": "pretrain"})
        net = rebuild_model(config["model_spec"])
        dense = search(net, 1.0, config.get("input_size"))  # every channel kept
        run.write_json("structure.json", {**dense.to_json(), "dataset": config.get("dataset")})
    wanted = set(snapshots)

    def keep_snapshot(event) -> None:
        if isinstance(event, CheckpointSaved) and event.epoch in wanted:
            atomic_write_bytes(run.file(snapshot_name(event.epoch)), run.file(CHECKPOINT).read_bytes())

    started = "train" in run.config and run.exists(CHECKPOINT)
    return train_run(run.path, None if started else replace(options, init="scratch", structure=None),
                     on_event=fanout(keep_snapshot, on_event), should_stop=should_stop, resume=started,
                     data=data)


def pretrained_weights(run_path: str | Path, epoch: int | None = None) -> dict:
    """The dense weights after `epoch` epochs (None: the last), as a model state dict."""
    run = RunDir.open(run_path)
    state = run.load(CHECKPOINT if epoch is None else snapshot_name(epoch))
    return state["model"]


def seconds_until(run_path: str | Path, epoch: int) -> float:
    """Seconds the pre-training spent training its first `epoch` epochs (from its history).

    Taken from the per-epoch history, so a pre-training killed and resumed is still counted
    once; evaluation after each epoch is not part of the cost.
    """
    history = RunDir.open(run_path).read_json_or_empty("summary.json").get("history", [])
    return float(sum(h["seconds"] for h in history[:epoch]))
