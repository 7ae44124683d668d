"""Named data sets, loaded into memory: Fashion-MNIST, CIFAR-10/100 and a synthetic set.

`load_dataset(name)` is the one entry point; `imagefolder:PATH` hands over to the streamed
folder sets of engine.data.imagefolder. CIFAR batches are read through a restricted
unpickler, so a planted pickle never runs.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.data.memory import Dataset
from engine.errors import DataError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


DATASETS = ("fashion-mnist", "cifar10", "cifar100", "synthetic")


SHAPES = {"fashion-mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10),
          "cifar100": ((3, 32, 32), 100), "synthetic": ((3, 32, 32), 10)}


def dataset_shape(name: str) -> tuple[tuple[int, int, int], int]:
    """(input size, class count) of a named data set, without loading it."""
    if name not in SHAPES:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}, imagefolder:PATH")
    return SHAPES[name]


def dataset_names() -> list[str]:
    """Names load_dataset accepts (plus `imagefolder:PATH` where supported)."""
    return list(DATASETS)


def load_dataset(name: str, root: str | os.PathLike | None = None, *, download: bool = False) -> Dataset:
    """Load a data set by name; a missing data set is a DataError that says how to get it."""
    if name == "fashion-mnist":
        return _fashion_mnist(root, download)
    if name in ("cifar10", "cifar100"):
        return _cifar(name, root, download)
    if name == "synthetic":
        return synthetic_dataset()
    if name.startswith("imagefolder:"):
        # Too big for memory: a streamed folder set (engine.data.imagefolder), not a Dataset.
        from engine.data.imagefolder import load_imagefolder

        return load_imagefolder(name.split(":", 1)[1])
    raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}, imagefolder:PATH")


def absolute_data_paths(data_root: str | None, dataset: str) -> tuple[str | None, str]:
    """`--data-root` and `imagefolder:PATH` made absolute, so a run finds its data from anywhere."""
    root = str(Path(data_root).expanduser().resolve()) if data_root else None
    if dataset.startswith("imagefolder:"):
        dataset = "imagefolder:" + str(Path(dataset.split(":", 1)[1]).expanduser().resolve())
    return root, dataset


def moved_data(config: dict, data_root: str | None) -> dict:
    """The config entries that point a run at its data in `data_root` (for data that moved).

    For `imagefolder:PATH` runs the folder itself moves; for the others, the root that
    holds the data set. Empty when `data_root` is None.
    """
    if not data_root:
        return {}
    root, _ = absolute_data_paths(data_root, "")
    if str(config.get("dataset", "")).startswith("imagefolder:"):
        return {"dataset": f"imagefolder:{root}"}
    return {"data_root": root}


def shaped_data(ds, subset: int | None = None, image_size: int | None = None, workers: int | None = None):
    """The data set cut to `subset` training images, cropped to `image_size` and decoded by
    `workers` processes (the last two for image folders only), as learn and train take them."""
    if subset:
        ds = ds.subset(int(subset))
    if image_size:
        if isinstance(ds, Dataset):
            raise DataError("--image-size only applies to imagefolder:PATH data sets")
        ds = ds.with_image_size(int(image_size))
    if workers is not None and not isinstance(ds, Dataset):
        ds = replace(ds, workers=int(workers))
    return ds


# -- Fashion-MNIST --------------------------------------------------------------------
def _fashion_mnist(root, download: bool) -> Dataset:
    folder = _find_fashion_folder(root)
    if folder is None and download:
        folder = _download_torchvision("FashionMNIST", root)
    if folder is None:
        where = f"{root}" if root else f"{DEBIAN_FASHION_MNIST} or ./data"
        raise DataError(f"Fashion-MNIST not found in {where}; install it with "
                        "`apt-get install dataset-fashion-mnist`, pass --data-root DIR, "
                        "or add --download (needs internet; `pfs learn`, `prune` and `run` take it)")
    parts = {split: _fashion_split(folder, img, lbl) for split, (img, lbl) in FASHION_FILES.items()}
    (trx, try_), (tex, tey) = parts["train"], parts["test"]
    return Dataset("fashion-mnist", torch.from_numpy(trx).unsqueeze(1), torch.from_numpy(try_).long(),
                   torch.from_numpy(tex).unsqueeze(1), torch.from_numpy(tey).long(), 10,
                   mean=(0.2860,), std=(0.3530,), crop_padding=2, flip=True, heldout_size=5000,
                   class_names=tuple(FASHION_CLASSES))


def _fashion_split(folder: Path, images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """One split's images [N, 28, 28] and labels [N] in 0..9, each file checked against the other."""
    x, y = _read_idx(folder, images), _read_idx(folder, labels)
    img_path, lbl_path = _idx_path(folder, images), _idx_path(folder, labels)
    if x.ndim != 3 or x.shape[0] == 0:
        raise DataError(f"{img_path} holds no 2-D images (shape {list(x.shape)}); re-install the data set")
    if y.ndim != 1:
        raise DataError(f"{lbl_path} is not a label file (shape {list(y.shape)}); re-install the data set")
    _check_labels(y, len(x), 10, lbl_path, img_path)
    return x, y


