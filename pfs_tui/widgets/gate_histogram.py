"""A small vertical histogram of gate values in [0, 1]."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

_BLOCKS = " ▁▂▃▄▅▆▇█"


def histogram(values: list[float], bins: int) -> list[int]:
    """Counts of `values` in `bins` equal bins over [0, 1] (1.0 falls in the last)."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    return counts


class GateHistogram(Widget):
    """Columns of eighth blocks, one per bin; the axis below marks 0, r and 1."""

    DEFAULT_CSS = """
    GateHistogram { height: 6; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: list[float] = []
        self.marker: float | None = None

    def show(self, values: list[float], marker: float | None = None) -> None:
        """Draw these gate values; `marker` (e.g. the target r) is shown on the axis."""
        self.values, self.marker = values, marker
        self.refresh()

    def render(self) -> Text:
        width, height = max(8, self.size.width), max(2, self.size.height)
        rows = height - 1
        if not self.values:
            return Text("no gates yet", style="dim")
        counts = histogram(self.values, width)
        top = max(counts) or 1
        levels = [c / top * rows * 8 for c in counts]
        text = Text(no_wrap=True)
        for row in range(rows):
            floor = (rows - 1 - row) * 8
            line = "".join(_BLOCKS[max(0, min(8, round(lv - floor)))] if lv > floor else " " for lv in levels)
            text.append(line + "\n", style="magenta")
        axis = ["─"] * width
        axis[0], axis[-1] = "0", "1"
        if self.marker is not None and 0 < self.marker < 1:
            axis[min(width - 2, max(1, int(self.marker * width)))] = "r"
        text.append("".join(axis), style="dim")
        return text
