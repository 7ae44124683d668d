"""The learning job: learn a run's gates into its run directory, and resume that.

Shared by the CLI and the explorer; it writes a run directory (engine.runs), so whatever
started it, a later `pfs search`, `pfs train` or the explorer picks up where it ended.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from engine.data import Dataset, absolute_data_paths, load_dataset, moved_data, shaped_data
from engine.events import CheckpointSaved, Event, RunFailed, RunFinished, RunStarted, failure_text, fanout
from engine.learn import LearnConfig, LearnResult, check_batch_fits, learn_gates
from engine.runs import RunDir, load_gated_model
from engine.search import uniform_structure
from engine.training import CHECKPOINT as TRAIN_CHECKPOINT

CHECKPOINT = "checkpoints/learn.pt"
CHECKPOINT_EVERY = 100  # steps; a killed learn loses at most this much work
# What an earlier run in the same directory leaves that would contradict new gates.
STALE_ON_OVERWRITE = ("events.jsonl", "gates.pt", "structure.json", "summary.json", CHECKPOINT,
                      TRAIN_CHECKPOINT)


def learn_run(out: str | Path, *, model: str, dataset: str, learn: LearnConfig, data_root: str | None = None,
              download: bool = False, expand: float = 1.0, arch: dict | None = None,
              on_event: Callable[[Event], None] | None = None, should_stop: Callable[[], bool] | None = None,
              overwrite: bool = False, data: Dataset | None = None,
              extra_config: dict | None = None, data_options: dict | None = None,
              budget: tuple[float, int] | None = None) -> LearnResult:
    """Learn gates on a frozen random `model` and record everything in run directory `out`.

    Writes config.json, init.pt (the random init, for ticket init and re-runs), events.jsonl,
    checkpoints/learn.pt every CHECKPOINT_EVERY steps, gates.pt (selected gates), summary.json.
    `data` skips loading when the caller already holds the data set; `data_options`
    (subset, image_size, workers, as `pfs train` takes them) shape it and are recorded.
    `budget` = (flops, min_channels) the caller will search: refused before learning when even
    the smallest structure exceeds it, so that an impossible budget costs no learning.
    """
    from engine.gating import build_model

    learn.validate()
    RunDir(out).check_creatable(overwrite=overwrite)  # before loading data: a taken --out costs nothing
    data_root, dataset = absolute_data_paths(data_root, dataset)
    ds = data if data is not None else load_dataset(dataset, data_root, download=download)
    ds = shaped_data(ds, **(data_options or {}))
    check_batch_fits(learn, ds)  # before the run directory is made
    torch.manual_seed(learn.seed)
    net = build_model(model, in_channels=ds.input_size[0], num_classes=ds.num_classes, expand=expand,
                      input_size=ds.input_size, **(arch or {}))
    if budget is not None:
        uniform_structure(net, budget[0], ds.input_size, min_channels=budget[1])  # BudgetError names the fix
    config = {"model": model, "dataset": dataset, "data_root": data_root,
              "expand": expand, "arch": dict(arch or {}), "model_spec": net.spec,
              "input_size": list(ds.input_size), "num_classes": ds.num_classes,
              "learn": asdict(learn), "seed": learn.seed, "created": time.time(),
              "data_options": dict(data_options or {}), **(extra_config or {}),
              **({"input_note": net.input_note} if getattr(net, "input_note", "") else {})}
    run = RunDir.create(out, config, overwrite=overwrite)
    with run.owned("learn"):
        try:
            if overwrite:
                for stale in STALE_ON_OVERWRITE:
                    run.file(stale).unlink(missing_ok=True)
            run.save("init.pt", net.state_dict())
        except BaseException:
            run.discard()  # a start that failed leaves no half-made run directory
            raise
        return _learn(run, net, ds, learn, on_event, should_stop, resume=None)


def resume_learn(run_path: str | Path, *, on_event: Callable[[Event], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, data: Dataset | None = None,
                 data_root: str | None = None) -> LearnResult:
    """Continue a run's gate learning from its last checkpoint (or from the start).

    `data_root` points the run at data that has moved (recorded once the data loads).
    """
    run = RunDir.open(run_path)
    config = {**run.config, **moved_data(run.config, data_root)}
    learn = LearnConfig(**config["learn"])
    ds = data if data is not None else load_dataset(config["dataset"], config.get("data_root"))
    ds = shaped_data(ds, **(config.get("data_options") or {}))
    net = load_gated_model(run.path, gates=False)
    state = run.load(CHECKPOINT) if run.exists(CHECKPOINT) else None
    with run.owned("learn"):
        if data_root:
            run.write_json("config.json", config)
        return _learn(run, net, ds, learn, on_event, should_stop, resume=state)


def _checkpoint(run: RunDir, state: dict, emit) -> None:
    """Save the learn state, then say so: `pfs runs` shows a killed run's progress as of here."""
    run.save(CHECKPOINT, state)
    emit(CheckpointSaved(stage="learn", path=str(run.file(CHECKPOINT)), step=state["step"]))


def _learn(run: RunDir, net, ds: Dataset, learn: LearnConfig, on_event, should_stop, resume) -> LearnResult:
    sink = run.event_sink()
    emit = fanout(on_event, sink)
    try:
        resumed = {"resumed_from_step": int(resume["step"])} if resume else {}
        emit(RunStarted(stage="learn", config={**run.config, **resumed}))
        result = learn_gates(net, ds, learn, on_event=emit, should_stop=should_stop,
                             checkpoint=lambda state: _checkpoint(run, state, emit),
                             checkpoint_every=CHECKPOINT_EVERY, resume=resume)
        run.save("gates.pt", result.gates)
        summary = {"stage": "learn", "status": "stopped" if result.stopped else "finished",
                   "steps": result.steps, "selected_step": result.selected_step,
                   "heldout_acc": result.heldout_acc, "open_frac": result.open_frac,
                   "mean_gate": result.mean_gate, "converged": result.converged}
        if result.warning():
            summary["warning"] = result.warning()
        run.write_json("summary.json", summary)
        emit(RunFinished(stage="learn", summary=summary))
        return result
    except BaseException as exc:
        emit(RunFailed(stage="learn", error=failure_text(exc)))
        raise
    finally:
        sink.close()
