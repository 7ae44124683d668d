"""Write a CIFAR-10-shaped data set (3x32x32, 50k/10k, 10 classes) in CIFAR's on-disk format.

For measuring gate learning on CIFAR-shaped input where CIFAR-10 cannot be downloaded:
each Fashion-MNIST garment is padded to 32x32 and painted in a random colour on a random,
smoothly varying coloured background, so colour says nothing about the class and the
network must use shape, as on CIFAR. Loaded by `load_dataset("cifar10", ROOT)` exactly as
the real set (pickled dicts of numpy arrays under ROOT/cifar-10-batches-py/).

    python bench/make_cifar_like.py --out /tmp/cifar-like   # then --data-root /tmp/cifar-like
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import load_dataset  # noqa: E402


def paint(x: torch.Tensor, g: torch.Generator) -> np.ndarray:
    """(N,1,28,28) uint8 garments -> (N, 3*32*32) uint8 rows, CIFAR's layout."""
    n = x.shape[0]
    mask = F.pad(x.float() / 255, (2, 2, 2, 2))  # (N,1,32,32)
    fg = torch.rand(n, 3, 1, 1, generator=g)
    bg = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear", align_corners=False)
    noise = torch.rand(n, 3, 32, 32, generator=g) * 0.15
    img = (mask * fg + (1 - mask) * bg) * 0.85 + noise
    return (img * 255).round().clamp(0, 255).to(torch.uint8).reshape(n, -1).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="root folder; cifar-10-batches-py/ is made inside")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    fm = load_dataset("fashion-mnist")
    g = torch.Generator().manual_seed(args.seed)
    folder = Path(args.out) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train = paint(fm.train_x[:50000], g)
    labels = fm.train_y[:50000].tolist()
    for i in range(5):
        part = slice(i * 10000, (i + 1) * 10000)
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps({b"data": train[part], b"labels": labels[part]}))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": paint(fm.test_x, g), b"labels": fm.test_y.tolist()}))
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
