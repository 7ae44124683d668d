"""Every stop resumes: learning and training stopped at each step index end as if never stopped.

The step indices cover both sides of every epoch boundary (the first and last batch of
each epoch, and the run's very last step), where a resume skips none or all of an
epoch's batches.
"""
from __future__ import annotations

import json

import pytest
import torch

from engine.data import synthetic_dataset
from engine.errors import StopRequested
from engine.jobs import learn_run, resume_learn
from engine.learn import LearnConfig
from engine.learn_distributed import NATIVE, WORLD_INVARIANT
from engine.runs import load_tensors
from engine.training import TrainOptions, train_run

TRAIN_STEPS_PER_EPOCH, TRAIN_EPOCHS = 3, 3  # 96 images, batch 32
LEARN = LearnConfig(steps=8, batch_size=16, eval_every=3, seed=0)  # 3 steps per epoch of 57 images


def _train_data():
    return synthetic_dataset(n_train=96, n_test=32, size=(1, 16, 16))


def _learn_data():
    return synthetic_dataset(n_train=64, n_test=16, size=(1, 16, 16))


def _stop_at(step: int | None):
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return step is not None and calls["n"] == step

    return should_stop


def _train(path, make_run, stop_at: int | None = None):
    make_run(path, dataset="synthetic", input_size=(1, 16, 16), expand=0.25)
    options = TrainOptions(epochs=TRAIN_EPOCHS, batch_size=32, device="cpu")
    return train_run(path, options, data=_train_data(), should_stop=_stop_at(stop_at))


@pytest.fixture(scope="module")
def trained_whole(tmp_path_factory):
    from tests.engine.conftest import _fake_learned_run

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("whole") / "run"
    summary = _train(path, _fake_learned_run)
    return summary, load_tensors(path / "checkpoints" / "last.pt")


@pytest.mark.parametrize("step", range(1, TRAIN_STEPS_PER_EPOCH * TRAIN_EPOCHS + 1))
def test_training_stopped_at_any_step_resumes_to_the_uninterrupted_weights(step, trained_whole, make_run,
                                                                             tmp_path, one_thread):
    whole_summary, whole = trained_whole
    epoch = (step - 1) // TRAIN_STEPS_PER_EPOCH + 1
    with pytest.raises(StopRequested, match=rf"stopped at step {step} \(epoch {epoch}\)"):
        _train(tmp_path / "run", make_run, stop_at=step)
    summary = train_run(tmp_path / "run", data=_train_data(), resume=True)
    resumed = load_tensors(tmp_path / "run" / "checkpoints" / "last.pt")
    assert resumed["step"] == whole["step"] == TRAIN_STEPS_PER_EPOCH * TRAIN_EPOCHS
    for key in whole["model"]:
        assert torch.equal(whole["model"][key], resumed["model"][key]), key
    for mine, theirs in zip(summary["history"], whole_summary["history"], strict=True):
        assert mine["lr"] == theirs["lr"] and mine["test_acc"] == theirs["test_acc"]
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6)


@pytest.fixture(scope="module")
def learned_whole(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("whole") / "run"
    return learn_run(path, model="resnet20", dataset="synthetic", expand=0.25, data=_learn_data(), learn=LEARN)


@pytest.mark.parametrize("step", range(1, LEARN.steps))
def test_learning_stopped_at_any_step_resumes_to_the_uninterrupted_gates(step, learned_whole, tmp_path, one_thread):
    path = tmp_path / "run"
    stopped = learn_run(path, model="resnet20", dataset="synthetic", expand=0.25, data=_learn_data(), learn=LEARN,
                        should_stop=_stop_at(step + 1))  # polled before each step: the (step+1)th poll stops it
    assert stopped.stopped and stopped.steps == step
    resumed = resume_learn(path, data=_learn_data())
    assert not resumed.stopped and resumed.steps == LEARN.steps
    assert resumed.selected_step == learned_whole.selected_step
    assert resumed.heldout_acc == learned_whole.heldout_acc
    for g in learned_whole.gates:
        assert torch.equal(learned_whole.gates[g], resumed.gates[g]), g


def test_a_run_made_before_its_batch_norm_was_recorded_resumes_with_the_native_kernel(tmp_path, one_thread):
    """Runs learned before config.json recorded "batch_norm" used torch's kernel: they still
    resume bit for bit, while the default (world-invariant) arithmetic rounds otherwise."""
    whole = learn_run(tmp_path / "whole", model="resnet20", dataset="synthetic", expand=0.25, data=_learn_data(),
                      learn=LEARN, batch_norm=NATIVE)
    path = tmp_path / "old"
    learn_run(path, model="resnet20", dataset="synthetic", expand=0.25, data=_learn_data(), learn=LEARN,
              batch_norm=NATIVE, should_stop=_stop_at(5))
    config = json.loads((path / "config.json").read_text())
    del config["batch_norm"]  # as written before the arithmetic was recorded
    (path / "config.json").write_text(json.dumps(config))
    resumed = resume_learn(path, data=_learn_data())
    assert resumed.steps == LEARN.steps
    for g in whole.gates:
        assert torch.equal(whole.gates[g], resumed.gates[g]), g
    default = learn_run(tmp_path / "new", model="resnet20", dataset="synthetic", expand=0.25, data=_learn_data(),
                        learn=LEARN)
    assert json.loads((tmp_path / "new" / "config.json").read_text())["batch_norm"] == WORLD_INVARIANT
    assert any(not torch.equal(whole.last_gates[g], default.last_gates[g]) for g in whole.gates)
