"""Retraining the pruned network: the training loop, its recipes, init modes and DDP.

train (the loop, top to bottom: scratch / Scratch-B / expansion, checkpoints, resume),
recipes (hyper-parameter presets and schedules), inits (scratch, ticket, inherit weights),
distributed (torchrun/DDP helpers).

Layer: above runs (it writes checkpoints and events into a run directory), the method
and data; below jobs and the CLI, which it never imports.
"""
from engine.training.train import CHECKPOINT, TrainOptions, evaluate, resume_train, train_run

__all__ = ["CHECKPOINT", "TrainOptions", "evaluate", "resume_train", "train_run"]
