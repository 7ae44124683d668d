"""A line plot (textual-plotext) that redraws only when given new data."""
from __future__ import annotations

from textual_plotext import PlotextPlot

FEW_POINTS = 12  # up to this many a series is drawn as points, not a line through them


def thin(xs: list, ys: list, limit: int = 240) -> tuple[list, list]:
    """At most `limit` points, evenly spaced, last one kept (plotting 10k points is slow)."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    idx = [round(i * (n - 1) / (limit - 1)) for i in range(limit)]
    return [xs[i] for i in idx], [ys[i] for i in idx]


def moving_average(ys: list[float], window: int) -> list[float]:
    """Trailing mean over `window` points (per-step losses are too noisy to read)."""
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= window:
            total -= ys[i - window]
        out.append(total / min(i + 1, window))
    return out


class CurvePlot(PlotextPlot):
    """One or more series against step; `show` replaces the data.

    `zero_based` plots from 0 up (accuracy): a tiny y range would make noise at chance
    level look like a trend.
    """

    def __init__(self, title: str, *, id: str | None = None, marker: str = "braille",
                 zero_based: bool = False) -> None:
        super().__init__(id=id)
        self.title = title
        self.zero_based = zero_based
        self.marker = marker  # "dot" for sparse series (a braille dot is hard to see)
        self.series: list[tuple[str, list, list]] = []
        self._version = 0
        self._cache: tuple | None = None

    def show(self, series: list[tuple[str, list, list]]) -> None:
        """Draw these (color, xs, ys) series (unchanged data: nothing to do)."""
        if series == self.series:
            return
        self.series = series
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        top = 0.0
        for color, xs, ys in series:
            if xs:
                x, y = thin(xs, ys)
                if len(x) <= FEW_POINTS:
                    # A line would join two epochs into what looks like a measured curve.
                    plt.scatter(x, y, marker="dot", color=color)
                else:
                    plt.plot(x, y, marker=self.marker, color=color)
                top = max(top, max(y))
        few = sorted({x for _, xs, _ in series for x in xs})
        if 0 < len(few) <= FEW_POINTS:
            plt.xticks(few, [f"{x:g}" for x in few])  # ticks at the points measured, not 38.2
        if self.zero_based and top > 0:
            plt.ylim(0, min(1.0, top * 1.25))
        self._version += 1
        self.refresh()

    def render(self):
        # PlotextPlot rebuilds the whole plot on every render (page switch, focus, ...);
        # rebuild only when the data, the size or the theme changed.
        key = (self._version, self.size, self.app.theme)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, super().render())
        return self._cache[1]
