"""Comparing structures: keep-ratio vectors, their correlation, and same-budget baselines.

The paper's observation: structures found after pre-training are alike across seeds
(keep-ratio vectors correlate strongly), while structures found at random init are
diverse. These helpers measure that for any set of structures.
"""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
import torch

from engine.errors import PfsError
from engine.search import Structure, search, uniform_structure


def keep_ratios(structure: Structure) -> np.ndarray:
    """Per-group kept fraction (kept / dense channels), in the model's group order."""
    return np.array([structure.widths[g] / structure.dense_widths[g] for g in structure.dense_widths])


def correlation(a: Structure, b: Structure) -> float:
    """Pearson correlation of two structures' keep-ratio vectors (same model required)."""
    if list(a.dense_widths) != list(b.dense_widths):
        raise PfsError(f"cannot compare structures of different models ({a.model} vs {b.model})")
    x, y = keep_ratios(a), keep_ratios(b)
    if x.std() == 0 or y.std() == 0:
        return float("nan")  # a uniform structure has no shape to correlate
    return float(np.corrcoef(x, y)[0, 1])


def pairwise_correlations(structures: Sequence[Structure]) -> np.ndarray:
    """The symmetric matrix of correlations between every pair (1 on the diagonal)."""
    n = len(structures)
    out = np.eye(n)
    for i, j in combinations(range(n), 2):
        out[i, j] = out[j, i] = correlation(structures[i], structures[j])
    return out


def mean_pairwise_correlation(structures: Sequence[Structure]) -> float:
    """Mean off-diagonal correlation: high means alike structures, low means diverse."""
    if len(structures) < 2:
        raise PfsError("need at least two structures to compare")
    m = pairwise_correlations(structures)
    return float(m[~np.eye(len(structures), dtype=bool)].mean())


def random_structure(model, budget: float, input_size=None, *, seed: int = 0) -> Structure:
    """The same-budget baseline from uniformly random gate values."""
    g = torch.Generator().manual_seed(seed)
    gates = {name: torch.rand(w, generator=g) for name, w in model.widths.items()}
    return search(model, budget, input_size, gates=gates)


__all__ = ["correlation", "keep_ratios", "mean_pairwise_correlation", "pairwise_correlations",
           "random_structure", "uniform_structure"]
