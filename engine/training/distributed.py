"""DDP helpers of the retraining loop; the process group itself is engine.collective's."""
from __future__ import annotations

import torch
import torch.distributed as dist

from engine.collective import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_flag,
    from_env,
    pick_device,
    process_group,
    setup,
    teardown,
)

__all__ = ["DistInfo", "all_reduce_sum", "average_buffers", "barrier", "broadcast_flag", "from_env", "pick_device",
           "process_group", "setup", "teardown"]


@torch.no_grad()
def average_buffers(model: torch.nn.Module) -> None:
    """Average BN running statistics over ranks, so rank 0's checkpoint sees all shards.

    DDP runs with broadcast_buffers=False (each rank normalises its own shard, like the
    paper's multi-GPU code), so the running stats drift apart during an epoch.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for name, buf in model.named_buffers():
        if buf.is_floating_point() and "running_" in name:
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world)
