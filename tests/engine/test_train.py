"""Retraining: real Fashion-MNIST training, Scratch-B epochs, inits, schedules, recipes."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.errors import PfsError
from engine.gates import ChannelGate
from engine.gating import create_model
from engine.training.inits import build_model
from engine.training.recipes import Plan, budget_epochs, get_recipe, lr_at, make_plan
from engine.training.train import TrainOptions, param_groups, train_run


def test_short_fashion_mnist_training_beats_chance_by_far(make_run, tmp_path, one_thread):
    run, _, structure = make_run(tmp_path / "r")
    summary = train_run(run.path, TrainOptions(epochs=3, subset=4000, test_subset=1000, batch_size=64, lr=0.1))
    assert summary["test_acc"] > 0.6  # chance is 0.1
    assert summary["best_test_acc"] >= summary["test_acc"]
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3]
    assert summary["macs"] == structure.macs and summary["macs_ratio"] < 0.55
    assert summary["device"] == "cpu" and summary["images_per_s"] > 0
    # The same numbers are in summary.json and the event stream.
    on_disk = run.read_json("summary.json")
    assert on_disk["test_acc"] == summary["test_acc"]
    epochs = [e for e in run.events() if e.kind == "epoch"]
    assert [e.test_acc for e in epochs] == [h["test_acc"] for h in summary["history"]]
    assert run.events()[-1].kind == "finished"
    assert "pid.json" not in {p.name for p in run.path.iterdir()}  # owner released


def test_budget_epochs_give_the_dense_compute():
    assert budget_epochs(160, 125_485_706, 62_742_853) == 320
    assert budget_epochs(160, 125_485_706, 125_485_706) == 160
    assert budget_epochs(10, 1000, 300) == 33  # 33.3 rounds down
    assert budget_epochs(10, 1000, 290) == 34  # 34.48 rounds down, 34.5 would round up
    with pytest.raises(PfsError):
        budget_epochs(10, 1000, 0)


def test_budget_flag_trains_for_scratch_b_epochs(make_run, tmp_path, one_thread):
    run, _, structure = make_run(tmp_path / "r", budget=0.3)
    summary = train_run(run.path, TrainOptions(epochs=1, budget=True, subset=128, test_subset=64,
                                               batch_size=64))
    expected = round(structure.dense_macs / structure.macs)
    assert expected >= 3
    assert summary["epochs"] == expected == len(summary["history"])
    assert summary["base_epochs"] == 1 and summary["budget"] is True
    # The step schedule follows the longer run: x0.1 at 50% and 75% of the budget epochs.
    assert list(summary["plan"]["milestones"]) == [round(0.5 * expected), round(0.75 * expected)]


def test_ticket_init_reproduces_the_gated_networks_kept_weights(make_run, tmp_path):
    run, net, structure = make_run(tmp_path / "r", model="resnet20", expand=0.5)
    init = run.load("init.pt")
    ticket = build_model(run, structure, TrainOptions(init="ticket"), seed=123)
    scratch = build_model(run, structure, TrainOptions(init="scratch"), seed=123)
    keep = {g: torch.tensor(ix) for g, ix in structure.keep.items()}
    checked = 0
    for name, m in ticket.named_modules():
        if isinstance(m, nn.Conv2d):
            w = init[f"{name}.weight"]
            if m.pfs_out:
                w = w[keep[m.pfs_out]]
            if m.pfs_in:
                w = w[:, keep[m.pfs_in]]
            assert torch.equal(m.weight, w), name
            assert not torch.equal(dict(scratch.named_modules())[name].weight, w)
            checked += 1
    assert checked == 21  # every conv of ResNet-20: 19, and shortcut B's two 1x1 projections
    assert torch.equal(ticket.fc.weight, init["fc.weight"])
    # Gates are off and frozen for retraining.
    gates = [m for m in ticket.modules() if isinstance(m, ChannelGate)]
    assert gates and all(not g.enabled and not g.weight.requires_grad for g in gates)


def test_inherit_copies_a_trained_checkpoint_and_refuses_a_foreign_one(make_run, tmp_path):
    run, net, structure = make_run(tmp_path / "r", expand=0.5)
    trained = create_model("resnet20", num_classes=10, in_channels=1, expand=0.5)
    torch.save({"model": trained.state_dict()}, tmp_path / "trained.pt")
    model = build_model(run, structure, TrainOptions(init="inherit", from_checkpoint=str(tmp_path / "trained.pt")), 0)
    first = structure.keep["layer1.0"]
    assert torch.equal(model.layer1[0].conv1.weight, trained.layer1[0].conv1.weight[first])
    other = create_model("resnet32", num_classes=10, in_channels=1, expand=0.5)
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(PfsError, match="does not fit the dense resnet20"):
        build_model(run, structure, TrainOptions(init="inherit", from_checkpoint=str(tmp_path / "other.pt")), 0)


def test_step_schedule_decays_at_half_and_three_quarters_and_cosine_ends_at_zero():
    plan = make_plan(TrainOptions(epochs=160), model="resnet56", dataset="cifar10", dense=2, macs=1, seed=0)
    assert (plan.lr, plan.momentum, plan.weight_decay, plan.batch_size, plan.nesterov) == (0.1, 0.9, 1e-4, 128, False)
    assert plan.milestones == (80, 120)
    assert [lr_at(plan, e, 0, 10) for e in (0, 79, 80, 119, 120, 159)] == \
        pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    cos = Plan(**{**plan.__dict__, "schedule": "cos"})
    assert lr_at(cos, 0, 0, 10) == pytest.approx(0.1)
    assert lr_at(cos, 80, 0, 10) == pytest.approx(0.05)
    assert lr_at(cos, 159, 9, 10) == pytest.approx(0.5 * 0.1 * (1 + math.cos(math.pi * 1599 / 1600)))


def test_imagenet_recipe_is_nesterov_smoothed_scaled_and_skips_decay_on_bn_and_depthwise():
    r = get_recipe("imagenet", "mobilenet_v1")
    assert (r.nesterov, r.label_smoothing, r.schedule, r.lr_for(512)) == (True, 0.1, "cos", pytest.approx(0.1))
    assert get_recipe("imagenet", "resnet50").schedule == "step"
    plan = make_plan(TrainOptions(batch_size=1024), model="resnet50", dataset="imagefolder:/x", dense=1, macs=1, seed=0)
    assert (plan.recipe, plan.lr) == ("imagenet", pytest.approx(0.2))
    net = create_model("mobilenet_v1", expand=0.25, num_classes=10)
    decay, plain = param_groups(net, 4e-5, no_wd_bn_depthwise=True)
    depthwise = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    bn = [p for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in (m.weight, m.bias)]
    assert {id(p) for p in plain["params"]} >= {id(p) for p in depthwise + bn}
    assert not {id(p) for p in decay["params"]} & {id(p) for p in depthwise + bn}
    assert plain["weight_decay"] == 0.0 and decay["weight_decay"] == 4e-5
    pointwise = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    assert {id(p) for p in pointwise} <= {id(p) for p in decay["params"]}


@pytest.mark.parametrize("options, message", [
    (TrainOptions(epochs=0), "--epochs must be > 0"),
    (TrainOptions(init="inherit"), "--init inherit needs --from"),
    (TrainOptions(init="ticket", expand=2.0), "cannot widen"),
    (TrainOptions(batch_size=100, accum_steps=3), "multiple of --accum-steps"),
    (TrainOptions(label_smoothing=1.0), "--label-smoothing must be in"),
    (TrainOptions(device="tpu"), "--device must be one of"),
])
def test_bad_options_are_one_clear_error(options, message):
    with pytest.raises(PfsError, match=message):
        options.validate()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_training_with_amp_and_data_on_the_device(make_run, tmp_path):
    run, _, _ = make_run(tmp_path / "r")
    summary = train_run(run.path, TrainOptions(epochs=3, subset=4000, test_subset=1000, batch_size=64, lr=0.1,
                                               device="cuda", amp=True))
    assert summary["device"].startswith("cuda") and summary["test_acc"] > 0.6
