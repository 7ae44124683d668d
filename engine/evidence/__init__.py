"""The paper's evidence as re-runnable jobs: baselines, experiment grids and their reports.

What lives here: `baselines` (uniform, random, network slimming, pruning after
pre-training, L1-regularised gates: each an ordinary run directory at a FLOPs budget),
`pretrain` (training the dense network, resumable, for the baselines that need it),
`experiments` (grids of cells recorded in one experiment directory, resumable) and
`report` (Markdown, PNG figures and JSON from an experiment directory).

Layer: above jobs (import-linter's engine-layers contract: cli > evidence > jobs). It may
import engine.jobs, engine.training, engine.runs, the method (gates, flops, search, prune,
learn, analysis) and engine.data, never engine.cli or pfs_tui (the shells import it, not
the other way round).
"""
from __future__ import annotations

from engine.evidence.arms import BASELINES, EXPERIMENTS, KINDS
from engine.lazy import lazy_exports

# Imported on first use (engine.lazy): the CLI's parsers read the arm names, torch-free.
__getattr__, __dir__ = lazy_exports(__name__, {
    "BaselineSpec": "engine.evidence.baselines", "make_baseline": "engine.evidence.baselines",
    "run_experiment": "engine.evidence.grids", "write_report": "engine.evidence.report",
})

__all__ = ["BASELINES", "EXPERIMENTS", "KINDS", "BaselineSpec", "make_baseline", "run_experiment",
           "write_report"]
