"""Experiment grids: resume after a kill skipping finished cells, bad directories, the report."""
from __future__ import annotations

import json

import pytest
import torch

from engine.cli import main
from engine.errors import PfsError
from engine.evidence.experiments import Experiment
from engine.evidence.grids import run_experiment
from engine.evidence.report import write_report
from engine.training.train import StopRequested

LEARN = {"steps": 4, "batch_size": 16, "eval_every": 2, "heldout_limit": 100}
TINY = {"model": "resnet20", "dataset": "fashion-mnist", "flops": 0.05, "expand": 0.25, "subset": 256,
        "test_subset": 200, "train_batch_size": 64, "learn": LEARN}
BASELINES = {**TINY, "arms": ["pfs", "uniform", "random"], "seeds": [0, 1], "train_epochs": 1}
CORRELATION = {**TINY, "test_subset": 100, "arms": ["slimming", "pretrained-pfs"], "seeds": [0, 1, 2],
               "pretrain_epochs": [0, 1]}


@pytest.fixture(scope="module")
def fmnist():
    from engine.data import load_dataset

    torch.set_num_threads(1)
    return load_dataset("fashion-mnist")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, fmnist):
    """A baselines grid stopped in its third cell, then resumed: (exp path, stamps before, finished cells)."""
    exp = tmp_path_factory.mktemp("exp") / "baselines"
    done: list[str] = []
    stop = {"now": False}

    def on_cell(name, result):
        done.append(name)
        stop["now"] = len(done) == 2  # ask to stop as soon as the third cell is under way

    with pytest.raises(StopRequested):
        run_experiment("baselines", exp, BASELINES, data=fmnist, on_cell=on_cell, should_stop=lambda: stop["now"])
    stamps = {n: (exp / "cells" / n / "summary.json").stat().st_mtime_ns for n in done}
    first = list(done)
    stop["now"] = False
    run_experiment("baselines", exp, BASELINES, data=fmnist, on_cell=on_cell)
    return exp, stamps, first, done[len(first):]


def test_killed_grid_resumes_and_skips_finished_cells(interrupted):
    exp, stamps, first, resumed = interrupted
    assert first == ["pfs-s0", "uniform-s0"]
    assert resumed == ["random-s0", "pfs-s1", "uniform-s1", "random-s1"]  # nothing done twice
    for name, stamp in stamps.items():  # finished cells were not touched again
        assert (exp / "cells" / name / "summary.json").stat().st_mtime_ns == stamp
    results = json.loads((exp / "results.json").read_text())
    assert sorted(results["cells"]) == sorted(first + resumed)
    assert results["arms"]["uniform"]["test_acc"]["n"] == 2
    for cell in results["cells"].values():
        assert cell["macs"] <= cell["macs_ratio"] * 1e12 and 0 <= cell["test_acc"] <= 1
        assert cell["finding_seconds"] >= 0


def test_rerun_with_other_settings_or_version_is_refused(interrupted, tmp_path):
    exp, _, _, _ = interrupted
    before = (exp / "results.json").read_bytes()
    with pytest.raises(PfsError, match="other settings"):
        run_experiment("baselines", exp, {**BASELINES, "flops": 0.04})
    config = json.loads((exp / "config.json").read_text())
    other = tmp_path / "old"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({**config, "version": 99}))
    with pytest.raises(PfsError, match="another pfs version"):
        Experiment.open(other)
    (other / "config.json").write_text(json.dumps(config)[:40])  # half-written
    with pytest.raises(PfsError, match="half-written"):
        Experiment.open(other)
    assert (exp / "results.json").read_bytes() == before


