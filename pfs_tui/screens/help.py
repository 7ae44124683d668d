"""Help: the method step by step, what the knobs do, and the keys."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from pfs_tui.screens.base import PageScreen

HELP = """\
# Pruning from Scratch, step by step

*Wang et al., AAAI 2020.* The usual recipe trains a big network, prunes it and
fine-tunes. This paper shows the **structure** (how many channels each layer keeps)
can be found from **randomly initialised** weights, with no pre-training at all.

1. **Gates.** Every prunable channel gets a scalar gate `g` (starting at 1) after its
   BatchNorm. The random weights are **frozen**; only the gates learn.
2. **Objective.** Minimise `CE(gated net) + gamma * (mean|g| - r)^2` with Adam.
   The cross-entropy keeps the channels that matter for the task open; the second term
   pulls the *average* gate to the target **r**. Gates are clipped to [0, 1].
3. **Select.** Held-out accuracy picks the best gates among those whose open fraction
   is at most r (else the last gates).
4. **Search.** Rank all gates of all layers together and keep the highest ones: a binary
   search over the number of kept channels finds the largest structure within the
   **FLOPs target** (a fraction of the dense network's MACs), exactly.
5. **Retrain.** Build the pruned network at those widths with a **new random init** and
   train it normally (`pfs train RUN`).

## The knobs
- **r (sparsity)**: the mean gate value the regulariser aims for. Small r forces most
  gates towards 0, so the ranking is sharp; r near 1 barely constrains them.
- **gamma**: how hard the regulariser pulls. Too small and the gates stay near 1 (the
  ranking is mostly ties, so the structure falls back to uniform); too large and the
  cross-entropy cannot keep important channels open.
- **regulariser**: `mean` is the paper's `(mean|g| - r)^2`; `l1` (`gamma * mean|g|`)
  is the usual sparsity baseline, with no target.
- **FLOPs target**: changes only the search, never the learning: slide it on the
  Structure page and the per-layer widths follow at once.
- **expansion**: learn on a wider network (e.g. 1.5x) and prune back to the target.

## Why structures from random weights differ
The gates only learn which channels the *frozen random features* need. Different seeds
give different channels and, the paper finds, noticeably different per-layer **widths**:
structures pruned *after* pre-training look alike whatever the seed (their keep ratios
correlate strongly), structures found at random init are diverse, and yet they retrain
about as well. So no one width pattern is "the" answer; a good one can be found in
minutes and retrained from scratch. Compare with the **uniform** network of the same MACs
(the `u` column and the cyan `│` on each bar), and compare runs' keep ratios and their
correlation side by side on the Compare page.

## Keys
- `1` Setup, `2` Learn, `3` Structure, `4` Runs, `5` Compare, `6` Race, `?` Help; `ctrl+p` command palette.
- Setup: arrows move in the model list, `Tab` to the fields; in a field `+`/`-` or
  the up/down arrows nudge the value, the mouse wheel too; clicking the gauge sets it.
  `Escape` leaves a field: while one is being edited, letters, digits and `?` are
  typed into it, so the page keys wait until you leave it (`F1` opens this help).
- Learn: `s` start, `space` pause/resume, `x` stop, `i` explains the numbers; in a
  replay `[` and `]` change speed and `j` jumps to a step.
- Structure: `+`/`-` move the FLOPs target, `e` export structure.json, `t` retrain,
  `v` race the learned structure against uniform at the same MACs (both retrained at the
  demo size, side by side, shown on the Race page), `i` explains threshold, ties and the
  uniform comparison.
- Runs: `Enter` opens a run; there `g` loads its gates, `r` replays it, `t` retrains,
  `c` resumes a stopped or killed run, `n` names it.
- Compare: `space` marks runs (two or more, of one model and data set), `o` adds a run or an
  experiment directory by path; `l` layers, `c` correlation, `t` table; `i` explains them.
- `q` quits; a retraining keeps running and is re-attached from the Runs page.
"""


class HelpScreen(PageScreen):
    """The method explained; scrolls with the arrows or the mouse."""

    PAGE = "help"
    AUTO_FOCUS = "#help-scroll"
    CSS_PATH = "help.tcss"

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="help-scroll"):
            yield Markdown(HELP, id="help-text")
