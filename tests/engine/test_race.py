"""`pfs race`: the learned structure against uniform (or random, or another run's) at the
same MACs, trained alike, with the dense network's accuracy as the reference."""
from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.jobs.race import Race
from engine.runs import RunDir
from engine.search import uniform_structure

TINY = ["--epochs", "1", "--subset", "128", "--test-subset", "64", "--batch-size", "32", "--quiet", "--json"]


def _race(capsys, *argv) -> dict:
    assert main(["race", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_race_trains_both_structures_alike_and_reports_accuracy_macs_params_gap_and_dense(
        tmp_path, make_run, capsys, one_thread):
    run, net, learned = make_run(tmp_path / "runs" / "r1")
    out = _race(capsys, str(run.path), *TINY, "--dense")

    race = Race.load(run.path / "race")
    assert out["race"] == str(run.path / "race") and race.arms == ("learned", "uniform")
    uniform = uniform_structure(net, learned.budget, (1, 28, 28))
    arms = {name: RunDir.open(race.arm(name)) for name in race.arms}
    assert arms["learned"].read_json("structure.json")["widths"] == learned.widths
    assert arms["uniform"].read_json("structure.json")["widths"] == uniform.widths
    # Paired: the same options and seed (hence the same images in the same order) for both.
    assert arms["learned"].config["train"] == arms["uniform"].config["train"]
    assert arms["learned"].config["train"]["seed"] == 0 == out["seed"]
    for name, structure in (("learned", learned), ("uniform", uniform)):
        summary = arms[name].read_json("summary.json")
        assert out["arms"][name]["test_acc"] == summary["test_acc"] and 0 <= summary["test_acc"] <= 1
        assert out["arms"][name]["macs"] == structure.macs <= learned.budget_macs
        assert out["arms"][name]["params"] == structure.params
        assert summary["history"][0]["epoch"] == 1 and len(summary["history"]) == 1
    assert out["gap"] == pytest.approx(out["arms"]["learned"]["test_acc"] - out["arms"]["uniform"]["test_acc"])
    dense = RunDir.open(out["dense"]["run"])
    assert dense.path.parent == run.path.parent and dense.path.name.startswith("dense-resnet20-fashion-mnist-")
    assert dense.read_json("structure.json")["widths"] == net.widths  # every channel kept
    assert out["dense"]["test_acc"] == dense.read_json("summary.json")["test_acc"]


def test_a_repeated_race_trains_nothing_again_and_finds_the_cached_dense_run(tmp_path, make_run, capsys,
                                                                             one_thread):
    run, _, _ = make_run(tmp_path / "runs" / "r1")
    first = _race(capsys, str(run.path), *TINY, "--dense")
    sizes = {p: p.stat().st_size for p in tmp_path.rglob("events.jsonl")}
    again = _race(capsys, str(run.path), *TINY)
    assert again == first
    assert {p: p.stat().st_size for p in tmp_path.rglob("events.jsonl")} == sizes

    # Another race of the same size (random, in its own folder) is told the same dense line.
    other = _race(capsys, str(run.path), *TINY, "--vs", "random", "--out", str(tmp_path / "vs-random"))
    assert other["dense"] == first["dense"] and set(other["arms"]) == {"learned", "random"}
    assert other["arms"]["random"]["macs"] <= RunDir(run.path).read_json("structure.json")["budget_macs"]


def test_race_against_another_run_uses_its_structure(tmp_path, make_run, capsys, one_thread):
    run, _, _ = make_run(tmp_path / "runs" / "r1")
    rival, _, rival_structure = make_run(tmp_path / "runs" / "r2", seed=5)
    out = _race(capsys, str(run.path), *TINY, "--vs", str(rival.path))
    assert set(out["arms"]) == {"learned", "vs-r2"}
    assert RunDir(run.path / "race" / "vs-r2").read_json("structure.json")["widths"] == rival_structure.widths
    assert out["dense"]["test_acc"] is None  # not trained at this size, and not asked for


@pytest.mark.parametrize("argv, message", [
    (["--vs", "nosuch"], "--vs nosuch is neither uniform, random nor a run with a structure.json"),
    (["--vs", "{other}"], "does not fit r1's network"),
    (["--epochs", "0"], "argument --epochs: expected a positive integer"),
])
def test_a_refused_race_says_why_in_one_line_and_writes_nothing(tmp_path, make_run, capsys, argv, message):
    run, _, _ = make_run(tmp_path / "runs" / "r1")
    make_run(tmp_path / "runs" / "other", model="vgg16", expand=0.125)
    before = sorted(p for p in tmp_path.rglob("*"))
    argv = [a.replace("{other}", str(tmp_path / "runs" / "other")) for a in argv]
    assert main(["race", str(run.path), *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pfs: error: ") and message in err and "\n" not in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_a_run_without_a_structure_is_refused_with_the_search_to_run(tmp_path, make_run, capsys):
    run, _, _ = make_run(tmp_path / "runs" / "r1")
    run.file("structure.json").unlink()
    assert main(["race", str(run.path), "--quiet"]) == 2
    assert "run `pfs search" in capsys.readouterr().err
    assert not (run.path / "race").exists()


def test_demo_fills_the_sizes_not_given(tmp_path, make_run, capsys, one_thread):
    from engine.training.recipes import DEMO_RACE

    run, _, _ = make_run(tmp_path / "runs" / "r1")
    out = _race(capsys, str(run.path), "--demo", "--epochs", "1", "--subset", "64", "--quiet", "--json")
    assert (out["epochs"], out["subset"], out["test_subset"]) == (1, 64, DEMO_RACE["test_subset"])
    assert Race.load(run.path / "race").options["batch_size"] == DEMO_RACE["batch_size"]
