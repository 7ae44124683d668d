"""Gate learning over torchrun's processes, equal to one process with the same global batch.

Each rank takes its slice of every global batch; BatchNorm normalises with the statistics
of the whole global batch (summed over ranks, and so are the gradient terms through them,
so the gates' gradients see every image); each rank's loss is its share of the global
loss, and the gate gradients are summed over ranks before Adam steps, identically
everywhere. The gates are one process's (tests/engine/test_learn_distributed.py): bit for
bit where that process uses this BatchNorm too, to float rounding against native BatchNorm.

Why not DDP with nn.SyncBatchNorm: SyncBatchNorm runs on GPUs only (gloo on CPU is where
this is tested), and swapping modules for it would drop the gate that GatedBatchNorm2d
folds into its affine. Every BatchNorm (gated, plain, a foreign model's) calls
`torch.nn.functional.batch_norm`, so `global_batch_norm()` swaps that one function while
a multi-process learn runs. DDP itself would only all-reduce the gates' gradients (the
weights are frozen), which `Ranks.sum_gradients` does in one call.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.distributed as dist
import torch.nn.functional as F

from engine import collective
from engine.data.sources import shard
from engine.errors import PfsError

# The BatchNorm arithmetic a run learns with, recorded in its config.json ("batch_norm").
# World-invariant: `global_batch_norm()`, in one process too, so that 1 process and N ranks
# learn the same gates bit for bit (measured 1.16x the native step on CPU). Native: torch's
# kernel, which runs made before it was recorded used and still resume with (bit for bit).
WORLD_INVARIANT = "world-invariant"
NATIVE = "native"
BATCH_NORMS = (WORLD_INVARIANT, NATIVE)


def check_batch_norm(arithmetic: str) -> None:
    """A PfsError unless `arithmetic` is one of BATCH_NORMS."""
    if arithmetic not in BATCH_NORMS:
        raise PfsError(f"unknown BatchNorm arithmetic {arithmetic!r}; choose one of: {', '.join(BATCH_NORMS)}")


def recorded_batch_norm(config: dict) -> str:
    """The BatchNorm arithmetic a run's config.json says it learns with (native before it said)."""
    return config.get("batch_norm", NATIVE)


class Ranks:
    """This process's share of the work: its slice of a batch, and the sums over all ranks.

    In a single process every method is the identity, so the learning loop has one path.
    """

    def __init__(self, info: collective.DistInfo | None = None) -> None:
        info = info or collective.DistInfo()
        self.rank, self.world = info.rank, info.world_size

    @classmethod
    def from_env(cls) -> Ranks:
        """The ranks torchrun started (one process without torchrun or a joined group)."""
        info = collective.from_env()
        return cls(info if dist.is_available() and dist.is_initialized() else None)

    @property
    def enabled(self) -> bool:
        return self.world > 1 and dist.is_available() and dist.is_initialized()

    def check_batch(self, batch_size: int) -> None:
        """A PfsError unless the global batch splits evenly over the ranks."""
        if batch_size % self.world:
            raise PfsError(f"--batch-size {batch_size} must split evenly over {self.world} processes; "
                           f"pick a multiple of {self.world}")

    def mine(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's contiguous slice of a global batch (all of it in a single process)."""
        if not self.enabled:
            return x, y
        part = shard(x.shape[0], self.rank, self.world)
        return x[part], y[part]

    def sum_gradients(self, params: list[torch.Tensor]) -> None:
        """Sum the parameters' gradients over ranks, in one all-reduce."""
        if not self.enabled:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def sums(self, values: list[float], device: torch.device | str = "cpu") -> list[float]:
        """Element-wise sums over ranks (float64)."""
        return collective.all_reduce_sum(values, device) if self.enabled else list(values)

    def stop(self, flag: bool, device: torch.device | str = "cpu") -> bool:
        """Rank 0's stop request on every rank, so all stop at the same step."""
        return collective.broadcast_flag(flag, device) if self.enabled else flag

    def batch_norm(self, arithmetic: str = WORLD_INVARIANT):
        """The context BatchNorm runs in: the global batch's statistics over ranks, and in one
        process too unless the run learns with torch's native kernel (runs made before)."""
        check_batch_norm(arithmetic)
        return global_batch_norm() if self.enabled or arithmetic == WORLD_INVARIANT else nullcontext()


@contextmanager
def global_batch_norm() -> Iterator[None]:
    """Make every train-mode BatchNorm normalise over the images of all ranks together."""
    original = F.batch_norm

    def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
                   momentum=0.1, eps=1e-5):
        if not training:
            return original(input, running_mean, running_var, weight, bias, training, momentum, eps)
        return _global_batch_norm(input, running_mean, running_var, weight, bias, momentum, eps)

    F.batch_norm = batch_norm
    try:
        yield
    finally:
        F.batch_norm = original


