"""A correlation matrix drawn in the terminal: one coloured cell per pair, value printed."""
from __future__ import annotations

import math

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

_BLUE, _GREY, _RED = (40, 80, 200), (60, 60, 60), (200, 50, 40)


def cell_colour(value: float) -> Color:
    """-1 blue, 0 grey, +1 red (a diverging scale, as the paper's heat-maps); NaN dark."""
    if not math.isfinite(value):
        return Color.from_rgb(25, 25, 25)
    v = max(-1.0, min(1.0, value))
    a, b = (_GREY, _RED) if v >= 0 else (_GREY, _BLUE)
    t = abs(v)
    return Color.from_rgb(*(round(x + (y - x) * t) for x, y in zip(a, b)))


class HeatMap(Widget):
    """Rows and columns are runs (numbered as on the Layers tab); cells show r to 2 places."""

    DEFAULT_CSS = """
    HeatMap { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.labels: list[str] = []
        self.matrix: list[list[float]] = []

    def show(self, labels: list[str], matrix) -> None:
        self.labels = list(labels)
        self.matrix = [[float(v) for v in row] for row in matrix]
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.labels) + 2 if self.labels else 1

    def render(self) -> Text:
        n = len(self.labels)
        if not n:
            return Text("no correlation yet", style="dim")
        num_w = len(str(n))
        cell = max(5, min(7, (self.size.width - num_w - 2) // n))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" " * (num_w + 1))
        for j in range(n):
            text.append(f"{j + 1:^{cell}}", style="bold")
        for i, row in enumerate(self.matrix):
            text.append(f"\n{i + 1:>{num_w}} ", style="bold")
            for v in row:
                label = f"{v:+.2f}" if math.isfinite(v) else "n/a"
                text.append(f"{label:^{cell}}", style=Style(color="white", bgcolor=cell_colour(v)))
            text.append(f" {self.labels[i]}", style="dim")
        text.append("\n" + " " * (num_w + 1))
        for v in (-1.0, -0.5, 0.0, 0.5, 1.0):
            text.append(f"{v:^+5.1f}", style=Style(color="white", bgcolor=cell_colour(v)))
        text.append("  Pearson r of keep ratios", style="dim")
        return text