def test_a_grid_grows_by_seeds_and_a_version_1_grid_resumes_as_it_began(interrupted, tmp_path):
    from engine.evidence.grids import grid_settings

    exp, _, _, _ = interrupted
    config = json.loads((exp / "config.json").read_text())
    assert config["version"] == 2 and config["settings"]["learn"]["lr"] == 0.01  # the whole schedule recorded
    assert config["settings"]["arch"] == {"shortcut": "B"}  # and the model options, defaults included
    assert config["settings"]["learn"]["steps"] == 4 and config["settings"]["learn"]["sparsity"] == 0.2
    grown = tmp_path / "grown"
    grown.mkdir()
    (grown / "config.json").write_text(json.dumps(config))
    more = grid_settings("baselines", {**BASELINES, "seeds": [0, 1, 2, 3]}, grown)
    assert Experiment.open_or_create(grown, "baselines", more).settings["seeds"] == [0, 1, 2, 3]
    assert json.loads((grown / "config.json").read_text())["settings"]["seeds"] == [0, 1, 2, 3]
    for fewer in ([0, 1], [1, 0, 2, 3, 4]):  # dropping or reordering seeds is another grid
        with pytest.raises(PfsError, match=r"other settings \(seeds\)"):
            Experiment.open_or_create(grown, "baselines", grid_settings("baselines", {**BASELINES, "seeds": fewer},
                                                                        grown))
    old = tmp_path / "v1"
    old.mkdir()
    v1_settings = {k: v for k, v in config["settings"].items() if k != "arch"}  # version 1 recorded none
    (old / "config.json").write_text(json.dumps({**config, "version": 1, "settings": {**v1_settings, "learn": LEARN}}))
    reopened = Experiment.open_or_create(old, "baselines", grid_settings("baselines", BASELINES, old), LEARN)
    assert reopened.version == 1 and reopened.settings["learn"] == LEARN  # its cells learn as they began
    with pytest.raises(PfsError, match=r"other settings \(learn\)"):
        Experiment.open_or_create(old, "baselines", grid_settings("baselines", BASELINES, old), {**LEARN, "steps": 5})


def test_copied_cells_are_adopted_and_a_foreign_one_is_refused(interrupted, fmnist, tmp_path):
    """Issue 15's grids outlive a machine: finished cells copied in (git, rsync) are not re-run,
    and a copied cell made with other settings is refused with one line naming it."""
    import shutil

    exp, _, _, _ = interrupted
    clone = tmp_path / "clone"
    shutil.copytree(exp, clone, ignore=shutil.ignore_patterns("checkpoints", "*.pt", "*.safetensors", "events.jsonl"))
    results = json.loads((clone / "results.json").read_text())
    del results["cells"]["uniform-s1"]  # its record was lost in the copy; its folder came along
    (clone / "results.json").write_text(json.dumps(results))
    stamp = (clone / "cells" / "uniform-s1" / "summary.json").stat().st_mtime_ns
    started = []
    run_experiment("baselines", clone, BASELINES, data=fmnist, on_start=lambda text, n, total: started.append(text))
    assert started == ["5 of 6 cells already finished, skipped", "cell 5 of 6: uniform seed 1"]
    assert (clone / "cells" / "uniform-s1" / "summary.json").stat().st_mtime_ns == stamp  # adopted, not re-run
    assert len(json.loads((clone / "results.json").read_text())["cells"]) == 6
    other = tmp_path / "other"
    run_experiment("baselines", other, {**BASELINES, "seeds": [0], "arms": ["uniform"]}, data=fmnist)
    shutil.rmtree(other / "cells" / "uniform-s0")
    (other / "results.json").unlink()
    shutil.copytree(exp / "cells" / "uniform-s0", other / "cells" / "uniform-s0")
    (other / "config.json").write_text((other / "config.json").read_text().replace('"flops": 0.05', '"flops": 0.06'))
    with pytest.raises(PfsError, match=r"uniform-s0 holds a uniform baseline made with other settings \(flops\)"):
        run_experiment("baselines", other, {**BASELINES, "seeds": [0], "arms": ["uniform"], "flops": 0.06}, data=fmnist)


