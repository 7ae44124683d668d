"""Numbers for people on small screens: MACs and parameter counts to three digits."""
from __future__ import annotations


def human(n: int | float | None) -> str:
    """12345678 -> '12.3M' (the screens compare sizes; exact counts are in the CLI's --json)."""
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(int(n))
