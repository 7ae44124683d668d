"""ImageNet-style folders (`imagefolder:PATH`): PATH/train/<class>/*.jpg and PATH/val/<class>/*.

Such sets do not fit in memory, so images are decoded with PIL in DataLoader worker
processes and streamed. Batches follow the same rules as engine.data.sources: the order and
the random crops of epoch `e` depend only on (seed, e, image), and every rank takes its
slice of the same global batch. Images travel as uint8 and are normalised on the device.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from engine.data.sources import Batch, epoch_generator, shard, steps_per_epoch
from engine.errors import DataError, PfsWarning

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageFolderDataset:
    """The file lists of an image folder; images are read only when batches are drawn."""

    name: str
    root: Path
    classes: tuple[str, ...]
    train_files: tuple[tuple[str, int], ...]
    test_files: tuple[tuple[str, int], ...]
    image_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    heldout_size: int = 10000
    workers: int = min(4, os.cpu_count() or 1)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classes

    def with_image_size(self, size: int) -> ImageFolderDataset:
        """The same folder, cropped to `size` x `size` (224 for ImageNet)."""
        if size < 8:
            raise DataError(f"--image-size must be at least 8 pixels, got {size}")
        return replace(self, image_size=size)

    def subset(self, n: int) -> ImageFolderDataset:
        """`n` training images spread over all classes (a fixed, seed-independent pick)."""
        if n < 1:
            raise DataError(f"--subset must be a positive number of images, got {n}")
        pick = torch.randperm(len(self.train_files), generator=torch.Generator().manual_seed(0))[:n]
        return replace(self, train_files=tuple(self.train_files[i] for i in sorted(pick.tolist())),
                       heldout_size=min(self.heldout_size, max(1, n // 10)))

    def heldout_split(self, seed: int = 0) -> tuple[ImageFolderDataset, ImageFolderDataset]:
        """(train, held-out) parts of the training files, for gate selection.

        The held-out part lists its images as both train and test files, so its batch
        source evaluates them centre-cropped (test_batches), as a held-out set should be.
        """
        n = len(self.train_files)
        k = min(self.heldout_size, n // 2)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        held = tuple(self.train_files[i] for i in sorted(perm[:k]))
        rest = tuple(self.train_files[i] for i in sorted(perm[k:]))
        return replace(self, train_files=rest), replace(self, train_files=held, test_files=held)

    def source(self, *, workers: int | None = None, test_limit: int | None = None) -> FolderSource:
        """A batch source over this folder (see engine.data.sources.BatchSource)."""
        return FolderSource(self, workers=self.workers if workers is None else workers, test_limit=test_limit)


def load_imagefolder(path: str | os.PathLike) -> ImageFolderDataset:
    """Scan PATH/train and PATH/val; a wrong layout is a DataError that shows the right one."""
    root = Path(path).expanduser()
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise DataError(f"imagefolder:{path} needs {train_dir}/ and {val_dir}/, each with one "
                        "sub-folder of images per class (the ImageNet layout)")
    classes = tuple(sorted(d.name for d in train_dir.iterdir() if d.is_dir()))
    if not classes:
        raise DataError(f"{train_dir} has no class sub-folders; put each class's images in "
                        f"{train_dir}/<class name>/")
    unknown = sorted(d.name for d in val_dir.iterdir() if d.is_dir() and d.name not in classes)
    if unknown:
        raise DataError(f"{val_dir} has classes not in train/: {', '.join(unknown[:5])}; "
                        "val/ must use the train/ class folder names")
    if len(classes) == 1:
        warnings.warn(f"{train_dir} has one class ({classes[0]}): every prediction is right and accuracy "
                      "says nothing; add one sub-folder per class", PfsWarning, stacklevel=2)
    index = {c: i for i, c in enumerate(classes)}
    train, test = _scan(train_dir, index), _scan(val_dir, index)
    if not train or not test:
        empty = train_dir if not train else val_dir
        raise DataError(f"{empty} holds no images ({', '.join(EXTENSIONS)}); check the path")
    return ImageFolderDataset(name=f"imagefolder:{path}", root=root, classes=classes,
                              train_files=train, test_files=test)


def _scan(folder: Path, index: dict[str, int]) -> tuple[tuple[str, int], ...]:
    out = []
    for cls in sorted(index):
        d = folder / cls
        if d.is_dir():
            out += [(str(p), index[cls]) for p in sorted(d.iterdir())
                    if p.suffix.lower() in EXTENSIONS and p.is_file()]
    return tuple(out)


class _Files(torch.utils.data.Dataset):
    """Decodes one image to a uint8 [3, S, S] tensor: random-resized crop + flip, or resize + centre crop."""

    def __init__(self, files, image_size: int, train: bool, seed: int = 0) -> None:
        self.files, self.size, self.train, self.seed = files, image_size, train, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        from torchvision.transforms import v2

        path, label = self.files[i]
        try:
            with Image.open(path) as im:
                img = v2.functional.pil_to_tensor(im.convert("RGB"))
        except Exception:  # PIL fails in many types (OSError, SyntaxError, DecompressionBombError)
            # Raised here, in a worker, it would reach the user as a worker traceback: hand the
            # main process a blank image labelled -1-i instead, and it names the file (_loader).
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), -1 - i
        if not self.train:
            img = v2.functional.resize(img, int(round(self.size / 0.875)), antialias=True)
            return v2.functional.center_crop(img, [self.size, self.size]), label
        # Crops are a function of (epoch seed, image index) only, whatever worker draws them.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 2_000_003 + i)
            img = v2.RandomResizedCrop(self.size, antialias=True)(img)
            if torch.rand(()) < 0.5:
                img = img.flip(-1)
        return img.contiguous(), label


class FolderSource:
    """BatchSource over an ImageFolderDataset, decoding in `workers` processes."""

    def __init__(self, ds: ImageFolderDataset, *, workers: int = 4, test_limit: int | None = None) -> None:
        self.ds = ds
        self.name = ds.name
        self.num_classes = ds.num_classes
        self.input_size = ds.input_size
        self.workers = max(0, workers)
        self.test_files = ds.test_files[:test_limit] if test_limit else ds.test_files
        self.num_train = len(ds.train_files)
        self.num_test = len(self.test_files)

    def _loader(self, files, batches: list[list[int]], train: bool, seed: int, device) -> Iterator[Batch]:
        cuda = torch.device(device).type == "cuda"
        loader = DataLoader(_Files(files, self.ds.image_size, train, seed), batch_sampler=batches,
                            num_workers=self.workers, pin_memory=cuda,
                            persistent_workers=False, prefetch_factor=4 if self.workers else None)
        mean = torch.tensor(self.ds.mean, device=device).view(1, -1, 1, 1)
        inv_std = 1.0 / torch.tensor(self.ds.std, device=device).view(1, -1, 1, 1)
        for x, y in loader:
            if (y < 0).any():
                path = files[-1 - int(y[y < 0][0])][0]
                raise DataError(f"cannot decode {path}: not a readable image; remove or replace the file")
            x = x.to(device, non_blocking=True).float().div_(255.0)
            yield (x - mean).mul_(inv_std), y.to(device, non_blocking=True)

    def train_batches(self, epoch: int, batch_size: int, *, seed: int, rank: int = 0, world: int = 1,
                      device: torch.device | str = "cpu") -> Iterator[Batch]:
        if batch_size > self.num_train:
            raise DataError(f"batch size {batch_size} is larger than the {self.num_train} training "
                            "images; lower --batch-size or raise --subset")
        g = epoch_generator(seed, epoch)
        order = torch.randperm(self.num_train, generator=g).tolist()
        part = shard(batch_size, rank, world)
        batches = [order[s * batch_size:(s + 1) * batch_size][part]
                   for s in range(steps_per_epoch(self.num_train, batch_size))]
        epoch_seed = int(torch.randint(0, 2**31 - 1, (), generator=g))
        return self._loader(self.ds.train_files, batches, True, epoch_seed, device)

    def test_batches(self, batch_size: int, *, rank: int = 0, world: int = 1,
                     device: torch.device | str = "cpu") -> Iterator[Batch]:
        mine = list(range(self.num_test))[shard(self.num_test, rank, world)]
        batches = [mine[s:s + batch_size] for s in range(0, len(mine), batch_size)]
        return self._loader(self.test_files, batches, False, 0, device)
