"""Foreign models (user code through `file.py:factory`): groups, exact MACs, exact pruning.

The networks are tests/engine/models/small_nets.py: a residual block with a projection
shortcut, a concatenation, a grouped conv and a network without BatchNorm.
"""
from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import torch
from ptflops import get_model_complexity_info
from torch import nn

from engine.errors import PfsError
from engine.flops import count_macs, count_params, dense_macs
from engine.gating import ForeignModel, build_model, prune_foreign, strip_gates, with_dropped_gates_zeroed
from engine.models.spec import allow_model_code
from engine.prune import extract, fold_gates
from engine.search import search

NETS = Path(__file__).with_name("small_nets.py")
SIZE = (1, 16, 16)
GATED = {
    "residual": {"stem.0": 8, "conv1.0": 12, "conv3.0": 10},
    "concat": {"a.0": 6, "b.0": 10, "c.0": 12},
    "grouped": {"head.0": 20},
    "no_bn": {"conv1": 8, "conv2": 6},
}


@pytest.fixture(autouse=True)
def _our_own_code():
    allow_model_code(f"{NETS}:residual")  # these tests name their own networks, as a user does


def build(name: str, **kw) -> ForeignModel:
    torch.manual_seed(0)
    return build_model(f"{NETS}:{name}", num_classes=10, in_channels=1, input_size=SIZE, **kw)


def ptflops_count(model: ForeignModel) -> tuple[int, int]:
    """MACs and params as ptflops (aten) counts the plain network, gates taken out."""
    net = copy.deepcopy(model.net)
    strip_gates(net)
    size = (SIZE[0] * model.repeat, *SIZE[1:])
    return get_model_complexity_info(net.eval(), size, as_strings=False, backend="aten",
                                     print_per_layer_stat=False, verbose=False)


def random_keep(model, rng) -> dict[str, list[int]]:
    return {g: sorted(rng.sample(range(c), rng.randint(1, c))) for g, c in model.widths.items()}