def _global_batch_norm(x: torch.Tensor, running_mean, running_var, weight, bias, momentum: float,
                       eps: float) -> torch.Tensor:
    """Train-mode BatchNorm over every rank's images at once; running statistics as F.batch_norm keeps them."""
    out, mean, var, n = _GlobalBatchNorm.apply(x, weight, bias, eps)
    if running_mean is not None:
        with torch.no_grad():  # as F.batch_norm: the running variance is unbiased, the batch's biased
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            unbiased = var * (n / max(n - 1, 1))
            running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
    return out


class _GlobalBatchNorm(torch.autograd.Function):
    """BatchNorm with the statistics, and the gradient terms through them, summed over ranks.

    The formulas of SyncBatchNorm (whose kernels exist for CUDA only). Every per-channel
    sum is each image's sum, then the images' sum in float64 (`_channel_sums`): the same
    numbers however the global batch is split, so N ranks learn one process's gates bit
    for bit (Adam turns any rounding difference in a near-zero gate gradient into a step of
    its own). Memory passes are what cost on CPU: the backward pass computes the input's
    gradient as scale * grad + b * x + k in two fused passes (addcmul) from two per-channel
    sums. (`torch.var_mean` per image, tried for the forward pass, ran 6x slower than these
    sums on channels_last tensors.)
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        shape = _channel_shape(x)
        local = torch.cat([_channel_sums(x),
                           torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)])
        _sum_over_ranks(local)
        n, mean = local[-1].item(), local[:-1] / local[-1]
        mean_x = mean.to(x.dtype)
        # Deviations from the rounded mean, corrected by the rounding: exact to float64 sums.
        squares = _channel_sums((x - mean_x.view(shape)).square_())
        _sum_over_ranks(squares)
        var = squares / n - (mean - mean_x.double()) ** 2
        invstd = torch.rsqrt(var + eps)
        # The elementwise part is an eval-mode BatchNorm with the global statistics.
        out = F.batch_norm(x, mean_x, var.to(x.dtype), weight, bias, False, 0.0, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.n = n
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var, n

    @staticmethod
    def backward(ctx, grad, _mean, _var, _n):
        x, weight, mean, invstd = ctx.saved_tensors
        shape, c = _channel_shape(x), x.shape[1]
        # sum(grad) and sum(grad * x) per channel; sum(grad * x_hat) follows from them (it
        # loses digits to cancellation only where a channel's mean is many times its spread,
        # which BatchNorm's inputs in a network are not)
        both = torch.cat([_channel_sums(grad), _channel_sums(grad * x)])
        _sum_over_ranks(both)
        sum_dy = both[:c]
        sum_dy_xhat = (both[c:] - mean * sum_dy) * invstd
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        grad_x = grad_w = grad_b = None
        # The affine's gradients: the global sums' 1/world share on each rank, which the
        # gates' all-reduce adds up again (exactly, for a power-of-two world).
        if ctx.needs_input_grad[1]:
            grad_w = (sum_dy_xhat / world).to(weight.dtype)
        if ctx.needs_input_grad[2]:
            grad_b = (sum_dy / world).to(grad.dtype)
        if ctx.needs_input_grad[0]:
            # scale * (grad - mean(grad) - x_hat * mean(grad * x_hat)) = scale * grad + b * x + k
            scale = invstd if weight is None else invstd * weight.double()
            b = -scale * invstd * sum_dy_xhat / ctx.n
            k = -scale * sum_dy / ctx.n - b * mean
            scale, b, k = (t.to(x.dtype).view(shape) for t in (scale, b, k))
            grad_x = torch.addcmul(k, x, b).addcmul_(grad, scale)
        return grad_x, grad_w, grad_b, None


def _channel_sums(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sums of `t` in float64: each image's sum in t's dtype, then the images' in float64.

    An image's sum is computed alike however the batch is split over ranks, so one process
    and N ranks reach the same totals. (A float64 copy of the whole tensor would be more
    precise and measured 3-4x slower than BatchNorm itself on CPU.)
    """
    per_image = t.sum(list(range(2, t.dim()))) if t.dim() > 2 else t
    return per_image.double().sum(0)


def _channel_shape(x: torch.Tensor) -> list[int]:
    """The shape a per-channel vector takes to broadcast over `x`."""
    return [1, -1] + [1] * (x.dim() - 2)


def _sum_over_ranks(t: torch.Tensor) -> None:
    """Sum `t` over ranks in place (nothing to do in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
