"""On-demand explanations for people learning the method: hidden until asked for (`i`)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from pfs_tui.demo_schedule import DEMO_COST

LEARN = """\
[b]mean gate[/b]: the average of all gate values. The regulariser gamma * (mean gate - r)^2 \
pulls it towards r; the cross-entropy keeps the gates of useful channels up.
[b]open[/b]: the fraction of gates that are not exactly 0 (clamped at 0, a channel is off).
[b]which step is kept[/b]: the held-out accuracy is measured every few steps; the gates kept \
are those of the best accuracy among steps whose open fraction is at most r, else the last \
step's. So the selected step can come before the last one.
[b]held-out near chance (0.10)[/b]: the weights stay random and frozen, so the gated network \
barely classifies (the loss stays near ln 10 = 2.30) and this number only picks which step's \
gates are kept. It does not mean nothing was learned: the gates moved apart (the histogram), \
and their order decides which channels the Structure page keeps. Nor does it predict the \
pruned network: retrained from scratch, these structures reach about 0.88 on Fashion-MNIST \
(15 epochs on 10,000 images), level with uniform pruning at the same MACs, not ahead \
(docs/reproduction.md).
""" + DEMO_COST

STRUCTURE = """\
[b]threshold[/b]: all gates of all layers are ranked together and the highest are kept; a \
binary search finds how many fit the FLOPs target. The threshold is the first dropped gate.
[b]ties[/b]: kept channels whose gate equals the threshold, chosen by a fixed tie-break \
(channel order), not by learning. Two causes, told apart by the threshold. Above 0: gates that \
did not separate; learn longer or raise gamma. Exactly 0: the target needs more channels than \
the gates left open, so closed channels fill it in order; the gates did separate, and the fix \
is a lower FLOPs target or a larger r, not gamma.
[b]vs uniform[/b]: uniform pruning keeps the same share of every layer (the u column) at the \
same MACs; the learned structure keeps more where the gates say channels matter."""


class Explanation(VerticalScroll, inherit_bindings=False):
    """A short explanation panel; `toggle()` shows or hides it. Shown, it takes the keys, so
    up/down, page keys and the wheel scroll a text longer than an 80x24 page has room for;
    left and right stay the page's (they move the Structure page's FLOPs target)."""

    BINDINGS = [b for b in VerticalScroll.BINDINGS if b.key not in ("left", "right")]

    DEFAULT_CSS = """
    Explanation { display: none; height: auto; max-height: 60%; border: round $accent; padding: 0 1;
                  margin: 0 1; }
    Explanation.-shown { display: block; }
    Explanation:focus { border: round $accent-lighten-2; }
    """

    def __init__(self, text: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = text

    def compose(self) -> ComposeResult:
        yield Static(self.text)

    def toggle(self) -> bool:
        """Show it if hidden, hide it if shown; whether it is shown now."""
        self.toggle_class("-shown")
        shown = self.has_class("-shown")
        if shown:
            self.focus()
        elif self.has_focus:
            self.screen.focus_home()
        return shown
