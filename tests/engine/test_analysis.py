from __future__ import annotations

import math

import pytest
import torch

from engine.analysis import correlation, keep_ratios, mean_pairwise_correlation, random_structure
from engine.errors import PfsError
from engine.gating import create_model
from engine.search import search, uniform_structure


def structure_from(values_by_group, model):
    gates = {g: torch.as_tensor(v, dtype=torch.float) for g, v in values_by_group.items()}
    return search(model, 0.5, gates=gates)


def test_keep_ratios_and_correlation_of_alike_and_opposite_structures():
    m = create_model("resnet20")
    groups = list(m.widths)
    # early layers favoured vs late layers favoured
    early = {g: torch.full((w,), 1.0 - i / len(groups)) * torch.linspace(1, 0.9, w) for i, (g, w) in
             enumerate(m.widths.items())}
    late = {g: torch.full((w,), 0.1 + i / len(groups)) * torch.linspace(1, 0.9, w) for i, (g, w) in
            enumerate(m.widths.items())}
    a, b = structure_from(early, m), structure_from(late, m)
    ra = keep_ratios(a)
    assert ra.shape == (len(groups),) and ra[0] > ra[-1]
    assert correlation(a, a) == pytest.approx(1.0)
    assert correlation(a, b) < -0.5
    assert mean_pairwise_correlation([a, a, a]) == pytest.approx(1.0)


def test_random_structures_differ_across_seeds_and_meet_the_budget():
    m = create_model("resnet56")
    structures = [random_structure(m, 0.5, seed=s) for s in range(3)]
    assert all(s.macs <= s.budget_macs for s in structures)
    assert mean_pairwise_correlation(structures) < 0.9
    assert math.isnan(correlation(uniform_structure(m, 1.0), structures[0]))


def test_comparing_different_models_is_a_clear_error():
    a = random_structure(create_model("resnet20"), 0.5)
    b = random_structure(create_model("resnet32"), 0.5)
    with pytest.raises(PfsError, match="different models"):
        correlation(a, b)