def scramble(model) -> None:
    """Non-trivial BN statistics, affine and gates, so equalities below are not vacuous."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
                m.bias.uniform_(-0.5, 0.5)
        for gate in model.gates().values():
            gate.weight.uniform_(0.2, 1.0)


@pytest.mark.parametrize("name", list(GATED))
def test_groups_found_by_the_graph(name):
    model = build(name)
    assert dict(model.widths) == GATED[name]
    reasons = {n.name: n.why for n in model.plan.not_gated}
    assert "network's outputs" in reasons["fc"] or "network output" in reasons["fc"]
    if name == "residual":
        assert "tied by residual adds" in reasons["proj.0"] and "--prune-residual" in reasons["proj.0"]
    if name == "grouped":
        assert reasons["stem.0"].startswith("grouped conv grouped.0 (groups=4)")
        assert reasons["grouped.0"].startswith("grouped conv grouped.0 (groups=4)")


def test_prune_residual_gates_the_tied_group_as_one():
    model = build("residual", prune_residual=True)
    assert model.widths["proj.0"] == 16
    tied = [g for g in model.plan.groups if g.tied]
    assert [sorted(m for m, _ in g.gate_at) for g in tied] == [["conv2.1", "proj.1"]]
    # one gate shared by both BNs
    assert model.net.conv2[1].gate is model.net.proj[1].gate is model.gates()["proj.0"]


@pytest.mark.parametrize("name, prune_residual", [(n, False) for n in GATED] + [("residual", True)])
def test_macs_params_equal_ptflops_and_pruned_equals_gated_with_zeros(name, prune_residual):
    rng = random.Random(name)
    model = build(name, prune_residual=prune_residual)
    assert (count_macs(model), count_params(model)) == ptflops_count(model)
    scramble(model)
    for _ in range(2):
        keep = random_keep(model, rng)
        widths = {g: len(k) for g, k in keep.items()}
        pruned = prune_foreign(model, keep)
        assert dict(pruned.widths) == widths
        assert (count_macs(model, widths=widths), count_params(model, widths)) == ptflops_count(pruned)
        assert dense_macs(pruned) == count_macs(model)
        zeroed = with_dropped_gates_zeroed(model, keep)
        x = torch.randn(4, *SIZE)
        with torch.no_grad():
            torch.testing.assert_close(pruned.eval()(x), zeroed(x), rtol=0, atol=1e-5)


def test_search_is_within_budget_and_maximal():
    model = build("residual", prune_residual=True)
    gates = {g: torch.rand(w, generator=torch.Generator().manual_seed(1)) for g, w in model.widths.items()}
    s = search(model, 0.4, gates=gates)
    assert s.macs <= s.budget_macs < count_macs(model)
    assert s.macs == count_macs(model, widths=s.widths)
    # one more channel (the next in the ranking, in any group) would break the budget
    for g in s.widths:
        if s.widths[g] < model.widths[g]:
            assert count_macs(model, widths={**s.widths, g: s.widths[g] + 1}) > s.budget_macs or \
                any(s.widths[h] == 1 for h in s.widths)
    pruned = extract(model, s, "copy")
    assert ptflops_count(pruned)[0] == s.macs
    assert count_params(pruned) == s.params


def test_fold_gates_keeps_the_function_with_output_gates():
    model = build("no_bn").eval()
    scramble(model)
    x = torch.randn(2, *SIZE)
    with torch.no_grad():
        before = model(x)
        fold_gates(model)
        assert all(bool((g.weight == 1).all()) for g in model.gates().values())
        torch.testing.assert_close(model(x), before)


def test_input_channels_are_repeated_for_a_three_channel_model():
    model = build_model(f"{NETS}:no_bn", num_classes=10, in_channels=1, input_size=(1, 12, 12))
    assert model.repeat == 3 and model.input_note.endswith("the data's 1 are repeated 3x")
    assert build("residual").input_note == ""
    assert model(torch.randn(2, 1, 12, 12)).shape == (2, 10)


@pytest.mark.parametrize("text, message", [
    ("torchvision:no_such_net", "torchvision has no classification model"),
    ("torchvision:", "lacks a model name"),
    ("missing_file.py:build", "does not exist"),
    (f"{NETS}:nope", "has no function 'nope'"),
    ("no_such_package.mod:build", "cannot import 'no_such_package.mod'"),
    ("a b:c-d", "is not a function name"),
    ("resnet20", None),
])
def test_bad_specs_are_one_clear_error(text, message):
    if message is None:
        assert build_model(text, num_classes=10, in_channels=1).registry_name == "resnet20"
        return
    with pytest.raises(PfsError, match=message) as info:
        build_model(text, num_classes=10, in_channels=1)
    assert "\n" not in str(info.value)


def test_a_channel_shuffle_the_graph_maps_wrongly_is_caught_by_the_probe():
    # Torch-Pruning maps a.0's channels straight through the shuffle into b.0; the probe
    # sees the zeroed channels arrive elsewhere and leaves the group whole, with why.
    model = build("shuffle")
    assert dict(model.widths) == {"b.0": 6}
    assert {n.name: n.why for n in model.plan.not_gated}["a.0"] == "a zero gate leaks into b.0"


def test_prune_residual_is_refused_for_sample_models():
    with pytest.raises(PfsError, match="--prune-residual applies to foreign models"):
        build_model("resnet20", num_classes=10, in_channels=1, prune_residual=True)


def test_expand_is_refused_for_foreign_models():
    with pytest.raises(PfsError, match="--expand widens sample models only"):
        build_model(f"{NETS}:residual", num_classes=10, in_channels=1, expand=1.5)


def test_learning_resumes_and_search_reads_a_foreign_run(tmp_path):
    from engine.data import synthetic_dataset
    from engine.jobs import learn_run, resume_learn, search_run
    from engine.learn import LearnConfig

    data = synthetic_dataset(n_train=96, n_test=16, size=(1, 16, 16))
    config = LearnConfig(steps=4, batch_size=16, heldout_limit=16, eval_every=2)
    steps = []
    stop = lambda: len(steps) >= 2  # noqa: E731
    first = learn_run(tmp_path / "r", model=f"{NETS}:residual", dataset="synthetic", learn=config, data=data,
                      arch={"prune_residual": True}, should_stop=stop,
                      on_event=lambda e: steps.append(e) if type(e).__name__ == "StepEnd" else None)
    assert first.stopped
    resumed = resume_learn(tmp_path / "r", data=data)
    assert not resumed.stopped and resumed.steps == 4
    structure = search_run(tmp_path / "r", 0.6)
    assert set(structure.widths) == {"stem.0", "conv1.0", "proj.0", "conv3.0"}
    assert structure.macs <= structure.budget_macs
