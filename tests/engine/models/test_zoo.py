"""The zoo sweep (slow): every listed torchvision/timm model through the whole pfs path.

Uses bench/bench_zoo.py's `measure` (the numbers in docs/models.md come from the same code).
A model that cannot work is asserted to fail with its known reason, never skipped.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location("bench_zoo", Path(__file__).parents[3] / "bench" / "bench_zoo.py")
bench_zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_zoo)

CANNOT = {"torchvision:shufflenet_v2_x1_0": "cannot map its channels through a reshape"}


@pytest.mark.slow
@pytest.mark.parametrize("spec", bench_zoo.ZOO)
def test_zoo_model_end_to_end(spec, one_thread):
    row = bench_zoo.measure(spec, (3, 64, 64))
    if spec in CANNOT:
        assert CANNOT[spec] in row["error"]
        return
    assert "error" not in row, row.get("error")
    assert row["gated_groups"] > 0
    assert row["dense_equal"] and row["random_equal"], row
    assert row["search_within"] and row["search_maximal"], row
    assert row["pruned_vs_gated_maxdiff"] <= 1e-5 * max(1.0, row["output_scale"]), row
    assert row["onnx_maxdiff"] <= 1e-4 * max(1.0, row["output_scale"]), row
    assert torch.get_num_threads() == 1
