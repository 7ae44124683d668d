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
    (method)   gates flops learn search prune analysis (+ heldout, learn_distributed)
    data       data sets, batching, image folders, batch sources; collective (torchrun's process group)
    errors, events   the foundation every layer may use

import-linter holds these layers (pyproject.toml, `make lint`); the engine never imports
pfs_tui or textual.
"""
from __future__ import annotations

from engine.lazy import lazy_exports

# Every public name is imported on first use (engine.lazy): `import engine` must not load torch.
__getattr__, __dir__ = lazy_exports(__name__, {
    "BudgetError": "engine.errors", "DataError": "engine.errors", "PfsError": "engine.errors",
    "RunError": "engine.errors",
    "count_macs": "engine.flops", "count_params": "engine.flops", "dense_macs": "engine.flops",
    "dense_params": "engine.flops",
    "ChannelGate": "engine.gates", "GatedBatchNorm2d": "engine.gates", "set_gates_enabled": "engine.gates",
    "create_model": "engine.gating",
    "allow_model_code": "engine.models.spec",  # trust the user code a run names (README)
    "load_pruned": "engine.runs.export",
})

__all__ = ["allow_model_code", "BudgetError", "ChannelGate", "DataError", "GatedBatchNorm2d", "PfsError", "RunError",
           "create_model",
           "count_macs", "count_params", "dense_macs", "dense_params", "load_pruned", "set_gates_enabled"]
