"""Retraining the pruned network: the training loop, its recipes, init modes and DDP.

train (the loop, top to bottom: scratch / Scratch-B / expansion, checkpoints, resume),
recipes (hyper-parameter presets and schedules), inits (scratch, ticket, inherit weights),
distributed (torchrun/DDP helpers).

Layer: above runs (it writes checkpoints and events into a run directory), the method
and data; below jobs and the CLI, which it never imports.
"""
from engine.lazy import lazy_exports

# Imported on first use (engine.lazy): the CLI's parsers read engine.training.recipes, torch-free.
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(
    ("CHECKPOINT", "TrainOptions", "evaluate", "resume_train", "train_run"), "engine.training.train"))

__all__ = ["CHECKPOINT", "TrainOptions", "evaluate", "resume_train", "train_run"]
