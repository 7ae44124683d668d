"""What a run's speed.json holds (written by `pfs bench`), read back for people.

speed.json is data like every run file: `pfs runs`, the explorer and `pfs bench` itself
read it through `speed_summary`, which never raises; a file without the expected shape
gives None, and the listing names it corrupt.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

SPEED_FILE = "speed.json"
ENGINES = ("torch", "onnxruntime")
BUSY_SHARE = 0.7  # a timing that got less of a core than this: its wall clock is the machine's load


@dataclass(frozen=True)
class SpeedSummary:
    """The headline of a benchmark: MACs ratio and measured speed-ups at the smallest batch."""

    macs_ratio: float  # dense MACs / pruned MACs
    batch_size: int
    speedups: dict[str, float]  # engine -> dense median time / pruned median time
    cpu_time: bool = False  # the machine was busy: the speed-ups are of CPU time, not wall clock

    def line(self) -> str:
        """'2.00x fewer MACs; 1.45x faster (torch, batch 1), 1.60x (onnxruntime)'."""
        parts = []
        for engine, value in self.speedups.items():
            where = f"{engine}, batch {self.batch_size}" if not parts else engine
            parts.append(f"{value:.2f}x" + (" faster" if not parts else "") + f" ({where})")
        busy = "; in CPU time (the machine was busy)" if self.cpu_time and parts else ""
        return f"{self.macs_ratio:.2f}x fewer MACs; " + (", ".join(parts) or "not timed") + busy


def speed_summary(data) -> SpeedSummary | None:
    """The headline of a parsed speed.json, or None when it does not hold one.

    Wall-clock speed-ups, unless the timing got less than BUSY_SHARE of a core: then the
    wall clock measured the load, and the CPU-time speed-ups are shown (and said to be).
    """
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return None
    macs = data.get("macs")
    if not (isinstance(macs, dict) and _positive(macs.get("dense")) and _positive(macs.get("pruned"))):
        return None
    busy = _positive(data.get("cpu_share")) and data["cpu_share"] < BUSY_SHARE
    key = "cpu_speedup" if busy else "speedup"
    rows = [r for r in data["results"] if isinstance(r, dict) and r.get("engine") in ENGINES
            and _positive(r.get("batch_size")) and _positive(r.get(key))]
    if not rows:
        return None
    batch = min(r["batch_size"] for r in rows)
    speedups = {r["engine"]: float(r[key]) for r in rows if r["batch_size"] == batch}
    ordered = {e: speedups[e] for e in ENGINES if e in speedups}
    return SpeedSummary(macs_ratio=macs["dense"] / macs["pruned"], batch_size=batch, speedups=ordered,
                        cpu_time=busy)


def measured_speed(run_path: str | os.PathLike) -> SpeedSummary | None:
    """The headline of RUN/speed.json; None when the run has none or it cannot be read."""
    try:
        return speed_summary(json.loads((Path(run_path) / SPEED_FILE).read_bytes()))
    except (OSError, ValueError, RecursionError):
        return None


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
