"""Learning long enough: the measured default length, and the warning when a run falls short."""
from __future__ import annotations

import json

import pytest

from engine.cli import build_parser, main
from engine.cli.common import learn_config
from engine.learn_schedule import LR

TINY = ["resnet20", "--dataset", "synthetic", "--steps", "2", "--batch-size", "8", "--eval-every", "1",
        "--heldout-limit", "16", "--quiet"]


@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10", "cifar100", "synthetic"])
def test_every_data_set_learns_the_papers_schedule_by_default(dataset):
    # the schedule study could not tell schedules apart by retrained accuracy: the paper's wins
    other = learn_config(build_parser().parse_args(["learn", "resnet20", "--dataset", dataset]))
    assert (other.epochs, other.steps, other.lr, other.eval_every) == (10, None, 0.01, None)


def test_explicit_flags_win_over_the_default_schedule():
    parse = build_parser().parse_args
    epochs = learn_config(parse(["learn", "resnet20", "--epochs", "3"]))
    assert (epochs.epochs, epochs.steps, epochs.lr) == (3, None, LR)
    given = learn_config(parse(["learn", "resnet20", "--steps", "40", "--lr", "0.01", "--eval-every", "7"]))
    assert (given.steps, given.lr, given.eval_every) == (40, 0.01, 7)


def test_a_run_short_of_r_warns_on_stderr_and_in_its_summary(tmp_path, capsys):
    out = tmp_path / "short"
    assert main(["learn", *TINY, "--out", str(out), "--json"]) == 0  # a warning, not a failure
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("pfs: warning:")]
    assert len(warnings) == 1
    assert "no evaluated step met r" in warnings[0] and "against r = 0.2" in warnings[0]
    assert "nothing to fix" in warnings[0] and "last gates were kept" in warnings[0]
    assert "learn longer" not in warnings[0]  # the study: longer does not meet r, and meeting it cost accuracy
    summary = json.loads((out / "summary.json").read_text())
    assert summary["converged"] is False and summary["warning"] in warnings[0]
    assert summary["open_frac"] > 0.2 and summary["selected_step"] == 2  # the last gates, for want of better
    printed = json.loads(captured.out)
    assert printed["converged"] is False and printed["warning"] == summary["warning"]


def test_a_run_that_meets_r_is_quiet(tmp_path, capsys):
    out = tmp_path / "met"
    assert main(["learn", *TINY, "--sparsity", "1", "--out", str(out)]) == 0  # every step meets r = 1
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "no step met r" not in captured.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["converged"] is True and "warning" not in summary


@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
def test_every_arm_that_learns_gates_gets_pfs_learns_schedule(dataset):
    """`pfs baseline` and `pfs experiment` fill what is left out exactly as `pfs learn` does."""
    from dataclasses import asdict

    from engine.cli.evidence import baseline_spec
    from engine.evidence.grids import LEARN_KEYS, normalise

    parse = build_parser().parse_args
    learned = asdict(learn_config(parse(["learn", "resnet20", "--dataset", dataset])))
    for kind in ("pfs", "l1-gates", "pretrained-pfs"):
        spec = baseline_spec(parse(["baseline", kind, "resnet20", "--dataset", dataset, "--flops", "0.5",
                                      "--out", "x"]))
        # the schedule, not where it runs: `pfs learn --device` (default auto) is not a baseline flag
        assert {k: v for k, v in asdict(spec.learn).items() if k not in ("seed", "device")} == \
            {k: v for k, v in learned.items() if k not in ("seed", "device")}
    grid = normalise("baselines", {"model": "resnet20", "dataset": dataset, "flops": 0.5, "train_epochs": 2,
                                   "learn": {}})
    assert grid["learn"] == {k: v for k, v in learned.items() if k in LEARN_KEYS}
    given = normalise("baselines", {"model": "resnet20", "dataset": dataset, "flops": 0.5, "train_epochs": 2,
                                    "learn": {"steps": 40, "lr": 0.05}})["learn"]
    assert (given["steps"], given["lr"]) == (40, 0.05)
