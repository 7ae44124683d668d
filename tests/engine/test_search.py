from __future__ import annotations

import json

import pytest
import torch

from engine.errors import BudgetError
from engine.flops import count_macs
from engine.gating import create_model
from engine.search import Structure, search, uniform_structure


def gated(name="resnet56", seed=0, **kw):
    torch.manual_seed(seed)
    m = create_model(name, **kw)
    for g in m.gates().values():
        g.weight.data.uniform_(0, 1)
    return m


@pytest.mark.parametrize("budget", [0.2, 0.5, 0.8, 1.0])
def test_structure_is_within_budget_exact_and_maximal(budget):
    m = gated()
    s = search(m, budget)
    assert s.macs == count_macs(m, widths=s.widths) <= s.budget_macs
    assert s.budget_macs == int(budget * count_macs(m))
    # maximal: adding the next-ranked channel (any group) would break the budget
    kept = {(g, c) for g, cs in s.keep.items() for c in cs}
    dropped = [(v, g, c) for g, gate in m.gates().items() for c, v in enumerate(gate.weight.tolist())
               if (g, c) not in kept]
    if dropped:
        _, g, _ = max(dropped)
        bigger = dict(s.widths, **{g: s.widths[g] + 1})
        assert count_macs(m, widths=bigger) > s.budget_macs


def test_kept_channels_are_the_largest_gates():
    m = gated()
    s = search(m, 0.5)
    kept = [v for g, gate in m.gates().items() for c, v in enumerate(gate.weight.tolist()) if c in s.keep[g]]
    dropped = [v for g, gate in m.gates().items() for c, v in enumerate(gate.weight.tolist())
               if c not in s.keep[g]]
    assert min(kept) >= s.threshold >= max(dropped)
    assert {g: len(ix) for g, ix in s.keep.items()} == s.widths


def test_ties_are_broken_deterministically_and_counted():
    m = create_model("resnet20")
    for g in m.gates().values():  # clamped gates: many exact zeros and ones
        g.weight.data = (torch.rand_like(g.weight) < 0.4).float()
    a, b = search(m, 0.3), search(m, 0.3)
    assert a.keep == b.keep
    kept = sum(a.widths.values())
    assert a.threshold in (0.0, 1.0)
    # every kept channel that shares the threshold's value was decided by the tie-break
    shared = sum(1 for g, gate in m.gates().items() for c in a.keep[g] if gate.weight[c] == a.threshold)
    forced = len(a.widths)  # min_channels=1 keeps one channel per group regardless
    assert shared - forced <= a.tied <= shared
    assert 0 < a.tied <= kept


def test_all_equal_gates_give_a_uniform_structure():
    m = create_model("resnet56")
    s = uniform_structure(m, 0.5)
    ratios = [s.widths[g] / w for g, w in m.widths.items()]
    assert max(ratios) - min(ratios) <= 1 / 16 + 1e-9
    assert s.macs <= s.budget_macs


def test_min_channels_is_respected():
    m = gated()
    for g in list(m.gates().values())[:5]:
        g.weight.data.zero_()
    s = search(m, 0.2, min_channels=3)
    assert min(s.widths.values()) >= 3


def test_unreachable_budget_is_a_clear_error():
    with pytest.raises(BudgetError, match="raise --flops to at least"):
        search(gated(), 0.001)
    for bad in (0, -0.5, float("nan")):
        with pytest.raises(BudgetError):
            search(gated(), bad)


def test_absolute_budget_in_macs():
    m = gated()
    s = search(m, 50_000_000)
    assert s.macs <= 50_000_000 and s.budget_macs == 50_000_000


def test_expanded_model_is_pruned_to_the_dense_models_budget():
    m = gated("resnet20", expand=1.5)
    s = search(m, 0.5)
    assert s.dense_macs == count_macs(create_model("resnet20"))
    assert s.macs <= 0.5 * s.dense_macs


def test_structure_round_trips_json():
    s = search(gated("resnet20"), 0.5)
    data = json.loads(json.dumps(s.to_json()))
    assert data["tied_channels"] == s.tied
    assert Structure.from_json(data) == s
