"""A stand-in for `pfs train RUN` in the explorer's tests: real events, no training.

Writes the train stage's events into RUN/events.jsonl like the real job, but holds
after epoch 1 until RUN/go exists, so a test can quit and restart the explorer while
the process is alive. Usage: python fake_train.py RUN
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from engine.events import EpochEnd, JsonlSink, RunFinished, RunStarted

run = Path(sys.argv[1])
with JsonlSink(run / "events.jsonl") as sink:
    sink(RunStarted(stage="train", config={"device": "cpu"}))
    sink(EpochEnd(stage="train", epoch=1, total_epochs=2, train_loss=1.5, train_acc=0.4, test_acc=0.55))
    deadline = time.monotonic() + 60
    while not (run / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    sink(EpochEnd(stage="train", epoch=2, total_epochs=2, train_loss=1.1, train_acc=0.6, test_acc=0.71))
    sink(RunFinished(stage="train", summary={"test_acc": 0.71}))