def _check_labels(labels: np.ndarray, images: int, classes: int, path: Path, image_path: Path) -> None:
    """DataError naming `path` unless there is one label per image, each in 0..classes-1."""
    if len(labels) != images:
        raise DataError(f"{path} has {len(labels)} labels for the {images} images of {image_path.name}; "
                        "the data set is damaged, download or install it again")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(f"{path} has labels from {labels.min()} to {labels.max()}, outside 0..{classes - 1}; "
                        "the data set is damaged, download or install it again")


def _find_fashion_folder(root) -> Path | None:
    candidates = []
    if root:
        r = Path(root)
        candidates += [r, r / "FashionMNIST" / "raw", r / "fashion-mnist"]
    else:
        candidates += [DEBIAN_FASHION_MNIST, Path("data") / "FashionMNIST" / "raw"]
    for c in candidates:
        if all(_idx_path(c, f) is not None for pair in FASHION_FILES.values() for f in pair):
            return c
    return None


def _idx_path(folder: Path, stem: str) -> Path | None:
    for p in (folder / stem, folder / f"{stem}.gz"):
        if p.is_file():
            return p
    return None


def _read_idx(folder: Path, stem: str) -> np.ndarray:
    """An IDX file (the MNIST format: magic, dims, big-endian uint8 payload) as an array."""
    path = _idx_path(folder, stem)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} cannot be read ({exc}); re-install the data set") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or len(raw) < 4 + 4 * raw[3]:
        raise DataError(f"{path} is not a uint8 IDX file; re-install the data set")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    payload = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({payload.size} of {int(np.prod(dims))} bytes); re-install it")
    return payload.reshape(dims).copy()


# -- CIFAR ----------------------------------------------------------------------------
CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                b"labels", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "CIFAR10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100,
                 (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "CIFAR100"),
}


def _cifar(name: str, root, download: bool) -> Dataset:
    folder_name, train_files, test_files, label_key, classes, mean, std, tv_name = CIFAR[name]
    base = Path(root) if root else Path("data")
    folder = base / folder_name
    if not folder.is_dir() and download:
        _download_torchvision(tv_name, base)
    if not folder.is_dir():
        raise DataError(f"{name} not found: expected {folder}/ (torchvision's layout); "
                        "pass --data-root DIR holding it, or add --download (needs internet; `pfs learn`, "
                        "`prune` and `run` take it)")
    trx, try_ = _cifar_batches(folder, train_files, label_key, classes)
    tex, tey = _cifar_batches(folder, test_files, label_key, classes)
    return Dataset(name, trx, try_, tex, tey, classes, mean=mean, std=std, crop_padding=4, flip=True,
                   heldout_size=5000, class_names=tuple(CIFAR10_CLASSES) if classes == 10 else ())


def _cifar_batches(folder: Path, files: list[str], label_key: bytes,
                   classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of CIFAR batch files, each file checked: a damaged one is named."""
    xs, ys = [], []
    for f in files:
        path = folder / f
        if not path.is_file():
            raise DataError(f"{path} is missing; the CIFAR folder is incomplete, download it again")
        try:
            batch = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
            data, labels = batch[b"data"], batch[label_key]
            if isinstance(data, (str, bytes)) or isinstance(labels, (str, bytes)):
                raise TypeError("data and labels must be arrays")
            x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(labels, dtype=np.int64).reshape(-1)
        except (pickle.UnpicklingError, KeyError, ValueError, TypeError, IndexError, EOFError) as exc:
            raise DataError(f"{path} is not a CIFAR batch ({type(exc).__name__}: {str(exc)[:80]}); "
                            "download it again") from None
        if len(x) == 0:
            raise DataError(f"{path} holds no images; download the data set again")
        _check_labels(y, len(x), classes, path, path)
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


class _SafeUnpickler(pickle.Unpickler):
    """CIFAR ships pickles; allow only what rebuilds numpy arrays, never arbitrary code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _download_torchvision(tv_name: str, root) -> Path:
    import torchvision

    base = Path(root) if root else Path("data")
    try:
        getattr(torchvision.datasets, tv_name)(str(base), train=True, download=True)
        getattr(torchvision.datasets, tv_name)(str(base), train=False, download=True)
    except Exception as exc:  # network errors come in many types; all mean the same to a user
        raise DataError(f"could not download {tv_name} into {base} ({type(exc).__name__}); "
                        "check the internet connection or place the files there by hand") from None
    return base / tv_name / "raw" if tv_name == "FashionMNIST" else base


# -- synthetic ------------------------------------------------------------------------
def synthetic_dataset(n_train: int = 2000, n_test: int = 500, num_classes: int = 10,
                      size: tuple[int, int, int] = (3, 32, 32), seed: int = 0) -> Dataset:
    """A learnable stand-in for tests: each class is a smooth random template plus noise."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = size
    templates = F.interpolate(torch.rand(num_classes, c, 4, 4, generator=g), size=(h, w),
                              mode="bilinear", align_corners=False)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = templates[y] * 0.6 + torch.rand(n, c, h, w, generator=g) * 0.4
        return (x * 255).round().clamp(0, 255).to(torch.uint8), y

    (trx, try_), (tex, tey) = draw(n_train), draw(n_test)
    return Dataset("synthetic", trx, try_, tex, tey, num_classes, mean=(0.5,) * c, std=(0.25,) * c,
                   crop_padding=2, flip=False, heldout_size=max(1, n_train // 10))
