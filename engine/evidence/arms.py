"""The names of the evidence's arms and experiments, torch-free (the CLI's parsers list them)."""
from __future__ import annotations

BASELINES = ("uniform", "random", "slimming", "pretrained-pfs", "l1-gates")
KINDS = ("pfs", *BASELINES)  # every arm of a baselines grid
NEEDS_PRETRAIN = ("slimming", "pretrained-pfs")  # arms that train the dense network first
LEARNED = ("pfs", "pretrained-pfs", "l1-gates")  # arms that learn gates
EXPERIMENTS = ("baselines", "correlation", "ticket")

__all__ = ["BASELINES", "EXPERIMENTS", "KINDS", "LEARNED", "NEEDS_PRETRAIN"]
