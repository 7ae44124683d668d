"""Baselines: each a run directory at the same budget, maximal like PFS's; slimming's penalty."""
from __future__ import annotations

import pytest
import torch

from engine.errors import PfsError
from engine.evidence.baselines import KINDS, BaselineSpec, make_baseline
from engine.evidence.pretrain import pretrain, pretrained_weights
from engine.flops import count_macs
from engine.learn import LearnConfig
from engine.runs import RunDir, list_runs, load_gated_model, load_structure
from engine.search import _Ranking
from engine.training import TrainOptions, train_run

# Thin resnet20 (expand 0.25): the budget is a fraction of the full-width model's MACs, so
# 0.05 is most of this network; tiny steps keep every arm to about a second.
TINY = dict(model="resnet20", dataset="fashion-mnist", flops=0.05, expand=0.25, pretrain_epochs=1, subset=256,
            test_subset=200, batch_size=64, learn=LearnConfig(steps=4, batch_size=16, eval_every=2,
                                                              heldout_limit=100))


@pytest.fixture(scope="module")
def fmnist():
    from engine.data import load_dataset

    return load_dataset("fashion-mnist")


@pytest.fixture(scope="module")
def baselines(tmp_path_factory, fmnist):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("baselines")
    return root, {k: make_baseline(root / k, BaselineSpec(kind=k, seed=1, **TINY), data=fmnist) for k in KINDS}


def test_every_baseline_is_within_budget_and_maximal(baselines):
    root, summaries = baselines
    for kind in KINDS:
        run = RunDir.open(root / kind)
        structure = load_structure(run.path)
        net = load_gated_model(run.path)
        gates = {g: gate.weight.detach() for g, gate in net.gates().items()}
        size = structure.input_size
        assert structure.macs == count_macs(net, size, structure.widths) <= structure.budget_macs, kind
        assert summaries[kind]["macs"] == structure.macs and summaries[kind]["finding_seconds"] >= 0
        # maximal: the next channel in the search's global ranking would break the budget
        ranking = _Ranking(net.widths, gates, 1)
        k = next(k for k in range(ranking.size + 1) if ranking.widths(k) == structure.widths)
        assert k < ranking.size and count_macs(net, size, ranking.widths(k + 1)) > structure.budget_macs, kind


def test_arms_differ_where_they_should(baselines):
    root, _ = baselines
    ratios = {k: load_structure(root / k).widths for k in KINDS}
    uniform = load_structure(root / "uniform")
    kept = [w / uniform.dense_widths[g] for g, w in uniform.widths.items()]
    assert max(kept) - min(kept) <= 0.25  # one multiplier for every layer, up to rounding
    assert ratios["random"] != ratios["uniform"] and ratios["slimming"] != ratios["uniform"]
    # slimming's gate values are the |BN gamma| of the pre-trained dense network
    gates = RunDir(root / "slimming").load("gates.pt")
    net = load_gated_model(root / "slimming", gates=False)
    net.load_state_dict(pretrained_weights(root / "slimming" / "pretrain"))
    for g, bn in net.gated_bns().items():
        assert torch.equal(gates[g], bn.weight.detach().abs())


def test_baselines_are_runs_that_list_train_and_resume(baselines, fmnist):
    root, summaries = baselines
    names = {i.name: i for i in list_runs(root)}
    assert set(KINDS) <= set(names) and names["random"].status == "finished"
    # the pretrained-pfs run learned its gates on the pre-trained weights (its init.pt)
    init = RunDir(root / "pretrained-pfs").load("init.pt")
    pre = pretrained_weights(root / "pretrained-pfs" / "pretrain")
    assert all(torch.equal(init[k], pre[k]) for k in init)
    assert RunDir(root / "l1-gates").config["learn"]["reg"] == "l1"
    # calling again is a no-op that returns the finished summary
    again = make_baseline(root / "uniform", BaselineSpec(kind="uniform", seed=1, **TINY), data=fmnist)
    assert again == summaries["uniform"]
    summary = train_run(root / "random", TrainOptions(epochs=1, subset=256, test_subset=200, batch_size=64),
                        data=fmnist)
    assert summary["macs"] == summaries["random"]["macs"] and 0 <= summary["test_acc"] <= 1


def test_unmeetable_budget_is_one_error_and_writes_nothing(tmp_path, fmnist):
    with pytest.raises(PfsError, match="raise --flops"):
        make_baseline(tmp_path / "b", BaselineSpec(kind="slimming", **{**TINY, "flops": 0.001}), data=fmnist)
    assert not (tmp_path / "b").exists()


def test_other_settings_in_the_same_directory_are_refused(baselines, fmnist):
    root, _ = baselines
    before = (root / "random" / "structure.json").read_bytes()
    with pytest.raises(PfsError, match="other settings"):
        make_baseline(root / "random", BaselineSpec(kind="random", seed=2, **TINY), data=fmnist)
    assert (root / "random" / "structure.json").read_bytes() == before


def test_slimming_penalty_shrinks_bn_scales(tmp_path, fmnist, one_thread):
    """Same init, same batches: only the L1 term differs, and it pulls every |gamma| down."""
    from engine.evidence.baselines import gated_network, run_config

    net = gated_network("resnet20", 0, fmnist, 0.25)
    config = run_config(net, fmnist, model="resnet20", dataset="fashion-mnist", seed=0, data_root=None)
    scales = {}
    for lam in (0.0, 0.05):
        opts = TrainOptions(epochs=1, subset=256, test_subset=100, batch_size=64, seed=0, slim_lambda=lam)
        pretrain(tmp_path / str(lam), config, opts, data=fmnist)
        state = pretrained_weights(tmp_path / str(lam))
        scales[lam] = torch.cat([v.abs() for k, v in state.items() if k.endswith("bn1.weight") or
                                 k.endswith("bn2.weight")])
    assert scales[0.0].numel() > 0
    # Every scale ends lower with the penalty (the task gradient alone moves them both ways),
    # by a few lambda x lr steps: the first epoch's lr schedule is 0.1, then x0.1 at 50% and 75%.
    shrink = scales[0.0] - scales[0.05]
    assert (shrink > 0).float().mean() > 0.95
    assert 0.003 < shrink.mean() < 0.03
    assert RunDir(tmp_path / "0.05").config["train"]["slim_lambda"] == 0.05


def test_bad_spec_values_name_the_flag():
    with pytest.raises(PfsError, match="--pretrain-epochs"):
        BaselineSpec(kind="slimming", **{**TINY, "pretrain_epochs": 0}).validate()
    with pytest.raises(PfsError, match="--slim-lambda"):
        BaselineSpec(kind="slimming", **{**TINY, "slim_lambda": -1}).validate()
    with pytest.raises(PfsError, match="unknown baseline"):
        BaselineSpec(kind="magic", **TINY).validate()


def test_pfs_resume_points_an_unfinished_baseline_at_its_command(tmp_path, fmnist):
    from engine.jobs import resume_run

    spec = BaselineSpec(kind="slimming", seed=1, **TINY)
    with pytest.raises(PfsError, match="stopped"):
        make_baseline(tmp_path / "s", spec, data=fmnist, should_stop=lambda: True)  # killed in pre-training
    with pytest.raises(PfsError, match="unfinished slimming baseline; repeat its `pfs baseline` command"):
        resume_run(tmp_path / "s")
    assert not (tmp_path / "s" / "gates.pt").exists()
    summary = make_baseline(tmp_path / "s", spec, data=fmnist)  # the same command continues it
    assert summary["status"] == "finished" and (tmp_path / "s" / "structure.json").is_file()
