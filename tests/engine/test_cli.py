"""The `pfs` command end to end, and every user mistake ending in one clear line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from engine.cli import main

LEARN = ["--dataset", "synthetic", "--steps", "6", "--batch-size", "32", "--eval-every", "3", "--quiet"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r20"
    assert main(["learn", "resnet20", *LEARN, "--out", str(out)]) == 0
    return out


def test_learn_writes_a_complete_run_directory(learned):
    names = {p.name for p in learned.iterdir()}
    assert {"config.json", "events.jsonl", "init.pt", "gates.pt", "summary.json"} <= names
    config = json.loads((learned / "config.json").read_text())
    assert config["model"] == "resnet20" and config["learn"]["steps"] == 6
    kinds = [json.loads(line)["type"] for line in (learned / "events.jsonl").read_text().splitlines()]
    assert kinds[0] == "started" and kinds.count("step") == 6 and "eval" in kinds and kinds[-1] == "finished"
    gates = torch.load(learned / "gates.pt", weights_only=True)
    assert set(gates) == {f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)}


def test_search_prints_and_writes_structure_json(learned, capsys):
    code, out, err = run_cli(capsys, "search", str(learned), "--flops", "0.5", "--json")
    assert code == 0
    printed = json.loads(out)
    written = json.loads((learned / "structure.json").read_text())
    for key in ("model", "widths", "dense_widths", "macs", "params", "dense_macs", "dense_params", "budget",
                "threshold", "tied_channels", "input_size", "num_classes"):
        assert key in written, key
    assert printed["macs"] == written["macs"] <= 0.5 * written["dense_macs"]
    assert written["input_size"] == [3, 32, 32] and written["num_classes"] == 10
    code, out, _ = run_cli(capsys, "flops", "resnet20", "--widths", str(learned / "structure.json"), "--json")
    assert code == 0 and json.loads(out)["macs"] == written["macs"]


def test_prune_is_learn_then_search(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "prune", "resnet20", *LEARN, "--flops", "0.3", "--json",
                           "--out", str(tmp_path / "p"))
    assert code == 0 and json.loads(out)["macs"] <= 0.3 * json.loads(out)["dense_macs"]
    assert (tmp_path / "p" / "structure.json").is_file()


def test_models_and_flops_tables(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["resnet56"]["macs"] == 125_747_850  # shortcut B, the official code's
    code, out, _ = run_cli(capsys, "flops", "resnet56", "--shortcut", "A", "--json")
    assert json.loads(out)["macs"] == 125_485_706
    code, out, _ = run_cli(capsys, "flops", "resnet20", "--dataset", "fashion-mnist", "--json")
    assert json.loads(out)["input_size"] == [1, 28, 28]


@pytest.mark.parametrize("argv, needle", [
    (["flops", "resnet99"], "unknown model"),
    (["learn", "resnet20", "--dataset", "mnist2", "--steps", "1"], "unknown data set"),
    (["learn", "resnet20", "--dataset", "cifar10", "--data-root", "{tmp}", "--steps", "1"], "--download"),
    (["learn", "resnet20", "--dataset", "fashion-mnist", "--data-root", "{tmp}", "--steps", "1"],
     "apt-get install dataset-fashion-mnist"),
    (["learn", "resnet20", "--sparsity", "1.5", "--steps", "1"], "sparsity"),
    (["learn", "resnet20", "--steps", "0"], "positive integer"),
    (["learn", "resnet20", "--gamma", "abc"], "expected a number"),
    (["prune", "resnet20", "--flops", "1.5", "--steps", "1"], "(0, 1]"),
    (["prune", "resnet20", "--flops", "0", "--steps", "1"], "(0, 1]"),
    (["search", "{tmp}/nope", "--flops", "0.5"], "does not exist"),
    (["search", "{tmp}", "--flops", "0.5"], "not a pfs run"),
    (["frobnicate"], "invalid choice"),
])
def test_user_mistakes_print_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    code, out, err = run_cli(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("pfs: error: ") and needle in err
    assert "Traceback" not in err


def test_unreachable_budget_names_the_smallest_possible(learned, capsys):
    code, _, err = run_cli(capsys, "search", str(learned), "--flops", "0.01")
    assert code == 2 and "raise --flops to at least" in err


def test_corrupt_run_and_unsafe_gates_are_refused(learned, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{oops")
    code, _, err = run_cli(capsys, "search", str(bad), "--flops", "0.5")
    assert code == 2 and "corrupt" in err

    import shutil

    evil = tmp_path / "evil"
    shutil.copytree(learned, evil)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/pwned",))

    torch.save({"layer1.0": Payload()}, evil / "gates.pt")
    code, _, err = run_cli(capsys, "search", str(evil), "--flops", "0.5")
    assert code == 2 and "refusing to load" in err and err.count("\n") == 1
    assert not (tmp_path / "pwned").exists()


def test_existing_run_is_not_overwritten_by_accident(learned, capsys):
    code, _, err = run_cli(capsys, "learn", "resnet20", *LEARN, "--out", str(learned))
    assert code == 2 and "already holds a run" in err


def test_installed_console_script_and_module_entry_point(tmp_path):
    for cmd in (["pfs"], [sys.executable, "-m", "engine"]):
        exe = cmd if cmd[0] != "pfs" else [os.path.join(os.path.dirname(sys.executable), "pfs")]
        done = subprocess.run([*exe, "flops", "resnet56", "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["macs"] == 125_747_850
        bad = subprocess.run([*exe, "flops", "nope"], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0


def test_compare_reports_keep_ratios_and_correlations(tmp_path, capsys):
    runs = []
    for seed in (1, 2):
        out = tmp_path / f"s{seed}"
        assert main(["prune", "resnet20", *LEARN, "--seed", str(seed), "--flops", "0.4", "--out", str(out)]) == 0
        runs.append(str(out))
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "compare", *runs, "--json")
    data = json.loads(out)
    assert code == 0 and len(data["keep_ratios"][runs[0]]) == 9
    assert data["correlation"][0][0] == 1.0 and data["correlation"][0][1] == data["correlation"][1][0]
    code, _, err = run_cli(capsys, "compare", runs[0])
    assert code == 2 and "at least two" in err
