"""The explorer's live gate-learning schedule, shorter than the CLI's, and what it costs.

`pfs learn` defaults to the paper's schedule (engine.learn_schedule); a room watching gates
move cannot wait a quarter of an hour, so the explorer starts 300 steps, named on screen as
the demo schedule with its measured cost to the structure. Its length is the engine's
DEMO_STEPS; the cost in words lives only here: when a new study measures it again, this is
the one place to change.
"""
from __future__ import annotations

from engine.learn_schedule import DEMO_EVAL_EVERY, DEMO_STEPS  # noqa: F401 (re-exported: the engine names it)

# One line for the pages (Setup, Learn), the cost in full for the explanations.
DEMO_NAME = f"demo schedule: {DEMO_STEPS} steps, about 1 min (pfs learn: 10 epochs, about 20)"
DEMO_COST = (
    f"[b]the demo schedule[/b]: {DEMO_STEPS} steps take about 1 minute against about 20 for the paper's 10 "
    "epochs (the CLI's default). In the schedule study (resnet20 on Fashion-MNIST, each structure retrained "
    "15 epochs on 10,000 images, 3-5 seeds paired) their structures retrained within about half a point of "
    "each other at 0.3 and 0.5 of dense MACs, a difference the study could not separate from seed noise."
)

