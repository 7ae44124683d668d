"""On-demand explanations for people learning the method: hidden until asked for (`i`)."""
from __future__ import annotations

from textual.widgets import Static

LEARN = """\
[b]mean gate[/b]: the average of all gate values. The regulariser gamma * (mean gate - r)^2 \
pulls it towards r; the cross-entropy keeps the gates of useful channels up.
[b]open[/b]: the fraction of gates that are not exactly 0 (clamped at 0, a channel is off).
[b]which step is kept[/b]: the held-out accuracy is measured every few steps; the gates kept \
are those of the best accuracy among steps whose open fraction is at most r, else the last \
step's. So the selected step can come before the last one."""

STRUCTURE = """\
[b]threshold[/b]: all gates of all layers are ranked together and the highest are kept; a \
binary search finds how many fit the FLOPs target. The threshold is the first dropped gate.
[b]ties[/b]: kept channels whose gate equals the threshold, chosen by a fixed tie-break, not by \
learning. Many ties mean the gates did not separate: learn longer or raise gamma.
[b]vs uniform[/b]: uniform pruning keeps the same share of every layer (the u column) at the \
same MACs; the learned structure keeps more where the gates say channels matter."""


class Explanation(Static):
    """A short explanation panel; `toggle()` shows or hides it."""

    DEFAULT_CSS = """
    Explanation { display: none; height: auto; border: round $accent; padding: 0 1; margin: 0 1; }
    Explanation.-shown { display: block; }
    """

    def toggle(self) -> bool:
        """Show it if hidden, hide it if shown; whether it is shown now."""
        self.toggle_class("-shown")
        return self.has_class("-shown")