def test_a_copied_cell_counts_only_the_settings_its_arm_uses(interrupted, fmnist, tmp_path):
    """A uniform cell is the same whatever the grid's gate-learning schedule, so a grid that
    learns longer adopts it; a cell trained otherwise than the grid trains is refused."""
    import shutil

    exp, _, _, _ = interrupted
    longer = {**BASELINES, "seeds": [0], "arms": ["uniform"], "learn": {**LEARN, "steps": 6}}
    for out in ("longer", "other-training"):
        shutil.copytree(exp / "cells" / "uniform-s0", tmp_path / out / "cells" / "uniform-s0",
                        ignore=shutil.ignore_patterns("checkpoints", "*.pt", "*.safetensors", "events.jsonl"))
    stamp = (tmp_path / "longer" / "cells" / "uniform-s0" / "summary.json").stat().st_mtime_ns
    results = run_experiment("baselines", tmp_path / "longer", longer, data=fmnist)
    assert (tmp_path / "longer" / "cells" / "uniform-s0" / "summary.json").stat().st_mtime_ns == stamp  # adopted
    original = json.loads((exp / "results.json").read_text())["cells"]["uniform-s0"]
    assert results["cells"]["uniform-s0"]["test_acc"] == original["test_acc"]
    with pytest.raises(PfsError, match=r"uniform-s0 was trained with other settings \(epochs\)"):
        run_experiment("baselines", tmp_path / "other-training", {**longer, "train_epochs": 2}, data=fmnist)


def test_a_cell_copied_unfinished_without_its_weights_starts_again(interrupted, fmnist, tmp_path):
    """A checkout carries a half-learned cell's config but not its init.pt: it is started again
    (said once), not a missing-file error that stops the grid."""
    import shutil

    exp, _, _, _ = interrupted
    clone = tmp_path / "clone"
    shutil.copytree(exp, clone, ignore=shutil.ignore_patterns("checkpoints", "*.pt", "*.safetensors", "events.jsonl"))
    results = json.loads((clone / "results.json").read_text())
    del results["cells"]["pfs-s1"]
    (clone / "results.json").write_text(json.dumps(results))
    cell = clone / "cells" / "pfs-s1"
    for name in ("structure.json", "summary.json", "timing.json"):  # as if copied while still learning
        (cell / name).unlink(missing_ok=True)
    started = []
    run_experiment("baselines", clone, BASELINES, data=fmnist, on_start=lambda text, n, total: started.append(text))
    assert started == ["5 of 6 cells already finished, skipped", "cell 4 of 6: pfs seed 1",
                       "pfs-s1 was copied unfinished, without its weights: started again"]
    again = json.loads((clone / "results.json").read_text())["cells"]["pfs-s1"]
    assert again["keep_ratios"] == json.loads((exp / "results.json").read_text())["cells"]["pfs-s1"]["keep_ratios"]


