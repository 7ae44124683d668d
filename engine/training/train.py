"""Train a pruned network from scratch: the paper's retraining stage, resumable, DDP-aware.

Read `train_run` top to bottom: it builds the data, the network and the optimiser, then
runs a plain epoch loop (train, reduce metrics over ranks, evaluate, checkpoint). Every
epoch's batches depend only on (seed, epoch) and every checkpoint holds the full state
(weights, momentum, epoch, history), so a run killed mid-epoch and resumed ends with the
same weights as one never interrupted. Only rank 0 writes files and events.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.data import Dataset, load_dataset, moved_data, shaped_data
from engine.data.sources import MemorySource, steps_per_epoch
from engine.errors import DivergedError, PfsError, StopRequested, shell_path
from engine.events import (
    CheckpointSaved,
    EpochEnd,
    EvalEnd,
    EvalStarted,
    RunFailed,
    RunFinished,
    RunStarted,
    StepEnd,
    failure_text,
    fanout,
)
from engine.flops import count_macs, count_params, dense_macs
from engine.runs import RunDir, check_structure, read_json
from engine.runs.export import WEIGHTS, save_weights
from engine.search import Structure
from engine.training import distributed
from engine.training.distributed import pick_device
from engine.training.inits import build_model
from engine.training.recipes import DEVICES, INITS, SCHEDULES, Plan, lr_at, make_plan

CHECKPOINT = "checkpoints/last.pt"


@dataclass
class TrainOptions:
    """What `pfs train` was asked for; None means "the recipe's default"."""

    epochs: int | None = None
    budget: bool = False  # Scratch-B: epochs x dense MACs / pruned MACs
    expand: float = 1.0
    init: str = "scratch"
    from_checkpoint: str | None = None  # --init inherit: a trained dense model's weights
    structure: str | None = None  # default RUN/structure.json
    recipe: str | None = None  # default: by data set (imagefolder -> imagenet, else cifar)
    lr: float | None = None
    wd: float | None = None
    momentum: float | None = None
    schedule: str | None = None
    label_smoothing: float | None = None
    batch_size: int | None = None
    accum_steps: int = 1  # micro-batches per step (BN sees each alone, as a DDP rank does)
    device: str = "auto"
    amp: bool = False
    subset: int | None = None
    test_subset: int | None = None
    image_size: int | None = None
    workers: int = min(4, os.cpu_count() or 1)  # image decoding processes (folder sets)
    seed: int | None = None  # default: the run's seed
    log_every: int = 10
    slim_lambda: float = 0.0  # L1 penalty on BN scales (network slimming, Liu et al. 2017: 1e-4)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def validate(self) -> None:
        """Raise a PfsError naming the flag for any value that cannot work."""
        def positive(flag: str, v, allow_zero: bool = False) -> None:
            if v is not None and not (v >= 0 if allow_zero else v > 0):
                raise PfsError(f"{flag} must be {'>= 0' if allow_zero else '> 0'}, got {v}")
        for flag, v in (("--expand", self.expand), ("--lr", self.lr), ("--wd", self.wd),
                        ("--momentum", self.momentum), ("--label-smoothing", self.label_smoothing)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise PfsError(f"{flag} must be a finite number, got {v!r}")
        for flag, v in (("--epochs", self.epochs), ("--expand", self.expand), ("--lr", self.lr),
                        ("--batch-size", self.batch_size), ("--accum-steps", self.accum_steps),
                        ("--subset", self.subset), ("--test-subset", self.test_subset),
                        ("--image-size", self.image_size), ("--log-every", self.log_every)):
            positive(flag, v)
        for flag, v in (("--wd", self.wd), ("--momentum", self.momentum), ("--workers", self.workers),
                        ("--slim-lambda", self.slim_lambda)):
            positive(flag, v, allow_zero=True)
        if self.momentum is not None and not self.momentum < 1:  # at 1 or above SGD's steps grow without bound
            raise PfsError(f"--momentum must be in [0, 1), got {self.momentum:g}; SGD's usual is 0.9")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise PfsError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.init not in INITS:
            raise PfsError(f"--init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise PfsError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.device not in DEVICES:
            raise PfsError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.init == "inherit" and not self.from_checkpoint:
            raise PfsError("--init inherit needs --from CHECKPOINT (a trained model's weights)")
        if self.from_checkpoint and self.init != "inherit":
            raise PfsError("--from is only used with --init inherit; add --init inherit or drop --from")
        if self.from_checkpoint and not Path(self.from_checkpoint).is_file():
            raise PfsError(f"--from {self.from_checkpoint} is not a file; pass a trained dense model's weights "
                           "(e.g. a baseline's pretrain/checkpoints/last.pt)")
        if self.init != "scratch" and self.expand != 1.0:
            raise PfsError(f"--init {self.init} copies weights and cannot widen the network; "
                           "use --expand only with --init scratch")
        if self.batch_size and self.batch_size % self.accum_steps:
            raise PfsError(f"--batch-size {self.batch_size} must be a multiple of --accum-steps "
                           f"{self.accum_steps}")


def param_groups(model: nn.Module, weight_decay: float, no_wd_bn_depthwise: bool) -> list[dict]:
    """Trainable parameters split into decayed and not decayed (BN, depthwise) groups."""
    decay, plain = [], []
    for m in model.modules():
        skip = no_wd_bn_depthwise and (isinstance(m, nn.modules.batchnorm._BatchNorm)
                                       or (isinstance(m, nn.Conv2d) and m.groups > 1))
        for p in m.parameters(recurse=False):
            if p.requires_grad:
                (plain if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def load_source(config: dict, options: TrainOptions, data=None):
    """The run's data set (or `data`) as a batch source (in memory, or streamed from folders)."""
    ds = data if data is not None else load_dataset(config["dataset"], config.get("data_root"))
    ds = shaped_data(ds, subset=options.subset, image_size=options.image_size)
    if isinstance(ds, Dataset):
        return MemorySource(ds, test_limit=options.test_subset)
    return ds.source(workers=options.workers, test_limit=options.test_subset)


