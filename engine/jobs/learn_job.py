"""The learning job: learn a run's gates into its run directory, and resume that.

Shared by the CLI and the explorer; it writes a run directory (engine.runs), so whatever
started it, a later `pfs search`, `pfs train` or the explorer picks up where it ended.
Under torchrun every process learns (engine.learn_distributed) and only rank 0 touches the
run directory: it checks, creates, owns and writes it; the others compute and stay silent.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path

import torch

from engine import collective
from engine.data import Dataset, absolute_data_paths, load_dataset, moved_data, shaped_data
from engine.events import CheckpointSaved, Event, RunFailed, RunFinished, RunStarted, failure_text, fanout
from engine.learn import LearnConfig, LearnResult, check_batch_fits, learn_gates
from engine.learn_distributed import WORLD_INVARIANT, Ranks, check_batch_norm, recorded_batch_norm
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
              budget: tuple[float, int] | None = None, batch_norm: str = WORLD_INVARIANT) -> LearnResult:
    """Learn gates on a frozen random `model` and record everything in run directory `out`.

    Writes config.json, init.pt (the random init, for ticket init and re-runs), events.jsonl,
    checkpoints/learn.pt every CHECKPOINT_EVERY steps, gates.pt (selected gates), summary.json.
    `data` skips loading when the caller already holds the data set; `data_options`
    (subset, image_size, workers, as `pfs train` takes them) shape it and are recorded.
    `budget` = (flops, min_channels) the caller will search: refused before learning when even
    the smallest structure exceeds it, so that an impossible budget costs no learning.
    `batch_norm` (recorded, engine.learn_distributed): "native" runs torch's BatchNorm kernel,
    about 1/7 less time per CPU step, with gates that differ from N ranks' by rounding.
    """
    learn.validate()
    check_batch_norm(batch_norm)  # before any run directory is made
    with learn_group(learn) as dist:
        if dist.is_main:  # before loading data: a taken --out costs nothing
            RunDir(out).check_creatable(overwrite=overwrite)
        return _learn_new(out, dist, model=model, dataset=dataset, learn=learn, data_root=data_root,
                          download=download, expand=expand, arch=arch, on_event=on_event,
                          should_stop=should_stop, overwrite=overwrite, data=data, extra_config=extra_config,
                          data_options=data_options, budget=budget, batch_norm=batch_norm)


@contextmanager
def learn_group(learn: LearnConfig):
    """torchrun's process group for learning on `learn.device` (a single process: rank 0 of 1)."""
    device = collective.pick_device(learn.device, collective.from_env().local_rank)
    with collective.process_group(device.type) as dist:
        yield dist


def owned(run: RunDir, stage: str, dist: collective.DistInfo):
    """Rank 0 owns the run while a stage works on it; the other ranks never touch it."""
    return run.owned(stage) if dist.is_main else nullcontext()


def _learn_new(out, dist: collective.DistInfo, *, model, dataset, learn, data_root, download, expand, arch,
               on_event, should_stop, overwrite, data, extra_config, data_options, budget,
               batch_norm) -> LearnResult:
    from engine.gating import build_model

    data_root, dataset = absolute_data_paths(data_root, dataset)
    ds = data if data is not None else load_dataset(dataset, data_root, download=download)
    ds = shaped_data(ds, **(data_options or {}))
    check_batch_fits(learn, ds)  # before the run directory is made
    Ranks(dist).check_batch(learn.batch_size)
    torch.manual_seed(learn.seed)
    net = build_model(model, in_channels=ds.input_size[0], num_classes=ds.num_classes, expand=expand,
                      input_size=ds.input_size, **(arch or {}))
    if budget is not None:
        uniform_structure(net, budget[0], ds.input_size, min_channels=budget[1])  # BudgetError names the fix
    config = {"model": model, "dataset": dataset, "data_root": data_root,
              "expand": expand, "arch": dict(arch or {}), "model_spec": net.spec,
              "input_size": list(ds.input_size), "num_classes": ds.num_classes,
              "learn": asdict(learn), "seed": learn.seed, "created": time.time(),
              "data_options": dict(data_options or {}), "world_size": dist.world_size, "batch_norm": batch_norm,
              **(extra_config or {}),
              **({"input_note": net.input_note} if getattr(net, "input_note", "") else {})}
    if not dist.is_main:
        collective.barrier()  # rank 0 makes the run, or fails and torchrun stops this process
        return _learn(RunDir(out), net, ds, learn, on_event, should_stop, None, dist)
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
        collective.barrier()
        return _learn(run, net, ds, learn, on_event, should_stop, None, dist)


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
    with learn_group(learn) as dist, owned(run, "learn", dist):
        Ranks(dist).check_batch(learn.batch_size)
        if data_root and dist.is_main:
            run.write_json("config.json", config)
        return _learn(run, net, ds, learn, on_event, should_stop, state, dist)


def _checkpoint(run: RunDir, state: dict, emit) -> None:
    """Save the learn state, then say so: `pfs runs` shows a killed run's progress as of here."""
    run.save(CHECKPOINT, state)
    emit(CheckpointSaved(stage="learn", path=str(run.file(CHECKPOINT)), step=state["step"]))


def _learn(run: RunDir, net, ds: Dataset, learn: LearnConfig, on_event, should_stop, resume,
           dist: collective.DistInfo) -> LearnResult:
    batch_norm = recorded_batch_norm(run.config)  # rank > 0 reads the config rank 0 wrote
    if not dist.is_main:  # computes its share; rank 0 writes and reports
        return learn_gates(net, ds, learn, should_stop=should_stop, resume=resume, batch_norm=batch_norm)
    with ExitStack() as stack:
        sink = stack.enter_context(run.event_sink())
        emit = fanout(on_event, sink)
        try:
            resumed = {"resumed_from_step": int(resume["step"])} if resume else {}
            emit(RunStarted(stage="learn", config={**run.config, **resumed, "world_size": dist.world_size}))
            result = learn_gates(net, ds, learn, on_event=emit, should_stop=should_stop,
                                 checkpoint=lambda state: _checkpoint(run, state, emit),
                                 checkpoint_every=CHECKPOINT_EVERY, resume=resume, batch_norm=batch_norm)
            run.save("gates.pt", result.gates)
            summary = {"stage": "learn", "status": "stopped" if result.stopped else "finished",
                       "steps": result.steps, "selected_step": result.selected_step,
                       "heldout_acc": result.heldout_acc, "open_frac": result.open_frac,
                       "mean_gate": result.mean_gate, "converged": result.converged,
                       "world_size": dist.world_size}
            if result.warning():
                summary["warning"] = result.warning()
            run.write_json("summary.json", summary)
            emit(RunFinished(stage="learn", summary=summary))
            return result
        except BaseException as exc:
            emit(RunFailed(stage="learn", error=failure_text(exc)))
            raise
