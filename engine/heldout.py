"""Held-out accuracy of gates as they are learned (train-mode BN), split over torchrun ranks."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.data import Dataset, batches
from engine.learn_distributed import Ranks

EVAL_CHUNK = 1000  # held-out images per forward pass: big batches give steady BN batch statistics


def heldout_accuracy(model: nn.Module, held: Dataset, limit: int | None = None,
                     device: torch.device | str = "cpu", ranks: Ranks | None = None) -> tuple[float, float]:
    """(accuracy, mean CE) of the gated model on held-out images, as it is trained.

    The gates were learned under BN batch statistics, so they are judged the same way:
    train-mode BN over large chunks, with momentum set to 0 so that evaluating leaves the
    running statistics exactly as they were. (The paper's code judges them in eval mode,
    with the running statistics of the frozen random network, script/learn_gates.py
    `test()`: a deviation, docs/method.md; held-out accuracies differed by at most 0.02.)
    Under torchrun (`ranks`, with global_batch_norm active) each rank forwards its slice of
    every chunk and the counts are summed: the chunks, their statistics and the answer are
    one process's.
    """
    ranks = ranks or Ranks()
    total = num_images(held)
    n = total if limit is None else min(limit, total)
    chunks = math.ceil(n / EVAL_CHUNK)
    size = math.ceil(n / chunks)  # equal chunks: no tiny last batch with noisy statistics
    if isinstance(held, Dataset):
        chunk_iter = batches(held, held.train_x[:n], held.train_y[:n], size, shuffle=False, augment=False,
                             device=device)
    else:  # a streamed image folder: its held-out part evaluates as a test set (centre crops)
        chunk_iter = held.source(test_limit=n).test_batches(size, device=device)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in bns]
    correct, loss_sum = 0, 0.0
    try:
        for m in bns:
            m.momentum = 0.0
        # inference_mode, not just no_grad: no autograd bookkeeping at all (version counters).
        with torch.inference_mode():
            for xb, yb in chunk_iter:
                xb, yb = ranks.mine(xb, yb)
                if torch.device(device).type == "cpu":
                    xb = xb.contiguous(memory_format=torch.channels_last)
                logits = model(xb)
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(1) == yb).sum())
    finally:
        for m, (momentum, tracked) in zip(bns, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
    correct, loss_sum = ranks.sums([correct, loss_sum], device)
    return correct / max(n, 1), loss_sum / max(n, 1)


def num_images(data) -> int:
    """Training images of an in-memory Dataset or a streamed image folder."""
    return data.train_x.shape[0] if isinstance(data, Dataset) else len(data.train_files)