# -- the job ----------------------------------------------------------------------------
def train_run(run_path: str | Path, options: TrainOptions | None = None, *, on_event: Callable | None = None,
              should_stop: Callable[[], bool] | None = None, resume: bool = False,
              overwrite: bool = False, data=None, out: str | Path | None = None,
              data_root: str | None = None) -> dict:
    """Train the run's pruned network; returns (and on rank 0 writes) summary.json.

    `resume=True` continues from checkpoints/last.pt with the options stored in
    config.json; a fresh run refuses a directory that already holds a train stage unless
    `overwrite`. `data` (a Dataset) skips loading config["dataset"] (benchmarks, tests).
    `out` trains in a new run directory branched from this one (its gates and structure),
    made only once every input has been checked. `data_root` points the run at data that
    has moved (recorded in config.json once it loads).
    """
    run = RunDir.open(run_path)
    config = {**run.config, **moved_data(run.config, data_root)}
    run.read_json_or_empty("summary.json")  # read again at the end: a damaged one is refused before any write
    if resume:
        if "train" not in config:
            raise PfsError(f"{run.path} has no train stage to resume; "
                           f"start one with `pfs train {shell_path(run.path)}`")
        options = TrainOptions.from_json(config["train"])
    options = options or TrainOptions()
    options.validate()
    # Paths are stored for resume, which may run from another directory.
    options = replace(options, **{k: str(Path(v).resolve()) for k in ("structure", "from_checkpoint")
                                  if (v := getattr(options, k))})
    if out is None and not resume and "train" in config and run.exists(CHECKPOINT) and not overwrite:
        raise PfsError(f"{run.path} already has a train stage; `pfs resume {shell_path(run.path)}` continues it, "
                       "--overwrite starts it again")
    device = pick_device(options.device, distributed.from_env().local_rank)
    if options.amp and device.type != "cuda":
        raise PfsError("--amp needs a CUDA device; drop --amp or run on a GPU")
    # The run being trained is owned (by rank 0): this one, or the --out branch.
    with distributed.process_group(device.type) as dist, ExitStack() as owner:
        if dist.is_main and out is None:
            owner.enter_context(run.owned("train"))
        # Everything is checked (structure, data, batch) before the first write, so a
        # refused start leaves the run exactly as it was: no event, no deleted checkpoint.
        job = _prepare(run, config, options, device, dist.world_size, data)
        if out is not None:
            run = _branch(run, out, overwrite, dist.is_main)
            config = {**run.config, **moved_data(run.config, data_root)}
            if dist.is_main:
                owner.enter_context(run.owned("train"))
        emit = _event_sink(run, on_event, dist.is_main)
        try:
            if dist.is_main and not resume:
                run.file(CHECKPOINT).unlink(missing_ok=True)  # never resume into another run's state
                run.write_json("config.json", {**config, "train": options.to_json()})
            elif dist.is_main and data_root:
                run.write_json("config.json", config)
            return _train(run, job, options, device, dist, emit, should_stop, resume)
        except BaseException as exc:
            emit(RunFailed(stage="train", error=failure_text(exc)))
            raise
        finally:
            emit.close()


