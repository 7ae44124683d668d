"""Shared pieces of the `pfs` commands: the parser class, argument types, output helpers,
the learning and budget flags, and the graceful Ctrl-C every long command uses.

Every command module (engine.cli.method, engine.cli.training, ...) imports from here;
this module imports no command module.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import PfsError, shell_path
from engine.events import strict_json


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are PfsErrors, so they print as one line too.

    Abbreviated flags are refused (`--over` is not `--overwrite`): a script that works
    today must not change meaning when a flag is added tomorrow.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise PfsError(f"{message} (see `{self.prog} --help`)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def number(text: str) -> float:
    """A finite float: nan and inf are refused here, not discovered as a NaN loss mid-run."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def print_json(data) -> None:
    print(strict_json(data, indent=2))


def human(n: float) -> str:
    """125485706 -> '125.49M' (MACs and parameter counts for people)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


@contextmanager
def graceful_stop() -> Iterator[callable]:
    """First Ctrl-C asks the job to stop at the next step (keeping its work); a second aborts."""
    state = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if state["stop"]:
            raise KeyboardInterrupt
        state["stop"] = True
        if is_main_process():  # torchrun passes Ctrl-C to every rank; rank 0 says it once
            print("\npfs: stopping after this step (Ctrl-C again to abort)", file=sys.stderr)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        yield lambda: state["stop"]
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def learned_gates_line(run, summary: dict) -> str:
    """The one line `pfs learn` and `pfs resume` print for a learn stage's summary.json."""
    line = (f"{run}: gates from step {summary.get('selected_step')}, held-out accuracy "
            f"{summary.get('heldout_acc', float('nan')):.4f}, {summary.get('open_frac', float('nan')):.1%} open")
    if summary.get("stopped") or summary.get("status") == "stopped":
        line += " (stopped early)"
    return line + ("" if summary.get("converged", True) else " (no step met r: last gates kept)")


def warn_if_unconverged(event) -> None:
    """A sink printing the learn stage's 'did not converge' warning on stderr (after the bar)."""
    from engine.events import RunFinished

    if (isinstance(event, RunFinished) and event.stage == "learn" and event.summary.get("warning")
            and event.summary.get("status") != "stopped"):  # a stopped run is judged when it finishes
        print(f"pfs: warning: {event.summary['warning']}", file=sys.stderr)


def progress(args):
    from engine.events import ProgressBar

    return None if getattr(args, "quiet", False) else ProgressBar()


