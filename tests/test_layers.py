"""The engine's layers hold: import-linter's contracts (pyproject.toml) pass, and they do
catch an upward import when one is added."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_the_import_contracts_are_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    """data may not import runs: the contract names the offending import."""
    copy = tmp_path / "repo"
    for name in ("engine", "sample_models", "pfs_tui"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    memory = copy / "engine" / "data" / "memory.py"
    memory.write_text(memory.read_text() + "\nfrom engine.runs import RunDir  # noqa: E402,F401\n")
    result = _lint_imports(copy)
    assert result.returncode == 1
    assert "engine.data is not allowed to import engine.runs" in result.stdout
    assert "engine.data.memory -> engine.runs" in result.stdout