def _branch(run: RunDir, out: str | Path, overwrite: bool, is_main: bool) -> RunDir:
    """The new run `out` holding `run`'s gates and structure (rank 0 makes it, others wait)."""
    if is_main:
        return run.branch(out, overwrite=overwrite)
    deadline = time.monotonic() + 120  # bounded: rank 0 may have failed
    while not (Path(out) / "config.json").is_file():
        if time.monotonic() > deadline:
            raise PfsError(f"rank 0 did not create {out} within 120 s")
        time.sleep(0.1)
    return RunDir.open(out)


@dataclass
class _Job:
    """Everything the epoch loop needs, built once from the run's files and the options."""

    structure: Structure
    source: object  # engine.data.sources.BatchSource
    model: nn.Module
    plan: Plan
    macs: int
    dense: int
    steps: int


def _prepare(run: RunDir, config: dict, options: TrainOptions, device: torch.device, world: int, data) -> _Job:
    """Check and build everything the loop needs; reads the run, writes nothing."""
    structure_file = options.structure or run.file("structure.json")
    if options.structure and Path(structure_file).is_dir():
        inside = Path(structure_file) / "structure.json"
        raise PfsError(f"--structure {structure_file} is a folder; name the file"
                       + (f" (--structure {shell_path(inside)})" if inside.is_file() else
                          ", a structure.json made by `pfs search`"))
    if options.structure and not Path(structure_file).is_file():
        raise PfsError(f"{structure_file} does not exist; give --structure a structure.json made by `pfs search`")
    if not Path(structure_file).is_file():
        raise PfsError(f"{run.path} has no structure to train yet; "
                       f"run `pfs search {shell_path(run.path)} --flops F` first")
    data_json = read_json(structure_file)
    if not isinstance(data_json, dict):
        raise PfsError(f"{structure_file} is not a structure.json; re-create it with `pfs search RUN --flops F`")
    structure = Structure.from_json(data_json)
    check_structure(structure, config, structure_file)
    source = load_source(config, options, data)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
        if isinstance(source, MemorySource):
            source.to(device)  # small sets live on the GPU: no host-to-device copy per batch
    seed = options.seed if options.seed is not None else int(config.get("seed", 0))
    model = build_model(run, structure, options, seed)
    macs, dense = count_macs(model, source.input_size), dense_macs(model, source.input_size)
    plan = make_plan(options, model=structure.model, dataset=config["dataset"], dense=dense, macs=macs, seed=seed)
    parts = world * options.accum_steps
    if plan.batch_size % parts:
        raise PfsError(f"batch size {plan.batch_size} must split evenly over {world} processes x "
                       f"{options.accum_steps} micro-batches; pick a multiple of {parts}")
    steps = steps_per_epoch(source.num_train, plan.batch_size)
    if steps == 0:
        raise PfsError(f"only {source.num_train} training images for a batch of {plan.batch_size}; "
                       "lower --batch-size or raise --subset")
    # channels_last on CPU too: measured 1.2-1.3x faster training for dense and pruned
    # ResNet-56 alike (docs/benchmarks.md, "Retraining (CPU)").
    model.to(device, memory_format=torch.channels_last)
    return _Job(structure, source, model, plan, macs, dense, steps)


