"""`pfs search --latency-ms`: bisection over the FLOPs search's ranking, each probe timed.

The bisection is checked exactly with a latency that is the MACs (then it must find what
the FLOPs search finds); the timed path is checked for what it records, never for speed.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from engine.cli import main
from engine.errors import BudgetError
from engine.jobs import latency_search_run, search_by_latency
from engine.runs import load_structure, run_info
from engine.runs.artifacts import check_structure
from engine.search import Candidates, search


def _macs_ms(structure) -> float:
    return structure.macs / 1e6


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_with_macs_for_latency_it_finds_what_the_flops_search_finds(make_run, tmp_path, fraction):
    _, net, _ = make_run(tmp_path / "run")
    probes = []
    result = search_by_latency(net, fraction * Candidates(net, (1, 28, 28)).dense_macs / 1e6, (1, 28, 28),
                            measure=_macs_ms, on_probe=lambda k, s, ms: probes.append(k))
    flops = search(net, fraction, (1, 28, 28))
    assert result.structure.keep == flops.keep and result.structure.macs == flops.macs
    assert result.measured_ms == result.search_ms == flops.macs / 1e6
    size = Candidates(net, (1, 28, 28)).size
    assert probes[:2] == [0, size] and result.probes == len(probes) <= math.ceil(math.log2(size)) + 2


def test_a_budget_below_the_smallest_structure_names_its_latency(make_run, tmp_path):
    _, net, _ = make_run(tmp_path / "run")
    smallest = Candidates(net, (1, 28, 28)).macs_at(0) / 1e6
    with pytest.raises(BudgetError, match=f"measured latency \\({smallest:.3f} ms"):
        search_by_latency(net, smallest * 0.99, (1, 28, 28), measure=_macs_ms)


def test_the_run_records_the_latency_beside_the_macs(make_run, tmp_path, one_thread):
    run, _, _ = make_run(tmp_path / "run")
    result = latency_search_run(run.path, 1e5, batch_size=2)  # every structure fits: the dense one is kept
    written = json.loads(run.file("structure.json").read_text())
    assert written["widths"] == written["dense_widths"]  # (of a network at expand 0.25: 1/16 of the MACs)
    latency = written["latency"]
    assert latency["budget_ms"] == 1e5 and latency["device"] == "cpu" and latency["batch_size"] == 2
    assert latency["measured_ms"] == result.measured_ms > 0 and latency["search_ms"] > 0
    assert latency["threads"] == 1 and latency["probes"] == 2
    # every reader of structure.json still takes it
    structure = load_structure(run.path)
    check_structure(structure, run.config, run.file("structure.json"))
    assert structure.budget == structure.macs / structure.dense_macs and run_info(run.path).corrupt is None


def test_cli_below_the_smallest_structure_is_one_line_and_writes_nothing(make_run, tmp_path, capsys, one_thread):
    run, _, _ = make_run(tmp_path / "run")
    before = run.file("structure.json").read_bytes()
    assert main(["search", str(run.path), "--latency-ms", "0.0001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("pfs: error: latency budget 0.0001 ms is below the smallest structure's measured latency")
    assert "raise --latency-ms to at least" in err
    assert run.file("structure.json").read_bytes() == before


@pytest.mark.parametrize("argv, match", [
    (["--flops", "0.5", "--device", "cpu"], "--device sets how --latency-ms is measured"),
    (["--flops", "0.5", "--latency-ms", "3"], "not allowed with argument"),
    (["--latency-ms", "-1"], "--latency-ms must be a positive number"),
    ([], "one of the arguments --flops --latency-ms is required"),
])
def test_cli_refuses_mixed_or_bad_budgets(make_run, tmp_path, capsys, argv, match):
    run, _, _ = make_run(tmp_path / "run")
    before = run.file("structure.json").read_bytes()
    assert main(["search", str(run.path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert run.file("structure.json").read_bytes() == before


def test_cli_reports_both_timings(make_run, tmp_path, capsys, one_thread):
    run, _, _ = make_run(tmp_path / "run")
    assert main(["search", str(run.path), "--latency-ms", "100000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["latency"]["measured_ms"] > 0 and out["latency"]["search_ms"] > 0
    assert out["widths"] == out["dense_widths"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_latency_search_on_cuda_records_the_device(make_run, tmp_path):
    run, _, _ = make_run(tmp_path / "run")
    result = latency_search_run(run.path, 1e5, device="cuda")
    assert result.device == "cuda" and result.measured_ms > 0
    assert json.loads(run.file("structure.json").read_text())["latency"]["device"] == "cuda"


def test_a_result_that_pruned_nothing_or_ran_over_its_budget_says_so(make_run, tmp_path):
    _, net, _ = make_run(tmp_path / "run")
    candidates = Candidates(net, (1, 28, 28))
    dense_ms = candidates.macs_at(candidates.size) / 1e6  # every channel kept (of the x0.25 network)
    everything = search_by_latency(net, dense_ms * 2, (1, 28, 28), measure=_macs_ms)
    [caveat] = everything.caveats()
    assert caveat.startswith(f"the dense network already meets {dense_ms * 2:g} ms") and "nothing was pruned" in caveat
    half = search_by_latency(net, dense_ms / 2, (1, 28, 28), measure=_macs_ms)
    assert half.caveats() == []
    slower = dataclasses.replace(half, measured_ms=half.search_ms * 1.2)  # timed again on a busier machine
    [caveat] = slower.caveats()
    assert f"took {slower.measured_ms:.3f} ms, over the {dense_ms / 2:g} ms budget" in caveat
    assert "vary by 20%" in caveat


def test_the_cli_prints_each_caveat_as_one_warning_line(make_run, tmp_path, one_thread, capsys):
    run, _, _ = make_run(tmp_path / "run")
    assert main(["search", str(run.path), "--latency-ms", "100000", "--batch-size", "2", "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert err.count("pfs: warning: the dense network already meets 100000 ms") == 1
