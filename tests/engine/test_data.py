from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from engine.data import augment_batch, batches, load_dataset, synthetic_dataset
from engine.errors import DataError


def test_real_fashion_mnist_shapes_labels_and_split(fashion_mnist):
    ds = fashion_mnist
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.train_x.dtype == torch.uint8
    assert ds.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    train, held = ds.heldout_split()
    assert (train.train_x.shape[0], held.train_x.shape[0]) == (55000, 5000)
    again = ds.heldout_split()[1]
    assert torch.equal(held.train_y, again.train_y)


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_a_torchvision_root(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 20)):
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.train_x.shape == (40, 1, 28, 28) and ds.test_y.tolist()[:3] == [0, 1, 2]


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", np.zeros((4, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.zeros(4))
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (4).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 10)
    with pytest.raises(DataError, match="truncated"):
        load_dataset("fashion-mnist", tmp_path)


def write_cifar(root, name="cifar10"):
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    key = b"labels" if name == "cifar10" else b"fine_labels"
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10" else ["train", "test"]
    for f in files:
        batch = {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8), key: list(range(8))}
        (folder / f).write_bytes(pickle.dumps(batch))
    return folder


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_the_torchvision_layout(tmp_path, name):
    write_cifar(tmp_path, name)
    ds = load_dataset(name, tmp_path)
    assert ds.train_x.shape == ((40 if name == "cifar10" else 8), 3, 32, 32)
    assert ds.num_classes == (10 if name == "cifar10" else 100)
    assert ds.input_size == (3, 32, 32)


def test_cifar_pickle_with_code_is_refused_not_run(tmp_path):
    folder = write_cifar(tmp_path)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}))
    with pytest.raises(DataError, match="not a CIFAR batch"):
        load_dataset("cifar10", tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_missing_data_sets_say_how_to_get_them(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path)
    with pytest.raises(DataError, match="--download"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DataError, match="choose one of"):
        load_dataset("mnist-but-wrong")


def test_crop_and_flip_move_pixels_but_keep_content():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, 2, True, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(2):  # every output pixel is an input pixel of the same image or padding
        assert set(out[i].unique().tolist()) <= set(x[i].unique().tolist()) | {0}
    assert torch.equal(augment_batch(x, 0, False), x)
    flipped = augment_batch(x, 0, True, torch.Generator().manual_seed(1))
    assert all(torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2)) for i in range(2))


def test_batches_are_normalised_and_cover_the_set_once():
    ds = synthetic_dataset(n_train=100, n_test=10)
    seen = []
    for xb, yb in batches(ds, ds.train_x, ds.train_y, 32, shuffle=True, augment=False,
                          generator=torch.Generator().manual_seed(0)):
        seen.append(yb)
        assert xb.dtype == torch.float32
    assert torch.cat(seen).sort().values.tolist() == ds.train_y.sort().values.tolist()
    full = next(batches(ds, ds.train_x, ds.train_y, 100, shuffle=False, augment=False))[0]
    assert abs(full.mean().item()) < 0.5 and 0.5 < full.std().item() < 2.0
