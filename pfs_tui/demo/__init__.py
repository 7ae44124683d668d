"""The bundled demo: a recorded gate-learning run, its structure and a finished race.

`pfs tui --demo` opens a temporary copy of `recording/` (made by tools/make_demo.py with
the project's default gate-learning schedule; re-made when that schedule changes), so a
room without time or compute to learn live still sees every page work. Data only: run
directories read as any run is (JSON, events, safetensors-free weights via weights_only).
"""
from __future__ import annotations

import shutil
from pathlib import Path

RECORDING = Path(__file__).parent / "recording"


def recorded_run(root: Path = RECORDING) -> Path:
    """The recorded gate-learning run under `root`: the one holding a race."""
    runs = sorted(p for p in root.iterdir() if (p / "race" / "race.json").is_file())
    if not runs:
        raise FileNotFoundError(f"no recorded run with a race under {root}; re-make it with tools/make_demo.py")
    return runs[0]


def copy_recording(dest: Path) -> Path:
    """Copy the recording into `dest` (a runs folder); the recorded run's path there."""
    shutil.copytree(RECORDING, dest, dirs_exist_ok=True)
    return dest / recorded_run().name


__all__ = ["RECORDING", "copy_recording", "recorded_run"]
