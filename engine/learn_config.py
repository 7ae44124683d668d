"""The settings of one gate-learning run, checked before any work starts.

Apart from engine.learn's loop so that the CLI, the explorer and the grids can build and
validate a run's settings (and name the fix for a bad one) without reading the loop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.errors import PfsError

REGULARISERS = ("mean", "l1")


@dataclass(frozen=True)
class LearnConfig:
    """Settings of one gate-learning run (the paper's CIFAR defaults)."""

    sparsity: float = 0.2  # target ratio r
    gamma: float = 0.5
    reg: str = "mean"  # "mean": gamma*(mean|g| - r)^2 ; "l1": gamma*mean|g| (baseline)
    epochs: float = 10  # used when steps is None
    steps: int | None = None
    batch_size: int = 128
    lr: float = 0.01  # Adam
    eval_every: int | None = None  # steps; None = once per epoch; always also at the last step
    heldout_limit: int | None = None  # cap on held-out images per evaluation (None = all)
    snapshot_every: int = 50  # GateSnapshot period in steps (0: only at the end)
    seed: int = 0
    device: str = "cpu"  # or "auto" / "cuda": under torchrun, each process's LOCAL_RANK GPU

    def validate(self) -> None:
        """Raise PfsError naming the fix for the first setting that cannot work."""
        def fail(msg: str) -> None:
            raise PfsError(msg)

        if not is_number(self.sparsity) or not 0 <= self.sparsity <= 1:
            fail(f"sparsity (target ratio r) must be in [0, 1], got {self.sparsity!r}; e.g. --sparsity 0.2")
        if not is_number(self.gamma) or not 0 <= self.gamma < math.inf:
            fail(f"gamma must be a finite number >= 0, got {self.gamma!r}; e.g. --gamma 0.5")
        if self.reg not in REGULARISERS:
            fail(f"unknown regulariser {self.reg!r}; choose one of: {', '.join(REGULARISERS)}")
        if self.steps is not None:
            if not is_int(self.steps) or self.steps < 1:
                fail(f"steps must be a positive integer, got {self.steps!r}; or leave it out and set epochs")
        elif not is_number(self.epochs) or not 0 < self.epochs < math.inf:
            fail(f"epochs must be > 0, got {self.epochs!r}; e.g. --epochs 10 (or set --steps)")
        if not is_int(self.batch_size) or self.batch_size < 1:
            fail(f"batch_size must be a positive integer, got {self.batch_size!r}; e.g. --batch-size 128")
        if not is_number(self.lr) or not 0 < self.lr < math.inf:
            fail(f"lr must be a positive number, got {self.lr!r}; e.g. --lr 0.01")
        if self.eval_every is not None and (not is_int(self.eval_every) or self.eval_every < 1):
            fail(f"eval_every must be a positive number of steps or None (once per epoch), got {self.eval_every!r}")
        if self.heldout_limit is not None and (not is_int(self.heldout_limit) or self.heldout_limit < 1):
            fail(f"heldout_limit must be a positive number of images or None (all), got {self.heldout_limit!r}")
        if not is_int(self.snapshot_every) or self.snapshot_every < 0:
            fail(f"snapshot_every must be a number of steps >= 0, got {self.snapshot_every!r}")
        if not is_int(self.seed):
            fail(f"seed must be an integer, got {self.seed!r}")
        try:
            device = torch.device("cpu" if self.device == "auto" else self.device)
        except (RuntimeError, TypeError):
            fail(f"unknown device {self.device!r}; use 'auto', 'cpu' or 'cuda'")
        if device.type == "cuda" and not torch.cuda.is_available():
            fail(f"device {self.device!r} asked for but CUDA is not available; use --device cpu")

    def steps_per_epoch(self, n_train: int) -> int:
        """Training batches per epoch (the last partial batch is dropped)."""
        return max(1, n_train // self.batch_size)

    def total_steps(self, n_train: int) -> int:
        """Steps the run takes on `n_train` training images: `steps`, else epochs x batches."""
        if self.steps is not None:
            return self.steps
        # The small epsilon keeps e.g. 0.1 * 350 from rounding up to 36 through float error.
        return max(1, math.ceil(self.epochs * self.steps_per_epoch(n_train) - 1e-9))


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
