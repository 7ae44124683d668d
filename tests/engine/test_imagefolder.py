"""`imagefolder:PATH` data sets: layout checks, replayable sharded batches, ImageNet recipe training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import load_dataset
from engine.errors import DataError
from engine.gating import create_model
from engine.runs import RunDir
from engine.search import search
from engine.training.train import TrainOptions, train_run

CLASSES = ("cat", "dog", "fish")


def write_folder(root, n_train: int = 12, n_val: int = 4, size: int = 48):
    """ImageNet layout: root/{train,val}/<class>/*.png, each class a distinct noisy colour."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                base = np.zeros((size, size + 8, 3))
                base[..., c] = 200
                img = np.clip(base + rng.integers(0, 55, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:03d}.png")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("imgs"))


def test_loads_classes_and_files_from_the_imagenet_layout(folder):
    ds = load_dataset(f"imagefolder:{folder}")
    assert ds.classes == CLASSES and ds.num_classes == 3
    assert len(ds.train_files) == 36 and len(ds.test_files) == 12
    assert ds.input_size == (3, 224, 224)
    assert ds.with_image_size(64).input_size == (3, 64, 64)
    assert {label for _, label in ds.subset(9).train_files} == {0, 1, 2}  # a subset spans the classes


def test_epoch_batches_replay_from_seed_and_epoch_and_shards_form_the_global_batch(folder):
    ds = load_dataset(f"imagefolder:{folder}").with_image_size(32)
    src = ds.source(workers=0)
    first = list(src.train_batches(0, 8, seed=1))
    again = list(ds.source(workers=2).train_batches(0, 8, seed=1))  # other processes draw the crops
    other = list(src.train_batches(1, 8, seed=1))
    assert len(first) == 36 // 8
    x, y = first[0]
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 3 and x.std().item() > 0.1  # normalised, not raw bytes
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0][0])
    halves = [list(src.train_batches(0, 8, seed=1, rank=r, world=2)) for r in (0, 1)]
    for (x, y), (x0, y0), (x1, y1) in zip(first, *halves):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    test = [list(src.test_batches(5, rank=r, world=2)) for r in (0, 1)]
    labels = torch.cat([y for part in test for _, y in part])
    assert labels.tolist() == sorted(labels.tolist()) and len(labels) == 12


def test_bad_layouts_are_data_errors_that_show_the_layout(tmp_path):
    (tmp_path / "a" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="needs .*val/"):
        load_dataset(f"imagefolder:{tmp_path / 'a'}")
    (tmp_path / "a" / "val" / "cow").mkdir(parents=True)
    with pytest.raises(DataError, match="classes not in train/: cow"):
        load_dataset(f"imagefolder:{tmp_path / 'a'}")
    (tmp_path / "a" / "val" / "cow").rmdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(f"imagefolder:{tmp_path / 'a'}")


@pytest.mark.parametrize("model", ["mobilenet_v1", "resnet50"])
def test_imagenet_models_train_on_a_folder_with_the_imagenet_recipe(folder, tmp_path, model):
    torch.manual_seed(0)
    size = (3, 64, 64)
    net = create_model(model, num_classes=3, expand=0.125)
    gates = {k: torch.rand(w, generator=torch.Generator().manual_seed(1)) for k, w in net.widths.items()}
    run = RunDir.create(tmp_path / "r", {"model": model, "dataset": f"imagefolder:{folder}",
                                         "model_spec": net.spec, "seed": 0})
    run.write_json("structure.json", search(net, 0.5, size, gates=gates).to_json())
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train_run(run.path, TrainOptions(epochs=2, batch_size=12, image_size=64, workers=0))
    finally:
        torch.set_num_threads(n)
    plan = summary["plan"]
    assert (plan["recipe"], plan["nesterov"], plan["label_smoothing"], plan["no_wd_bn_depthwise"]) == \
        ("imagenet", True, 0.1, True)
    assert plan["schedule"] == ("cos" if model == "mobilenet_v1" else "step")
    assert plan["lr"] == pytest.approx(0.05 * 12 / 256)
    assert len(summary["history"]) == 2 and 0.0 <= summary["test_acc"] <= 1.0
    assert summary["history"][0]["images_per_s"] > 0 and summary["macs_ratio"] <= 0.5


def test_gates_learn_on_a_streamed_image_folder_and_resume_exactly(folder):
    from dataclasses import replace

    from engine.learn import LearnConfig, learn_gates

    ds = replace(load_dataset(f"imagefolder:{folder}").with_image_size(32), heldout_size=6, workers=0)
    train, held = ds.heldout_split()
    assert len(train.train_files) == 30 and len(held.train_files) == len(held.test_files) == 6
    assert not set(train.train_files) & set(held.train_files)
    cfg = LearnConfig(steps=6, batch_size=10, eval_every=3, lr=0.05, seed=1)

    def fresh():
        torch.manual_seed(0)
        return create_model("resnet20", num_classes=3)

    events, states = [], []
    model = fresh()
    result = learn_gates(model, ds, cfg, on_event=events.append, checkpoint=states.append, checkpoint_every=4)
    assert result.steps == 6 and 0.0 <= result.heldout_acc <= 1.0
    assert any(not torch.all(g == 1) for g in result.last_gates.values())
    assert [type(e).__name__ for e in events].count("EvalEnd") == 2
    resumed = learn_gates(fresh(), ds, cfg, resume=states[0])  # from step 4, mid-epoch 2
    for g in result.last_gates:
        assert torch.equal(resumed.last_gates[g], result.last_gates[g])


def test_pfs_run_learns_searches_and_trains_on_an_image_folder(folder, tmp_path):
    from engine.cli import main

    out = tmp_path / "run"
    code = main(["run", "resnet20", "--dataset", f"imagefolder:{folder}", "--flops", "0.5", "--learn-steps", "3",
                 "--learn-batch-size", "8", "--train-epochs", "1", "--train-batch-size", "8", "--quiet",
                 "--out", str(out)])
    assert code == 0
    structure = RunDir.open(out).read_json("structure.json")
    assert structure["input_size"] == [3, 224, 224] and structure["num_classes"] == 3
    assert RunDir.open(out).read_json("summary.json")["epochs"] == 1
