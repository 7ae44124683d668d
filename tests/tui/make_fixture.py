"""Regenerate the recorded runs the TUI tests replay: `python tests/tui/make_fixture.py`.

Real jobs on Fashion-MNIST, kept small: ResNet-20 gate learning (150 steps of 64
images), its structure at half the MACs, and 2 epochs of `pfs train` on 1024 images. Only the
text files are kept (config, events, structure, summary): replay needs no tensors.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.jobs import learn_run, search_run
from engine.learn import LearnConfig

HERE = Path(__file__).parent / "fixtures"
KEEP = ("config.json", "events.jsonl", "structure.json", "summary.json")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "resnet20-fashion-mnist"
        cfg = LearnConfig(steps=150, batch_size=64, eval_every=15, heldout_limit=500, snapshot_every=10, seed=0)
        learn_run(run, model="resnet20", dataset="fashion-mnist", learn=cfg)
        _keep(run, HERE / "learned")
        _mid_run(run, HERE / "midrun", step=75)
        search_run(run, 0.5)
        subprocess.run([sys.executable, "-m", "engine", "train", str(run), "--epochs", "2", "--subset", "1024",
                        "--test-subset", "500", "--device", "cpu", "--quiet"], check=True)
        _keep(run, HERE / "trained")


def _keep(run: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in KEEP:
        if (run / name).is_file():
            shutil.copy(run / name, dest / name)


def _mid_run(run: Path, dest: Path, step: int) -> None:
    """The same run cut at `step`, as if it were still learning."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copy(run / "config.json", dest / "config.json")
    lines = []
    for line in (run / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("step", 0) > step or event["type"] in ("finished", "failed"):
            break
        lines.append(line)
    (dest / "events.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