def add_learn_args(p, prefix: str = "") -> None:
    """Gate-learning flags; `pfs run` prefixes (`learn-`) those that training also has."""
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--dataset", default="fashion-mnist", metavar="NAME", help=DATASET_HELP)
    p.add_argument("--data-root", metavar="DIR", help="folder holding the data set")
    p.add_argument("--download", action="store_true", help="download the data set with torchvision (needs internet)")
    p.add_argument("--sparsity", type=number, default=0.2, metavar="R", help="target mean gate r (default 0.2)")
    p.add_argument("--gamma", type=number, default=0.5, metavar="G", help="regulariser weight (default 0.5)")
    p.add_argument("--reg", choices=["mean", "l1"], default="mean",
                   help="mean: gamma*(mean|g|-r)^2 (paper, default); l1: gamma*mean|g| (baseline)")
    length = p.add_mutually_exclusive_group()
    length.add_argument(f"--{prefix}epochs", dest="epochs", type=number, metavar="E",
                        help="epochs of gate learning (default 10, the paper's; chosen by retrained accuracy: "
                        "docs/learning.md)")
    length.add_argument(f"--{prefix}steps", dest="steps", type=positive_int, metavar="N",
                        help="gate-learning steps (instead of epochs)")
    p.add_argument(f"--{prefix}batch-size", dest="batch_size", type=positive_int, default=128, metavar="N",
                   help="gate-learning batch size (default 128)")
    p.add_argument(f"--{prefix}lr", dest="lr", type=number, metavar="LR",
                   help="Adam learning rate of the gates (default 0.01, the paper's)")
    p.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="steps between held-out evaluations (default: once per epoch)")
    p.add_argument("--heldout-limit", type=positive_int, metavar="N", help="held-out images per evaluation "
                   "(default: all)")
    p.add_argument(f"--{prefix}expand", dest="expand", type=number, default=1.0, metavar="F",
                   help="learn on a network this many times wider (default 1)")
    p.add_argument("--shortcut", choices=["A", "B"], help="CIFAR ResNet shortcut: B projection (default, the official "
                   "code's) or A zero-pad")
    p.add_argument(f"--{prefix}subset", dest="learn_subset", type=positive_int, metavar="N",
                   help="learn on the first N training images only (held-out images come from them)")
    if not prefix:  # `pfs run` shares the training's --image-size and --workers: one data set for both
        p.add_argument("--image-size", type=positive_int, metavar="PX",
                       help="crop size for imagefolder data (default 224)")
        p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                       help="image decoding processes for imagefolder data (default: up to 4, one per core)")
        from engine.training.recipes import DEVICES

        p.add_argument("--device", choices=DEVICES, default="auto",
                       help="auto: CUDA when present (under torchrun: each process's LOCAL_RANK GPU)")
    p.add_argument("--prune-residual", action="store_true",
                   help="foreign models: gate channel groups tied by residual adds, each as one")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the init, data order and split "
                   "(default 0)")
    p.add_argument("--out", metavar="RUN", help="run directory (default runs/MODEL-DATASET-TIME)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


DATASET_HELP = "fashion-mnist (default), cifar10, cifar100, synthetic, or imagefolder:PATH"
MODEL_HELP = ("model spec: a sample model (see `pfs models`), torchvision:NAME, timm:NAME, "
              "path/to/file.py:factory or package.module:factory")


def arch_args(args) -> dict:
    """The model options of the learning flags (--shortcut, --prune-residual)."""
    arch: dict = {"shortcut": args.shortcut} if getattr(args, "shortcut", None) else {}
    if getattr(args, "prune_residual", False):
        arch["prune_residual"] = True
    return arch


def input_note_printer(event) -> None:
    """Say once, on stderr, when the data's channels are repeated for the model's first conv."""
    note = (getattr(event, "config", None) or {}).get("input_note") if type(event).__name__ == "RunStarted" else None
    if note:
        print(f"pfs: note: {note}", file=sys.stderr)


def add_budget_args(p, *, latency: bool = False) -> None:
    """--flops and --min-channels: the structure search's budget (search, prune, run); with
    `latency` (search), --latency-ms instead of --flops, and where that latency is measured."""
    budget = p.add_mutually_exclusive_group(required=True) if latency else p
    budget.add_argument("--flops", type=number, required=not latency, metavar="F",
                        help="budget as a fraction of the dense model's MACs, in (0, 1]")
    if latency:
        budget.add_argument("--latency-ms", type=number, metavar="T",
                            help="budget as measured latency: the largest structure whose forward pass takes "
                            "at most T ms (timed here, eager PyTorch)")
        p.add_argument("--device", choices=["cpu", "cuda"], help="where --latency-ms is measured (default cpu)")
        p.add_argument("--batch-size", type=positive_int, metavar="B",
                       help="batch of the --latency-ms timing (default 1)")
        p.add_argument("--threads", type=positive_int, metavar="N",
                       help="CPU threads of the --latency-ms timing (default: torch's, from OMP_NUM_THREADS)")
    p.add_argument("--min-channels", type=positive_int, default=1, metavar="N",
                   help="channels kept per group at least (default 1)")


def learn_config(args):
    """The validated LearnConfig of the learning flags (shared by learn, prune and run)."""
    from engine.learn import LearnConfig
    from engine.learn_schedule import resolve_schedule

    schedule = resolve_schedule(args.dataset, {"epochs": args.epochs, "steps": args.steps, "lr": args.lr,
                                               "eval_every": args.eval_every})
    config = LearnConfig(sparsity=args.sparsity, gamma=args.gamma, reg=args.reg, **schedule,
                         batch_size=args.batch_size, heldout_limit=args.heldout_limit, seed=args.seed,
                         device=args.device)
    config.validate()
    return config


def is_main_process() -> bool:
    """False in torchrun's processes other than rank 0, which print nothing (rank 0 reports)."""
    if os.environ.get("RANK", "0") == "0":  # rank 0, or no torchrun: no need to load torch to know
        return True
    from engine.collective import from_env

    try:
        return from_env().is_main
    except PfsError:  # torchrun's variables are malformed: this process must say so itself
        return True


def out_dir(args) -> Path:
    """--out, or a new runs/MODEL-DATASET-TIME (names safe for a folder)."""
    if args.out:
        return Path(args.out)
    if os.environ.get("WORLD_SIZE", "1") != "1":  # each process would stamp its own time
        raise PfsError("under torchrun name the run with --out RUN, so that every process writes to the same one")
    dataset = args.dataset.replace(":", "-").replace("/", "_")
    model = args.model.rstrip("/").rsplit("/", 1)[-1].replace(".py:", "-").replace(":", "-")
    return Path("runs") / f"{model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def quoted(path) -> str:
    """A path as it must be typed in a shell, so "next:" hints paste as they are."""
    return shell_path(path)


def learn_data_options(args) -> dict:
    """The data flags of learning (subset, image size, workers), as config.json records them."""
    return {"subset": args.learn_subset, "image_size": args.image_size, "workers": args.workers}