def _train(run: RunDir, job: _Job, options: TrainOptions, device: torch.device, dist, emit,
           should_stop, resume: bool) -> dict:
    if dist.is_main and not resume:
        run.file(WEIGHTS).unlink(missing_ok=True)  # a new training: the old weights no longer match
    model, plan = job.model, job.plan
    optimizer = torch.optim.SGD(param_groups(model, plan.weight_decay, plan.no_wd_bn_depthwise), lr=plan.lr,
                                momentum=plan.momentum, nesterov=plan.nesterov)
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if options.amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    state = {"epoch": 0, "step": 0, "best_acc": -1.0, "best_epoch": 0, "history": []}
    skip, carried = 0, None  # a checkpoint taken mid-epoch: batches done, their metric sums
    if resume and run.exists(CHECKPOINT):
        ckpt = run.load(CHECKPOINT, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        state = {k: ckpt[k] for k in state}
        skip, carried = int(ckpt.get("batch", 0)), ckpt.get("sums")
    net = model
    if dist.enabled:
        # Each rank normalises its own shard (no SyncBatchNorm: it has no CPU/gloo path);
        # running stats are averaged over ranks at the end of every epoch instead.
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                  broadcast_buffers=False)
    emit(RunStarted(stage="train", config={"plan": asdict(plan), "macs": job.macs, "dense_macs": job.dense,
                                            "world_size": dist.world_size, "device": str(device),
                                            "resumed_from_epoch": state["epoch"],
                                            **({"resumed_from_step": state["step"]} if resume else {})}))
    criterion = nn.CrossEntropyLoss(label_smoothing=plan.label_smoothing)
    bn_scales = bn_weights(model) if options.slim_lambda else []

    def save(extra: dict) -> None:
        run.save(CHECKPOINT, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                              "plan": asdict(plan), **state, **extra})

    for epoch in range(state["epoch"], plan.epochs):
        # -- train one epoch: every rank walks its shard of the same global batches --
        net.train()
        t0 = time.perf_counter()
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss x images, correct, images
        if carried is not None and dist.is_main:
            sums += torch.as_tensor(carried, dtype=torch.float64, device=device)  # global sums of the done part
        batches = job.source.train_batches(epoch, plan.batch_size, seed=plan.seed, rank=dist.rank,
                                           world=dist.world_size, device=device)
        # The epoch's record carries its last lr: set it here too, for a stop saved at the
        # epoch's last batch resumes with every batch skipped.
        lr = lr_at(plan, epoch, job.steps - 1, job.steps)
        for i, (x, y) in enumerate(batches):
            if i < skip:
                continue  # done before the stop: drawn and dropped, so later batches and crops match
            lr = lr_at(plan, epoch, i, job.steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, acc = train_step(net, optimizer, scaler, criterion, x, y, options.accum_steps, amp_dtype, sums,
                                   l1_params=bn_scales, l1=options.slim_lambda)
            state["step"] += 1
            if (i + 1) % options.log_every == 0 or i + 1 == job.steps:
                loss_v = loss.item()  # read only when logging: a GPU step never waits for the host
                _check_finite(loss_v, state["step"], epoch, plan, run, device)
                emit(StepEnd(stage="train", step=state["step"], total_steps=plan.epochs * job.steps,
                             epoch=epoch + 1, loss=loss_v, lr=lr, accuracy=acc.item(),
                             steps_per_s=(i + 1 - skip) / (time.perf_counter() - t0)))
            if should_stop is not None and distributed.broadcast_flag(should_stop(), device):
                done = distributed.all_reduce_sum(sums.tolist(), device)
                if dist.is_main:
                    save({"batch": i + 1, "sums": done})
                    emit(CheckpointSaved(stage="train", path=str(run.file(CHECKPOINT)), step=state["step"],
                                         epoch=epoch + 1))
                distributed.barrier()
                raise StopRequested(f"stopped at step {state['step']} (epoch {epoch + 1}), checkpoint saved; "
                                    f"`pfs resume {shell_path(run.path)}` continues from there")
        skip, carried = 0, None
        seconds = time.perf_counter() - t0
        loss_sum, correct, seen = distributed.all_reduce_sum(sums.tolist(), device)
        distributed.average_buffers(model)

        # -- evaluate, record, checkpoint (rank 0 writes) --
        emit(EvalStarted(stage="train", step=state["step"], images=job.source.num_test))
        test_acc, test_loss = evaluate(net, job.source, device, rank=dist.rank, world=dist.world_size,
                                       amp_dtype=amp_dtype)
        best = test_acc > state["best_acc"]
        if best:
            state["best_acc"], state["best_epoch"] = test_acc, epoch + 1
        state["epoch"] = epoch + 1
        record = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "test_acc": test_acc, "test_loss": test_loss, "lr": lr, "seconds": seconds,
                  "images_per_s": seen / seconds}
        state["history"] = [*state["history"], record]
        emit(EvalEnd(stage="train", step=state["step"], accuracy=test_acc, loss=test_loss, best=best))
        emit(EpochEnd(stage="train", epoch=epoch + 1, total_epochs=plan.epochs, train_loss=record["train_loss"],
                      train_acc=record["train_acc"], test_acc=test_acc, lr=lr,
                      images_per_s=record["images_per_s"], seconds=seconds))
        if dist.is_main:
            save({})
            emit(CheckpointSaved(stage="train", path=str(run.file(CHECKPOINT)), step=state["step"], epoch=epoch + 1))
        distributed.barrier()

    summary = _summary(run, job, state, options, device, dist.world_size)
    if dist.is_main:
        save_weights(run, model)  # model.safetensors: what load_pruned / pfs export read
        run.write_json("summary.json", summary)
    emit(RunFinished(stage="train", summary={k: v for k, v in summary.items() if k not in ("history", "learn")}))
    return summary


