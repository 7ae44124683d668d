"""The engine and the sample models are a library: importing them never pulls in the TUI stack."""
from __future__ import annotations

import json
import subprocess
import sys

UI_MODULES = ("textual", "rich", "textual_plotext", "plotext", "textual_serve", "pfs_tui")
HEADLESS = ("engine", "sample_models", "engine.cli", "engine.jobs", "engine.learn", "engine.search", "engine.data",
            "engine.runs", "engine.events", "engine.training")


def _loaded_after(imports: str) -> list[str]:
    """Top-level UI packages in sys.modules after `imports` in a fresh interpreter."""
    code = (f"import json, sys; {imports}; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({UI_MODULES!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_importing_engine_and_sample_models_loads_no_ui_module():
    assert _loaded_after("; ".join(f"import {m}" for m in HEADLESS)) == []


def test_importing_the_tui_package_alone_does_not_start_textual():
    """`pfs tui` resolves pfs_tui first; only running the app may load Textual."""
    assert _loaded_after("import pfs_tui") == ["pfs_tui"]
