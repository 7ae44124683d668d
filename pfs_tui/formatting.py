"""Text for people on small screens: MACs and parameter counts to three digits, errors in the explorer's words."""
from __future__ import annotations

import math
import re


def human(n: int | float | None) -> str:
    """12345678 -> '12.3M' (the screens compare sizes; exact counts are in the CLI's --json)."""
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(int(n))


# The engine's messages name `pfs` command-line flags; in the explorer the same knob is a
# field with another name. (Longest first, so --batch-size is not read as --batch.)
_FLAG_SETTINGS = {"--batch-size": "batch size", "--sparsity": "sparsity r", "--gamma": "gamma",
                  "--steps": "steps", "--epochs": "epochs", "--seed": "seed", "--expand": "expansion",
                  "--flops": "FLOPs target", "--budget": "FLOPs target", "--reg": "regulariser",
                  "--subset": "retrain subset"}
_FLAG_RE = re.compile("|".join(re.escape(f) for f in sorted(_FLAG_SETTINGS, key=len, reverse=True)) + r"\b")


def explorer_terms(message: str) -> str:
    """An engine error in the explorer's words: its settings' names instead of CLI flags."""
    message = message.replace("pass --data-root DIR", "restart the explorer with `pfs tui --data-root DIR`")
    message = message.replace("add --download (needs internet)",
                              "fetch it once with `pfs learn ... --download` (needs internet)")
    message = message.replace("or a larger --input-size", "or a data set with larger images")
    return _FLAG_RE.sub(lambda m: _FLAG_SETTINGS[m.group(0)], message)


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A number to `spec`, or '-' when there is none (None, NaN, inf)."""
    return format(value, spec) if value is not None and math.isfinite(value) else "-"
