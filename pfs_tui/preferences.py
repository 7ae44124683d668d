"""Settings that outlive the explorer: the model, target and knobs a presenter picked yesterday.

Kept in a small JSON file ($XDG_CONFIG_HOME/pfs/tui.json, else ~/.config/pfs/tui.json),
written atomically on every change, so a crash never leaves half a file.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from engine.runs import atomic_write_json
from pfs_tui.session import FIELDS, Settings

# What Setup edits that a presenter prepares before the room arrives (`--model` on the
# command line wins over the kept model; a replayed or followed run's settings are not kept).
PERSISTED = ("model", "budget", "sparsity", "gamma", "steps", "train_epochs", "train_subset")
MAX_SPEC = 500  # a longer model spec is no spec a person typed


def default_path() -> Path:
    """Where the explorer keeps its preferences for this user."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "pfs" / "tui.json"


def load(path: Path, settings: Settings) -> tuple[Settings, str]:
    """`settings` with the saved preferences applied, and a warning ("" if none).

    A missing file is no preference; an unreadable or out-of-range one is ignored with a
    warning, so a broken file never keeps the explorer from starting.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return settings, ""
    except (OSError, ValueError) as exc:
        return settings, f"ignoring {path}: {exc}"
    if not isinstance(data, dict):
        return settings, f"ignoring {path}: not a JSON object"
    values, bad = {}, []
    for name in PERSISTED:
        if name in data:
            if _acceptable(name, data[name]):
                values[name] = data[name]
            else:
                bad.append(name)
    warning = f"ignoring {', '.join(bad)} in {path}: not a value Setup accepts" if bad else ""
    return replace(settings, **values), warning


def _acceptable(name: str, value) -> bool:
    """Whether a kept value is one Setup itself could have set (a hand-edited file may lie)."""
    if name == "model":
        return isinstance(value, str) and 0 < len(value.strip()) <= MAX_SPEC
    spec = FIELDS[name]
    kinds = (int,) if spec.integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool) and spec.minimum <= value <= spec.maximum


def save(path: Path, settings: Settings) -> None:
    """Write the persisted settings (atomically)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {name: getattr(settings, name) for name in PERSISTED})
