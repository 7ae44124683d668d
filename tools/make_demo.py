"""Re-make the explorer's bundled demo, pfs_tui/demo/recording (what `pfs tui --demo` opens).

    OMP_NUM_THREADS=1 .venv/bin/python tools/make_demo.py [--work DIR]

Learns resnet20's gates on Fashion-MNIST with the project's default schedule
(engine.learn_schedule: whatever `pfs learn` does when given no length or lr), searches
half of the dense MACs, races the learned structure against uniform at the demo size
(`pfs race --demo --dense`, so the dense reference line is recorded too), then copies
what the explorer reads into the package, leaving out weights and checkpoints. Run it
again whenever the default schedule changes: tests/tui/test_demo.py checks that the
recording was learned with the current default and in the current run format.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.cli import main as pfs  # noqa: E402
from engine.events import GateSnapshot  # noqa: E402
from pfs_tui.demo import RECORDING  # noqa: E402

MODEL, DATASET, BUDGET, RUN = "resnet20", "fashion-mnist", "0.5", "resnet20-demo"
SNAPSHOTS = 80  # gate snapshots kept for the replay: the gates visibly move, the file stays small
RUN_FILES = ("config.json", "init.pt", "gates.pt", "structure.json", "summary.json")
TRAINED_FILES = ("config.json", "structure.json", "summary.json")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", help="folder for the full runs (default: a temporary one)")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="pfs-make-demo-"))
    run = work / RUN
    t0 = time.perf_counter()
    steps = [["learn", MODEL, "--dataset", DATASET, "--out", str(run), "--quiet"],
             ["search", str(run), "--flops", BUDGET],
             ["race", str(run), "--demo", "--dense", "--quiet"]]
    for argv in steps:
        if (argv[0] == "learn" and (run / "gates.pt").is_file()):
            continue  # a --work folder from an interrupted call: learning is done
        print(f"make_demo: pfs {' '.join(argv)}", file=sys.stderr)
        if pfs(argv) != 0:
            return 1
    copy_recording(work, run)
    size = sum(f.stat().st_size for f in RECORDING.rglob("*") if f.is_file())
    print(f"make_demo: wrote {RECORDING} ({size / 1e6:.2f} MB) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


def copy_recording(work: Path, run: Path) -> None:
    """What the explorer reads, into RECORDING (replaced whole)."""
    shutil.rmtree(RECORDING, ignore_errors=True)
    out = RECORDING / run.name
    _copy(run, out, RUN_FILES)
    _write_events(run / "events.jsonl", out / "events.jsonl", train=False)
    _copy(run / "race", out / "race", ("race.json",))
    for arm in sorted(p for p in (run / "race").iterdir() if p.is_dir()):
        _copy_trained(arm, out / "race" / arm.name)
    for dense in sorted(work.glob("dense-*")):
        _copy_trained(dense, RECORDING / dense.name)


def _copy(src: Path, dest: Path, names: tuple[str, ...]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(src / name, dest / name)


def _copy_trained(src: Path, dest: Path) -> None:
    """A trained run without its weights: config, structure, summary and its training's events."""
    _copy(src, dest, TRAINED_FILES)
    _write_events(src / "events.jsonl", dest / "events.jsonl", train=True)


def _write_events(src: Path, dest: Path, *, train: bool) -> None:
    """The learning's events (train=False) or the training's, as recorded (the same lines),
    gate snapshots thinned to about SNAPSHOTS."""
    lines = [line for line in src.read_text().splitlines()
             if line.strip() and (json.loads(line).get("stage", "learn") == "train") == train]
    snaps = [i for i, line in enumerate(lines) if json.loads(line).get("type") == GateSnapshot.kind]
    dropped = set(snaps) - set(snaps[:: max(1, len(snaps) // SNAPSHOTS)]) - set(snaps[-1:])
    dest.write_text("".join(line + "\n" for i, line in enumerate(lines) if i not in dropped))


if __name__ == "__main__":
    sys.exit(main())
