"""pfs engine: Pruning from Scratch (Wang et al., AAAI 2020), headless."""
from __future__ import annotations

from engine.errors import BudgetError, DataError, PfsError, RunError
from engine.flops import count_macs, count_params, dense_macs, dense_params
from engine.gates import ChannelGate, GatedBatchNorm2d, set_gates_enabled

__all__ = ["BudgetError", "ChannelGate", "DataError", "GatedBatchNorm2d", "PfsError", "RunError",
           "count_macs", "count_params", "dense_macs", "dense_params", "set_gates_enabled"]