def test_cli_bad_experiment_input_is_one_error_line(interrupted, tmp_path, capsys):
    exp, _, _, _ = interrupted
    code = main(["experiment", "baselines", "resnet20", "--flops", "0.3", "--train-epochs", "1", "--out", str(exp)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("pfs: error:") and "other settings" in err[0]
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    assert main(["report", str(tmp_path / "x")]) == 2
    assert "not a pfs experiment" in capsys.readouterr().err
    code = main(["baseline", "uniform", "resnet20", "--flops", "0.0001", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "raise --flops" in err[0] and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def correlation(tmp_path_factory, fmnist):
    exp = tmp_path_factory.mktemp("corr") / "correlation"
    run_experiment("correlation", exp, CORRELATION, data=fmnist)
    return exp


def test_correlation_grid_has_a_matrix_per_arm_and_epoch(correlation):
    results = json.loads((correlation / "results.json").read_text())
    assert sorted(results["cells"]) == sorted(
        [f"slimming-e1-s{s}" for s in range(3)] + [f"pretrained-pfs-e{e}-s{s}" for e in (0, 1) for s in range(3)])
    assert sorted(results["correlation"]["pretrained-pfs"]) == ["0", "1"]
    entry = results["correlation"]["slimming"]["1"]
    assert entry["seeds"] == [0, 1, 2] and len(entry["matrix"]) == 3 and entry["matrix"][0][0] == 1.0
    # one pre-training per seed and arm, its weights taken at each epoch count
    assert sorted(p.name for p in (correlation / "pretrain").iterdir()) == sorted(
        f"{a}-s{s}" for a in ("slimming", "pretrained-pfs") for s in range(3))
    assert (correlation / "pretrain" / "slimming-s0" / "checkpoints" / "epoch-1.pt").is_file()


def test_report_renders_tables_figures_and_json(interrupted, correlation, tmp_path):
    from matplotlib.image import imread

    exp, _, _, _ = interrupted
    notes = tmp_path / "notes.md"
    notes.write_text("Schedule: tiny.\n")
    out = tmp_path / "report"
    report = write_report([exp, correlation], out, notes=notes, title="Evidence")
    md = (out / "report.md").read_text()
    assert md.startswith("# Evidence\n\nSchedule: tiny.")
    results = json.loads((exp / "results.json").read_text())
    for arm in ("pfs", "uniform", "random"):
        acc = results["arms"][arm]["test_acc"]
        assert f"| {arm} | {acc['mean']:.4f} ± {acc['sd']:.4f} |" in md
    paired = {d["versus"]: d for d in report["experiments"][0]["paired_differences"]}
    assert set(paired) == {"uniform", "random"} and all(set(d) >= {"arm", "versus", "n", "mean", "se", "ci95"}
                                                       for d in paired.values())
    assert f"- PFS - uniform = {100 * paired['uniform']['mean']:+.2f}" in md
    not_ahead = [a for a in ("uniform", "random") if paired[a]["verdict"] != "ahead"]
    assert (f"**PFS is not ahead of {', '.join(not_ahead)}** at this budget" in md) == bool(not_ahead)
    learned = [c["learn"] for c in results["cells"].values() if c["arm"] == "pfs"]
    assert len(learned) == 2 and all(f["steps"] == 4 and f["classes"] == 10 and 0 <= f["open_frac"] <= 1
                                     for f in learned)
    missed = sum(not f["converged"] for f in learned)
    [line] = report["experiments"][0]["gate_learning"]
    assert line.startswith(f"pfs: {missed} of 2 cells had no evaluated step with at most r open") and line in md
    assert "near chance (under 0.20)" in line and not any(c.get("learn") for c in results["cells"].values()
                                                          if c["arm"] != "pfs")
    corr = json.loads((correlation / "results.json").read_text())["correlation"]
    mean = corr["slimming"]["1"]["mean"]
    assert (f"{mean:.3f}" if mean is not None else "n/a") in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["baselines-accuracy-vs-macs.png", "baselines-keep-ratios.png",
                    "correlation-correlation-pretrained-pfs.png", "correlation-correlation-slimming.png"]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and imread(p).shape[0] > 100
        assert f"]({p.name})" in md
    saved = json.loads((out / "report.json").read_text())
    assert saved == json.loads(json.dumps(report)) and [e["kind"] for e in saved["experiments"]] == [
        "baselines", "correlation"]


def test_report_of_an_unfinished_experiment_needs_partial(fmnist, tmp_path):
    exp = tmp_path / "e"
    settings = {**BASELINES, "arms": ["uniform", "random"], "seeds": [0]}
    with pytest.raises(StopRequested):
        run_experiment("baselines", exp, settings, data=fmnist, on_cell=lambda n, r: None,
                       should_stop=lambda: (exp / "results.json").is_file())
    with pytest.raises(PfsError, match="not finished .* --partial"):
        write_report([exp], tmp_path / "r")
    write_report([exp], tmp_path / "r", partial=True)
    assert "Incomplete: 1 cell(s)" in (tmp_path / "r" / "report.md").read_text()


def test_report_refuses_experiments_of_different_models(interrupted, tmp_path):
    import shutil

    exp, _, _, _ = interrupted
    other = tmp_path / "other"
    shutil.copytree(exp, other, ignore=shutil.ignore_patterns("cells"))
    config = json.loads((other / "config.json").read_text())
    config["settings"]["dataset"] = "cifar10"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(PfsError, match="different models or data sets"):
        write_report([exp, other], tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_cli_baseline_makes_a_listed_run(tmp_path, capsys):
    out = tmp_path / "runs" / "u"
    assert main(["baseline", "uniform", "resnet20", "--flops", "0.3", "--out", str(out), "--quiet"]) == 0
    assert "next: pfs train" in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == ["u"] and listed[0]["status"] == "finished"
    assert listed[0]["budget"] == 0.3


def test_ticket_grid_trains_one_structure_three_ways(interrupted, fmnist, tmp_path):
    exp, _, _, _ = interrupted
    run = exp / "cells" / "pfs-s0"
    settings = {"run": str(run), "seeds": [0], "train_epochs": 1, "pretrain_epochs": 1, "subset": 256,
                "test_subset": 100, "train_batch_size": 64}
    results = run_experiment("ticket", tmp_path / "t", settings, data=fmnist)
    assert sorted(results["cells"]) == ["inherit-s0", "scratch-s0", "ticket-s0"]
    macs = {c["macs"] for c in results["cells"].values()}
    assert macs == {json.loads((run / "structure.json").read_text())["macs"]}
    inits = {n: json.loads((tmp_path / "t" / "cells" / n / "config.json").read_text())["train"]["init"]
             for n in results["cells"]}
    assert inits == {"inherit-s0": "inherit", "scratch-s0": "scratch", "ticket-s0": "ticket"}
    assert (tmp_path / "t" / "pretrain" / "dense" / "checkpoints" / "last.pt").is_file()
    # weights of another model are refused before any cell trains
    other = tmp_path / "wrong.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, other)
    with pytest.raises(PfsError, match="does not fit"):
        run_experiment("ticket", tmp_path / "t2", {**settings, "pretrained": str(other)}, data=fmnist)
    assert not (tmp_path / "t2" / "cells").exists()


def test_paired_differences_pair_by_seed_with_a_t_interval():
    from engine.evidence.report import paired_differences, verdict_line

    acc = {("pfs", 0): 0.90, ("pfs", 1): 0.88, ("pfs", 2): 0.86, ("uniform", 0): 0.89, ("uniform", 1): 0.87,
           ("uniform", 2): 0.85, ("random", 0): 0.80, ("random", 1): 0.95, ("random", 2): 0.70}
    cells = {f"{a}-s{s}": {"arm": a, "seed": s, "test_acc": v} for (a, s), v in acc.items()}
    cells["slimming-s0"] = {"arm": "slimming", "seed": 0, "test_acc": 0.95}
    arms = {a: {} for a in ("uniform", "pfs", "random", "slimming")}
    got = {d["versus"]: d for d in paired_differences({"cells": cells, "arms": arms})}
    # Uniform is 1 point behind in every seed: a spread of 0, yet a between-seed sd of 2 points.
    uniform = got["uniform"]
    assert uniform["n"] == 3 and uniform["mean"] == pytest.approx(0.01) and uniform["se"] == pytest.approx(0, abs=1e-12)
    assert uniform["verdict"] == "ahead" and uniform["ci95"] == pytest.approx([0.01, 0.01])
    random_ = got["random"]  # diffs +0.10, -0.07, +0.16: mean 0.0633, sd 0.1193, se 0.0689, t(2) 4.303
    assert random_["mean"] == pytest.approx(0.19 / 3) and random_["se"] == pytest.approx(0.068880, rel=1e-4)
    assert random_["ci95"] == pytest.approx([0.19 / 3 - 4.303 * 0.068880, 0.19 / 3 + 4.303 * 0.068880], rel=1e-4)
    assert random_["verdict"] == "level"
    assert got["slimming"]["n"] == 1 and got["slimming"]["ci95"] is None
    assert verdict_line(uniform) == "PFS - uniform = +1.00 ± 0.00 points (95% CI +1.00..+1.00, 3 seeds): ahead"
    assert verdict_line(got["slimming"]) == "PFS - slimming = -5.00 points (1 seed): too few seeds to tell"
    assert [d["versus"] for d in paired_differences({"cells": cells, "arms": arms})] == \
        ["uniform", "random", "slimming"]
