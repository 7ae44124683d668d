"""In-memory data sets: images as one uint8 tensor, batched and augmented on tensors.

Small data sets (Fashion-MNIST, CIFAR, synthetic) fit in memory many times over; keeping
them as one uint8 tensor and cropping/flipping whole batches at once beats a DataLoader
with worker processes on a 2-core machine, and keeps runs reproducible from a seed.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from engine.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 [N, C, H, W] tensors with int64 labels, and how to normalise/augment them."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 4
    flip: bool = True
    heldout_size: int = 5000
    class_names: tuple[str, ...] = ()

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def subset(self, n: int) -> Dataset:
        """Only the first `n` training images (quick runs)."""
        if n < 1:
            raise DataError(f"--subset must be a positive number of images, got {n}")
        return replace(self, train_x=self.train_x[:n], train_y=self.train_y[:n],
                       heldout_size=min(self.heldout_size, max(1, n // 10)))

    def heldout_split(self, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(train, held-out): the held-out images come from the training set (gate selection).

        Both parts are Datasets whose `train_*` is the respective slice; the split depends
        only on `seed`, so every run on a data set selects gates on the same images.
        """
        n = self.train_x.shape[0]
        k = min(self.heldout_size, n // 2)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        held, rest = perm[:k].sort().values, perm[k:].sort().values
        return (replace(self, train_x=self.train_x[rest], train_y=self.train_y[rest]),
                replace(self, train_x=self.train_x[held], train_y=self.train_y[held]))


def batches(ds: Dataset, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
            augment: bool, generator: torch.Generator | None = None, drop_last: bool = False,
            device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised float batches of (x, y); augmentation (crop + flip) is done per batch."""
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    mean = torch.tensor(ds.mean, device=device).view(1, -1, 1, 1)
    inv_std = 1.0 / torch.tensor(ds.std, device=device).view(1, -1, 1, 1)
    for start in range(0, stop, batch_size):
        ix = order[start:start + batch_size]
        xb = x[ix].to(device, non_blocking=True)
        if augment:
            xb = augment_batch(xb, ds.crop_padding, ds.flip, generator)
        xb = (xb.float().div_(255.0) - mean).mul_(inv_std)
        yield xb, y[ix].to(device, non_blocking=True)


def augment_batch(x: torch.Tensor, padding: int, flip: bool,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, for a whole uint8 batch."""
    n, _, h, w = x.shape
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        rows = (oy[:, None] + torch.arange(h))[:, :, None].to(x.device)
        cols = (ox[:, None] + torch.arange(w))[:, None, :].to(x.device)
        batch = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
        x = torch.where(mask, x.flip(3), x)
    return x.contiguous()
