"""Per-layer keep ratios of several runs side by side, each bar marking the uniform width."""
from __future__ import annotations

import math

from rich.text import Text
from textual.widget import Widget

UNIFORM_MARK = "│"
COLOURS = ("green", "magenta", "yellow", "blue", "red", "cyan")


def ratio_bar(ratio: float, uniform: float | None, width: int, style: str) -> Text:
    """A bar of `width` cells filled to `ratio`, with a mark where the uniform network's
    ratio falls (its cell shows the mark in cyan, over the fill or the empty part)."""
    on = 0 if not math.isfinite(ratio) else min(width, round(width * ratio))
    if ratio > 0 and on == 0:
        on = 1
    mark = None
    if uniform is not None and math.isfinite(uniform):
        mark = min(width - 1, max(0, round(width * uniform) - 1))
    bar = Text()
    for i in range(width):
        if i == mark:
            bar.append(UNIFORM_MARK, style="bold cyan on grey23" if i < on else "bold cyan")
        elif i < on:
            bar.append("█", style=style)
        else:
            bar.append("░", style="grey50")
    return bar


class KeepBars(Widget):
    """One line per layer; in it one bar per run (keep ratio, uniform width marked `│`)."""

    DEFAULT_CSS = """
    KeepBars { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.groups: list[str] = []
        self.columns: list[tuple[str, list[float], list[float]]] = []  # label, ratios, uniform ratios

    def show(self, groups: list[str], columns: list[tuple[str, list[float], list[float]]]) -> None:
        """Draw these runs: (label, keep ratio per group, uniform ratio per group)."""
        self.groups, self.columns = list(groups), list(columns)
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.groups) + 1 if self.columns else 1

    def render(self) -> Text:
        if not self.columns:
            return Text("pick two or more runs to compare", style="dim")
        name_w = min(12, max(len(g) for g in self.groups))
        n = len(self.columns)
        # Each run gets a bar and its percentage ("100%" at most: 4 cells) plus a gap.
        cell = max(8, (self.size.width - name_w - 1) // n)
        bar_w = cell - 6
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" " * (name_w + 1))
        for k, (label, _, _) in enumerate(self.columns):
            text.append(f"{k + 1} {label}"[:cell - 1].ljust(cell), style=f"bold {COLOURS[k % len(COLOURS)]}")
        for row, group in enumerate(self.groups):
            text.append("\n")
            text.append(f"{group[-name_w:]:>{name_w}} ")
            for k, (_, ratios, uniform) in enumerate(self.columns):
                ratio = ratios[row]
                text.append_text(ratio_bar(ratio, uniform[row], bar_w, COLOURS[k % len(COLOURS)]))
                text.append(f" {ratio:>4.0%} " if math.isfinite(ratio) else "   -  ")
        return text
