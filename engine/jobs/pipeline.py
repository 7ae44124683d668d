"""The whole method in one run directory: learn gates, search the budget, train; resumable.

`pfs run` records the budget and the training options in config.json ("pipeline") before
any work starts, so `pfs resume RUN` can tell from the files alone which stage to
continue: learning until gates.pt and a finished learn summary exist, the search until
structure.json exists, then training from checkpoints/last.pt. Under torchrun the stages
share one process group: all ranks learn and train, rank 0 alone searches and owns the run.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine import collective
from engine.errors import BudgetError, PfsError, StopRequested, shell_path
from engine.events import Event
from engine.jobs.learn_job import learn_run, owned, resume_learn
from engine.jobs.search_job import search_run
from engine.runs import RunDir
from engine.runs.schema import check_train_summary
from engine.training.train import CHECKPOINT, TrainOptions, train_run


def pipeline_run(out: str | Path, *, model: str, dataset: str, learn, flops: float, train: TrainOptions,
                 data_root: str | None = None, download: bool = False, expand: float = 1.0,
                 arch: dict | None = None, min_channels: int = 1, on_event: Callable[[Event], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, overwrite: bool = False,
                 data_options: dict | None = None) -> dict:
    """Learn, search and train into `out`; returns the training summary."""
    if not isinstance(flops, (int, float)) or not 0 < flops <= 1:
        raise PfsError(f"--flops must be a fraction of the dense model's MACs in (0, 1], got {flops}")
    train.validate()  # before learning, so a bad training flag costs no compute
    plan = {"flops": flops, "min_channels": min_channels, "train": train.to_json()}
    with _group(train.device) as dist:
        result = learn_run(out, model=model, dataset=dataset, learn=learn, data_root=data_root,
                           download=download, expand=expand, arch=arch, on_event=on_event,
                           should_stop=should_stop, overwrite=overwrite, extra_config={"pipeline": plan},
                           data_options=data_options, budget=(flops, min_channels))
        if result.stopped:
            raise StopRequested(f"stopped while learning gates, checkpoint saved; `pfs resume {shell_path(out)}` "
                                "continues")
        run = RunDir.open(out)
        with owned(run, "run", dist):
            return _rest(run, on_event, should_stop, dist=dist)


def resume_run(run_path: str | Path, *, on_event: Callable[[Event], None] | None = None,
               should_stop: Callable[[], bool] | None = None, data_root: str | None = None) -> dict:
    """Continue whatever stage a run stopped in; returns summary.json (as is, if already finished).

    `data_root` points the run at data that has moved since it started.
    """
    run = RunDir.open(run_path)
    options = run.config.get("train") or run.config.get("pipeline", {}).get("train") or {}
    with _group(options.get("device") or run.config.get("learn", {}).get("device", "cpu")) as dist, \
            owned(run, "resume", dist):
        return _resume(run, on_event, should_stop, data_root, dist)


def _group(device: str):
    """One torchrun process group for every stage of the run (rank 0 of 1 without torchrun)."""
    local_rank = collective.from_env().local_rank
    return collective.process_group(collective.pick_device(device, local_rank).type)


def _resume(run: RunDir, on_event, should_stop, data_root, dist: collective.DistInfo) -> dict:
    config = run.config
    summary = run.read_json_or_empty("summary.json")
    if summary.get("stage") == "train" and summary.get("status") == "finished":
        return check_train_summary(summary, run.file("summary.json"))  # reported as it is: it must be whole
    if "pipeline" not in config and "train" in config:
        return train_run(run.path, on_event=on_event, should_stop=should_stop, resume=True, data_root=data_root)
    baseline = config.get("baseline")
    if isinstance(baseline, dict) and summary.get("stage") != "baseline":
        # a `pfs baseline` run knows its own stages (pre-training, gates, search): learning
        # gates here would be wrong for uniform, random and slimming
        raise PfsError(f"{run.path} is an unfinished {baseline.get('kind')} baseline; repeat its `pfs baseline` "
                       f"command (settings in {run.path}/config.json) to continue it")
    if not _learn_finished(run):
        result = resume_learn(run.path, on_event=on_event, should_stop=should_stop, data_root=data_root)
        collective.barrier()  # rank 0 has written gates.pt and summary.json
        data_root = None  # recorded by the learn stage
        if result.stopped:
            raise StopRequested("stopped while learning gates, checkpoint saved; "
                                f"`pfs resume {shell_path(run.path)}` continues")
        if "pipeline" not in config:
            return run.read_json("summary.json")  # a `pfs learn` run: learning was all it had to do
    if "pipeline" not in config:
        raise PfsError(f"{run.path} has learned its gates and has nothing more to resume; "
                       f"next: `pfs search {shell_path(run.path)} --flops F`, then `pfs train {shell_path(run.path)}`")
    return _rest(run, on_event, should_stop, data_root, dist)


def _learn_finished(run: RunDir) -> bool:
    if not run.exists("gates.pt") or not run.exists("summary.json"):
        return False
    summary = run.read_json("summary.json")
    return summary.get("stage") != "learn" or summary.get("status") == "finished"


def _rest(run: RunDir, on_event, should_stop, data_root: str | None = None,
          dist: collective.DistInfo | None = None) -> dict:
    """Search (unless structure.json exists), then train (resuming a started training)."""
    plan = run.config["pipeline"]
    searched = run.exists("structure.json")
    collective.barrier()  # every rank has seen whether the structure existed before rank 0 writes it
    if not searched and (dist is None or dist.is_main):
        try:
            search_run(run.path, plan["flops"], min_channels=plan.get("min_channels", 1), on_event=on_event)
        except BudgetError as exc:  # `pfs resume` has no --flops: name the commands that take one
            raise BudgetError(f"{exc}; the gates are learned: `pfs search {shell_path(run.path)} --flops F`, "
                              f"then `pfs train {shell_path(run.path)}`") from None
    collective.barrier()  # the others train the structure rank 0 found
    started = "train" in run.config and run.exists(CHECKPOINT)
    options = None if started else TrainOptions.from_json(plan["train"])
    return train_run(run.path, options, on_event=on_event, should_stop=should_stop, resume=started,
                     overwrite=True, data_root=data_root)

