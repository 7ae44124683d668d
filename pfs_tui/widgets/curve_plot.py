"""A line plot (textual-plotext) that redraws only when given new data."""
from __future__ import annotations

from textual_plotext import PlotextPlot


def thin(xs: list, ys: list, limit: int = 240) -> tuple[list, list]:
    """At most `limit` points, evenly spaced, last one kept (plotting 10k points is slow)."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    idx = [round(i * (n - 1) / (limit - 1)) for i in range(limit)]
    return [xs[i] for i in idx], [ys[i] for i in idx]


class CurvePlot(PlotextPlot):
    """One or more named series against step; `show` replaces the data."""

    def __init__(self, title: str, *, id: str | None = None, ylim: tuple[float, float] | None = None,
                 marker: str = "braille") -> None:
        super().__init__(id=id)
        self.title = title
        self.ylim = ylim
        self.marker = marker  # "dot" for sparse series (a braille dot is hard to see)
        self.series: list[tuple[str, list, list]] = []
        self._version = 0
        self._cache: tuple | None = None

    def show(self, series: list[tuple[str, list, list]]) -> None:
        """Draw these (label, xs, ys) series (unchanged data: nothing to do)."""
        if series == self.series:
            return
        self.series = series
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        for label, xs, ys in series:
            if xs:
                x, y = thin(xs, ys)
                plt.plot(x, y, label=label if len(series) > 1 else None, marker=self.marker)
        if self.ylim:
            plt.ylim(*self.ylim)
        self._version += 1
        self.refresh()

    def render(self):
        # PlotextPlot rebuilds the whole plot on every render (page switch, focus, ...);
        # rebuild only when the data, the size or the theme changed.
        key = (self._version, self.size, self.app.theme)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, super().render())
        return self._cache[1]
