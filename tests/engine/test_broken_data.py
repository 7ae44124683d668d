"""Broken data is one clear line naming the file, found before any run directory is made."""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.data import load_dataset
from engine.errors import DataError


def write_folder(root, n_train: int, n_val: int, size: int):
    """root/{train,val}/{cat,dog,fish}/NNN.png: plain colour images, one colour per class."""
    for split, n in (("train", n_train), ("val", n_val)):
        for c, name in enumerate(("cat", "dog", "fish")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                img = np.zeros((size, size, 3), dtype=np.uint8)
                img[..., c] = 200 + i
                Image.fromarray(img).save(root / split / name / f"{i:03d}.png")
    return root


def _cifar_batch(path, n: int = 20, labels=None, data=None) -> None:
    rng = np.random.default_rng(0)
    batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8) if data is None else data,
             b"labels": list(rng.integers(0, 10, n)) if labels is None else labels}
    path.write_bytes(pickle.dumps(batch))


def _cifar_folder(root, **broken_test_batch) -> str:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _cifar_batch(folder / f"data_batch_{i}")
    _cifar_batch(folder / "test_batch", **broken_test_batch)
    return str(root)


def _learn(tmp_path, *args) -> list[str]:
    return ["learn", "resnet20", "--steps", "1", "--batch-size", "8", "--expand", "0.25", "--quiet",
            "--out", str(tmp_path / "run"), *args]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pfs: error: "), err
    return err[0]


@pytest.mark.parametrize(("broken", "says"), [
    ({"labels": [12] * 20}, "labels from 12 to 12, outside 0..9"),
    ({"labels": [1] * 7}, "has 7 labels for the 20 images"),
    ({"n": 0, "labels": []}, "holds no images"),
    ({"labels": {"a": 1}}, "is not a CIFAR batch"),
    ({"data": "pixels"}, "is not a CIFAR batch"),
    ({"data": np.zeros(100, dtype=np.uint8)}, "is not a CIFAR batch"),
])
def test_a_damaged_cifar_batch_is_named_before_a_run_is_made(tmp_path, capsys, broken, says):
    root = _cifar_folder(tmp_path / "data", **broken)
    assert main(_learn(tmp_path, "--dataset", "cifar10", "--data-root", root)) == 2
    line = _one_error_line(capsys)
    assert says in line and "test_batch" in line
    assert not (tmp_path / "run").exists()


def test_fashion_mnist_with_mismatched_or_out_of_range_labels_names_the_file(tmp_path):
    def idx(path, array: np.ndarray) -> None:
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))

    images = np.zeros((6, 28, 28))
    for name, labels in (("train", np.arange(6) % 10), ("t10k", np.arange(6) % 10)):
        idx(tmp_path / f"{name}-images-idx3-ubyte.gz", images)
        idx(tmp_path / f"{name}-labels-idx1-ubyte.gz", labels)
    assert load_dataset("fashion-mnist", tmp_path).train_x.shape == (6, 1, 28, 28)
    idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz has 3 labels for the 6 images"):
        load_dataset("fashion-mnist", tmp_path)
    idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 4, 11]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz has labels from 0 to 11"):
        load_dataset("fashion-mnist", tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03\x00"))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not a uint8 IDX file"):
        load_dataset("fashion-mnist", tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz cannot be read"):
        load_dataset("fashion-mnist", tmp_path)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_jpeg_in_an_image_folder_is_one_error_naming_it(tmp_path, workers):
    root = write_folder(tmp_path / "imgs", n_train=4, n_val=2, size=16)
    bad = root / "train" / "dog" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a header, then nothing decodable
    ds = load_dataset(f"imagefolder:{root}").with_image_size(16)
    with pytest.raises(DataError) as info:
        for _ in ds.source(workers=workers).train_batches(0, 12, seed=0):
            pass
    message = str(info.value)
    assert message == f"cannot decode {bad}: not a readable image; remove or replace the file"


def test_pfs_train_on_an_image_folder_with_a_corrupt_image_prints_one_line(tmp_path, capsys, make_run):
    root = write_folder(tmp_path / "imgs", n_train=4, n_val=2, size=16)
    bad = root / "val" / "fish" / "000.png"
    bad.write_bytes(b"GIF89a broken")
    run, _, _ = make_run(tmp_path / "run", dataset=f"imagefolder:{root}", input_size=(3, 16, 16), num_classes=3)
    code = main(["train", str(run.path), "--epochs", "1", "--image-size", "16", "--batch-size", "4",
                 "--workers", "1", "--device", "cpu", "--quiet"])
    assert code == 2
    assert _one_error_line(capsys) == \
        f"pfs: error: cannot decode {bad}: not a readable image; remove or replace the file"


def test_a_one_class_image_folder_loads_with_a_one_line_warning(tmp_path, capsys):
    for split in ("train", "val"):
        d = tmp_path / split / "only"
        d.mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(d / "a.png")
    assert main(["flops", "resnet20", "--dataset", "cifar10"]) == 0  # warm the CLI path
    capsys.readouterr()
    with pytest.warns(UserWarning, match="has one class"):
        load_dataset(f"imagefolder:{tmp_path}")
    code = main(["learn", "resnet20", "--dataset", f"imagefolder:{tmp_path}", "--batch-size", "1000",
                 "--steps", "1", "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[0].startswith("pfs: warning: ") and "has one class (only)" in err[0]
    assert err[1].startswith("pfs: error: --batch-size 1000 is larger")  # refused before any run is made
    assert not (tmp_path / "run").exists()