def _check_finite(loss: float, step: int, epoch: int, plan: Plan, run: RunDir, device) -> None:
    """Stop a diverged run as failed (rank 0 decides, so all ranks stop together)."""
    if distributed.broadcast_flag(not math.isfinite(loss), device):
        raise DivergedError(f"the training loss became {loss} by step {step} (epoch {epoch + 1}), so the "
                            f"weights are no longer numbers; lower the learning rate (now {plan.lr:g}), e.g. "
                            f"`pfs train {shell_path(run.path)} --overwrite --lr {plan.lr / 10:g}`")


def train_step(net: nn.Module, optimizer, scaler, criterion, x: torch.Tensor, y: torch.Tensor, micro: int = 1,
               amp_dtype: torch.dtype | None = None,
               sums: torch.Tensor | None = None, *, l1_params=(), l1: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step over `micro` micro-batches: the last one's loss and accuracy.

    Metrics stay on the device (0-d tensors, and loss x images / correct / images added to
    `sums`), so a GPU step never waits for the host; read them only when logging.
    `l1` > 0 adds l1 * sign(p) to the gradient of each of `l1_params`: the subgradient of
    an L1 penalty, as network slimming puts on BN scales (added after backward, so the
    loss reported stays the task loss).
    """
    x = x.contiguous(memory_format=torch.channels_last)
    optimizer.zero_grad(set_to_none=True)
    ddp = isinstance(net, nn.parallel.DistributedDataParallel)
    for j, (xm, ym) in enumerate(zip(x.chunk(micro), y.chunk(micro))):
        sync = net.no_sync() if ddp and j < micro - 1 else nullcontext()  # all-reduce once per step
        with sync, torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = net(xm)
            loss = criterion(out.float(), ym)
        scaler.scale(loss / micro).backward()
        hits = (out.argmax(1) == ym).sum()
        if sums is not None:
            sums[0] += loss.detach() * ym.numel()
            sums[1] += hits
            sums[2] += ym.numel()
    if l1:
        scale = scaler.get_scale() if scaler.is_enabled() else 1.0  # grads are scaled under fp16 AMP
        for p in l1_params:
            if p.grad is not None:
                p.grad.add_(torch.sign(p.detach()), alpha=l1 * scale)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), hits / ym.numel()


def bn_weights(model: nn.Module) -> list[nn.Parameter]:
    """The scale (gamma) of every BatchNorm layer: what network slimming penalises and ranks."""
    return [m.weight for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and m.weight.requires_grad]


@torch.no_grad()
def evaluate(net: nn.Module, source, device: torch.device, *, rank: int = 0, world: int = 1,
             batch_size: int = 500, amp_dtype: torch.dtype | None = None) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) on the test set, summed over all ranks."""
    model = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, images
    for x, y in source.test_batches(batch_size, rank=rank, world=world, device=device):
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(x)
        sums[0] += F.cross_entropy(out.float(), y, reduction="sum")
        sums[1] += (out.argmax(1) == y).sum()
        sums[2] += y.numel()
    loss_sum, correct, seen = distributed.all_reduce_sum(sums.tolist(), device)
    return correct / max(1.0, seen), loss_sum / max(1.0, seen)


def _summary(run: RunDir, job: _Job, state: dict, options: TrainOptions, device, world: int) -> dict:
    history = state["history"]
    prev = run.read_json_or_empty("summary.json")
    earlier = prev.get("learn") if prev.get("stage") == "train" else prev
    median = (lambda key: statistics.median(h[key] for h in history)) if history else (lambda key: None)
    return {
        "stage": "train", "status": "finished",
        "test_acc": history[-1]["test_acc"] if history else None,
        "best_test_acc": state["best_acc"] if history else None, "best_epoch": state["best_epoch"],
        "epochs": job.plan.epochs, "base_epochs": job.plan.base_epochs, "budget": options.budget,
        "init": options.init, "expand": options.expand, "model": job.structure.model,
        "macs": job.macs, "dense_macs": job.dense, "macs_ratio": job.macs / job.dense,
        "params": count_params(job.model), "images_per_s": median("images_per_s"),
        "epoch_seconds": median("seconds"), "device": str(device), "world_size": world,
        "plan": asdict(job.plan), "history": history, **({"learn": earlier} if earlier else {}),
    }


class _NullSink:
    def __call__(self, event) -> None:
        pass

    def close(self) -> None:
        pass


def _event_sink(run: RunDir, on_event, is_main: bool):
    """Rank 0: events.jsonl plus the caller's callback; other ranks stay silent."""
    if not is_main:
        return _NullSink()
    sink = run.event_sink()
    emit = fanout(sink, on_event)
    emit.close = sink.close
    return emit


def resume_train(run_path: str | Path, *, on_event: Callable | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Continue a killed or stopped train stage from checkpoints/last.pt."""
    return train_run(run_path, on_event=on_event, should_stop=should_stop, resume=True)


__all__ = ["INITS", "TrainOptions", "bn_weights", "evaluate", "param_groups", "pick_device", "resume_train",
           "train_run", "train_step"]
