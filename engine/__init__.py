"""pfs engine: Pruning from Scratch (Wang et al., AAAI 2020), headless.

The paper's steps are the top-level modules: gates (one gate per channel, folded into
BatchNorm), learn (learn only the gates on a frozen random network), flops (exact MACs),
search (one global threshold for a FLOPs budget), prune (build the pruned network) and
analysis (keep ratios and their correlation). Their machinery lives in sub-packages, one
layer each, importing only downward:

    cli        the `pfs` command (one module per command group)
    jobs       learn / search / pipeline jobs over run directories
    training   retraining: loop, recipes, inits, DDP
    runs       run directories: atomic files, listing, artifacts read back
    (method)   gates flops learn search prune analysis
    data       data sets, batching, image folders, batch sources
    errors, events   the foundation every layer may use

import-linter holds these layers (pyproject.toml, `make lint`); the engine never imports
pfs_tui or textual.
"""
from __future__ import annotations

from engine.errors import BudgetError, DataError, PfsError, RunError
from engine.flops import count_macs, count_params, dense_macs, dense_params
from engine.gates import ChannelGate, GatedBatchNorm2d, set_gates_enabled
from engine.gating import create_model
from engine.models.spec import allow_model_code  # trust the user code a run names (README)


def __getattr__(name: str):
    # engine.load_pruned(RUN): a run-layer reader, imported on first use so that
    # `import engine` stays light (no torch-pruning, no run machinery).
    if name == "load_pruned":
        from engine.runs.export import load_pruned

        return load_pruned
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = ["allow_model_code", "BudgetError", "ChannelGate", "DataError", "GatedBatchNorm2d", "PfsError", "RunError",
           "create_model",
           "count_macs", "count_params", "dense_macs", "dense_params", "load_pruned", "set_gates_enabled"]
