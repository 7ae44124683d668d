"""Run-directory jobs shared by the CLI and the TUI: learn gates, resume, search.

Each job reads and writes a run directory (engine.runs), so whatever started it, a
later `pfs search`, `pfs train` or the TUI can pick up where it ended.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from engine.data import Dataset, load_dataset
from engine.events import Event, RunFailed, RunFinished, RunStarted, fanout
from engine.learn import LearnConfig, LearnResult, learn_gates
from engine.runs import RunDir, load_gated_model

CHECKPOINT = "checkpoints/learn.pt"
CHECKPOINT_EVERY = 100  # steps; a killed learn loses at most this much work


def learn_run(out: str | Path, *, model: str, dataset: str, learn: LearnConfig, data_root: str | None = None,
              download: bool = False, expand: float = 1.0, arch: dict | None = None,
              on_event: Callable[[Event], None] | None = None, should_stop: Callable[[], bool] | None = None,
              overwrite: bool = False, data: Dataset | None = None) -> LearnResult:
    """Learn gates on a frozen random `model` and record everything in run directory `out`.

    Writes config.json, init.pt (the random init, for ticket init and re-runs), events.jsonl,
    checkpoints/learn.pt every CHECKPOINT_EVERY steps, gates.pt (selected gates), summary.json.
    `data` skips loading when the caller already holds the data set.
    """
    from sample_models import create_model

    learn.validate()
    ds = data if data is not None else load_dataset(dataset, data_root, download=download)
    torch.manual_seed(learn.seed)
    net = create_model(model, in_channels=ds.input_size[0], num_classes=ds.num_classes, expand=expand,
                       **(arch or {}))
    config = {"model": model, "dataset": dataset, "data_root": str(data_root) if data_root else None,
              "expand": expand, "arch": dict(arch or {}), "model_spec": net.spec,
              "input_size": list(ds.input_size), "num_classes": ds.num_classes,
              "learn": asdict(learn), "seed": learn.seed, "created": time.time()}
    run = RunDir.create(out, config, overwrite=overwrite)
    if overwrite:
        for stale in ("events.jsonl", "gates.pt", "structure.json", "summary.json", CHECKPOINT):
            run.file(stale).unlink(missing_ok=True)
    run.save("init.pt", net.state_dict())
    return _learn(run, net, ds, learn, on_event, should_stop, resume=None)


def resume_learn(run_path: str | Path, *, on_event: Callable[[Event], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, data: Dataset | None = None) -> LearnResult:
    """Continue a run's gate learning from its last checkpoint (or from the start)."""
    run = RunDir.open(run_path)
    config = run.config
    learn = LearnConfig(**config["learn"])
    ds = data if data is not None else load_dataset(config["dataset"], config.get("data_root"))
    net = load_gated_model(run.path, gates=False)
    state = run.load(CHECKPOINT) if run.exists(CHECKPOINT) else None
    return _learn(run, net, ds, learn, on_event, should_stop, resume=state)


def _learn(run: RunDir, net, ds: Dataset, learn: LearnConfig, on_event, should_stop, resume) -> LearnResult:
    sink = run.event_sink()
    emit = fanout(on_event, sink)
    try:
        emit(RunStarted(stage="learn", config=run.config))
        result = learn_gates(net, ds, learn, on_event=emit, should_stop=should_stop,
                             checkpoint=lambda state: run.save(CHECKPOINT, state),
                             checkpoint_every=CHECKPOINT_EVERY, resume=resume)
        run.save("gates.pt", result.gates)
        summary = {"stage": "learn", "status": "stopped" if result.stopped else "finished",
                   "steps": result.steps, "selected_step": result.selected_step,
                   "heldout_acc": result.heldout_acc, "open_frac": result.open_frac,
                   "mean_gate": result.mean_gate}
        run.write_json("summary.json", summary)
        emit(RunFinished(stage="learn", summary=summary))
        return result
    except BaseException as exc:
        emit(RunFailed(stage="learn", error=str(exc) or type(exc).__name__))
        raise
    finally:
        sink.close()
