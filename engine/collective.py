"""The torchrun process group: where this process sits, joining and leaving, small reductions.

`torchrun --nproc_per_node N -m engine learn|train|run ...` starts N copies of the same
command with RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT set; without those
variables everything here degrades to a single process (rank 0 of 1), so gate learning and
retraining each have one path. A layer below the method: gate learning needs it as much as
the retraining loop does.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.errors import PfsError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, world size and its local GPU index."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and events; the others just compute."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_env() -> DistInfo:
    """The DistInfo torchrun's environment describes (single process when it is unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise PfsError("RANK / WORLD_SIZE / LOCAL_RANK must be integers; launch with torchrun") from None
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def setup(device_type: str) -> DistInfo:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); no-op alone."""
    info = from_env()
    if not info.enabled or dist.is_initialized():
        return info
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


@contextmanager
def process_group(device_type: str) -> Iterator[DistInfo]:
    """Join torchrun's group for the block, and leave it after only if this block joined it.

    `pfs run` learns, searches and trains in one group: the stages' own blocks then find
    it joined and leave it to the outer one (a group left cannot be joined again cleanly).
    """
    joined = not (dist.is_available() and dist.is_initialized())
    info = setup(device_type)
    try:
        yield info
    finally:
        if joined:
            teardown()


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto`: CUDA when present, else CPU; asking for CUDA without one is a PfsError.

    Under torchrun each process takes the GPU of its LOCAL_RANK (unless `name` names one).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PfsError("--device cuda but no CUDA device is visible; use --device cpu or auto")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def peer_lost(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another process of the job died.

    gloo raises a plain RuntimeError ("Connection closed by peer"), nccl a DistError.
    """
    if not (dist.is_available() and dist.is_initialized()) and from_env().world_size == 1:
        return False
    text = str(exc)
    return isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError) and (
        "closed by peer" in text or "Connection reset" in text or "remote worker" in text))


def teardown() -> None:
    """Leave the process group (so the next run in this process can join a new one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sum of `values` over all ranks (identity in a single process).

    Float64 so that sums of per-rank counts and losses are exact enough to compare a
    2-rank run with a single process.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_flag(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Rank 0's value of `flag` on every rank (a stop request must stop all ranks together)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())
