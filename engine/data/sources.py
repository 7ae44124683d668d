"""Batch sources: what the trainer iterates, for in-memory and on-disk data sets alike.

The trainer asks a source for "epoch e's training batches, my shard of each" and "my
shard of the test set", nothing else. Two rules make runs reproducible and DDP exact:

- the order and augmentation of epoch `e` depend only on (seed, e), so a resumed epoch
  replays the same batches as an uninterrupted run;
- every rank draws the same *global* batch and keeps its slice, so N ranks x B/N images
  see exactly the images (and crops) one process sees with a batch of B.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from engine.data.memory import Dataset, augment_batch
from engine.errors import PfsError

Batch = tuple[torch.Tensor, torch.Tensor]


class BatchSource(Protocol):
    """The trainer's view of a data set."""

    name: str
    num_classes: int
    input_size: tuple[int, int, int]
    num_train: int
    num_test: int

    def train_batches(self, epoch: int, batch_size: int, *, seed: int, rank: int = 0, world: int = 1,
                      device: torch.device | str = "cpu") -> Iterator[Batch]: ...

    def test_batches(self, batch_size: int, *, rank: int = 0, world: int = 1,
                     device: torch.device | str = "cpu") -> Iterator[Batch]: ...


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The RNG of one epoch: a function of (seed, epoch) only, never of earlier epochs."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7919 + 17) % (2**63))


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Optimiser steps in an epoch (the last partial batch is dropped)."""
    return num_train // batch_size


def shard(n: int, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous slice of `n` items split as evenly as possible."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class MemorySource:
    """Batches of an in-memory Dataset (uint8 tensors), optionally kept on the GPU."""

    def __init__(self, ds: Dataset, *, test_limit: int | None = None) -> None:
        self.ds = ds
        self.name = ds.name
        self.num_classes = ds.num_classes
        self.input_size = tuple(ds.input_size)
        self.train_x, self.train_y = ds.train_x, ds.train_y
        self.test_x, self.test_y = ds.test_x, ds.test_y
        if test_limit is not None:
            self.test_x, self.test_y = self.test_x[:test_limit], self.test_y[:test_limit]
        self.num_train = int(self.train_x.shape[0])
        self.num_test = int(self.test_x.shape[0])

    def to(self, device: torch.device | str) -> MemorySource:
        """Move the uint8 images to `device` once (small sets fit; saves a copy per batch)."""
        self.train_x, self.train_y = self.train_x.to(device), self.train_y.to(device)
        self.test_x, self.test_y = self.test_x.to(device), self.test_y.to(device)
        return self

    def _normalise(self, x: torch.Tensor, device) -> torch.Tensor:
        mean = torch.tensor(self.ds.mean, device=device).view(1, -1, 1, 1)
        inv_std = 1.0 / torch.tensor(self.ds.std, device=device).view(1, -1, 1, 1)
        return (x.to(device, non_blocking=True).float().div_(255.0) - mean).mul_(inv_std)

    def train_batches(self, epoch: int, batch_size: int, *, seed: int, rank: int = 0, world: int = 1,
                      device: torch.device | str = "cpu") -> Iterator[Batch]:
        """Rank `rank`'s shard of each global batch of epoch `epoch`, augmented, normalised."""
        if batch_size > self.num_train:
            raise PfsError(f"batch size {batch_size} is larger than the {self.num_train} training "
                           "images; lower --batch-size or raise --subset")
        g = epoch_generator(seed, epoch)
        order = torch.randperm(self.num_train, generator=g)
        for step in range(steps_per_epoch(self.num_train, batch_size)):
            ix = order[step * batch_size:(step + 1) * batch_size].to(self.train_x.device)
            # Augment the whole global batch with the shared generator, then keep this
            # rank's slice: every rank consumes the same random numbers.
            x = augment_batch(self.train_x[ix], self.ds.crop_padding, self.ds.flip, g)
            part = shard(batch_size, rank, world)
            yield self._normalise(x[part], device), self.train_y[ix][part].to(device, non_blocking=True)

    def test_batches(self, batch_size: int, *, rank: int = 0, world: int = 1,
                     device: torch.device | str = "cpu") -> Iterator[Batch]:
        """Rank `rank`'s contiguous share of the test set, in order, not augmented."""
        part = shard(self.num_test, rank, world)
        x, y = self.test_x[part], self.test_y[part]
        for start in range(0, x.shape[0], batch_size):
            yield (self._normalise(x[start:start + batch_size], device),
                   y[start:start + batch_size].to(device, non_blocking=True))
