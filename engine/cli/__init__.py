"""`pfs`: the engine's jobs, headless, for scripts.

Data (tables, --json) goes to stdout; progress and diagnostics go to stderr. A user
mistake (PfsError) prints `pfs: error: <message>` on one line and exits 2; any other
failure exits 1 with its message, and the traceback only under --debug.

The top layer of the engine: one module per command group (method: models, flops, learn,
search, prune, compare; training: train, run, resume, runs; evidence: baseline, experiment,
report; export; speed: bench), each registering its
commands through a PARSERS list, over engine.cli.common's shared helpers. It may import
every layer below (jobs, training, runs, the method, data), never pfs_tui: `pfs tui`
hands the process over to the explorer instead of importing it.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from engine.cli import evidence, export, method, speed, training
from engine.cli.common import Parser, is_main_process
from engine.errors import PfsError, PfsWarning, StopRequested

EXIT_USER, EXIT_FAILURE, EXIT_STOPPED = 2, 1, 130
# The commands whose work splits over torchrun's processes; any other would run once per
# process, each writing the same files (or timing on cores the others use).
SPLITS_OVER_PROCESSES = ("learn", "prune", "train", "run", "resume")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `pfs` command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if "--trust-model-code" in argv:  # accepted anywhere on the line: it is about the runs, not one command
        argv.remove("--trust-model-code")
        from engine.models.spec import allow_model_code

        allow_model_code()
    with warnings.catch_warnings():
        warnings.simplefilter("always", PfsWarning)
        warnings.showwarning = _show_warning
        return _main(argv, debug)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """pfs's own warnings as one stderr line; any other library's in Python's usual form."""
    if issubclass(category, PfsWarning):
        print(f"pfs: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), file=sys.stderr)


def _main(argv: list[str], debug: bool) -> int:
    try:
        if argv and argv[0] == "tui":  # the explorer parses its own flags (and --help)
            _exec_tui(argv[1:])
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # named here so the hint points at the command's own --help
            raise PfsError(f"unrecognized arguments: {' '.join(extra)} (see `pfs {args.command} --help`)")
        if os.environ.get("WORLD_SIZE", "1") != "1" and args.command not in SPLITS_OVER_PROCESSES:
            raise PfsError(f"pfs {args.command} runs in one process: run it without torchrun (under torchrun: "
                           f"{', '.join(SPLITS_OVER_PROCESSES)})")
        for flag in ("out", "markdown", "notes"):  # "" would mean the default, or the current folder
            value = getattr(args, flag, None)
            if value is not None and not str(value).strip():
                raise PfsError(f"--{flag} is empty; name a path, or leave --{flag} out for the default")
        return int(args.func(args) or 0)
    except StopRequested as exc:  # Ctrl-C: the job saved its work where it stopped
        if is_main_process():  # under torchrun every rank stops; rank 0 says so
            print(f"pfs: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except PfsError as exc:
        # Every rank checks the same flags and data alike and fails alike: rank 0 says it once.
        if is_main_process():
            print(f"pfs: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:  # a second Ctrl-C: no new checkpoint, the last one stays resumable
        print("pfs: interrupted; the run keeps its last checkpoint (`pfs resume RUN` continues from it)",
              file=sys.stderr)
        return EXIT_STOPPED
    except Exception as exc:  # the one place that turns any failure into an exit status
        if debug:
            traceback.print_exc()
        if _peer_lost(exc):  # rank 0 names the run to resume; the others point at the cause
            print("pfs: failed: another process of this torchrun job died, so this one stopped too; the run "
                  "keeps its last checkpoint and `torchrun ... -m engine resume RUN` continues from it"
                  if is_main_process() else "pfs: failed: another process of this torchrun job ended first "
                  "(its own message says why), so this one stopped too", file=sys.stderr)
            return EXIT_FAILURE
        hint = "" if debug else " (re-run with --debug for the traceback)"
        print(f"pfs: failed: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILURE


def _peer_lost(exc: Exception) -> bool:
    """A torchrun peer died (only asked where torch is loaded: a job was running)."""
    if "torch" not in sys.modules:
        return False
    from engine.collective import peer_lost

    return peer_lost(exc)


def build_parser() -> argparse.ArgumentParser:
    """The `pfs` parser with every command group's subcommands."""
    parser = Parser(prog="pfs", description="Pruning from Scratch: learn channel gates on a random "
                    "network, search a FLOPs budget, train the pruned network.",
                    epilog="--trust-model-code (anywhere on the line): let this command import the model "
                    "code (file.py:factory, package.module:factory) that the runs it opens name; without "
                    "it, only code named on the command line itself runs.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for add in (*method.PARSERS, *training.PARSERS, *evidence.PARSERS, *export.PARSERS, *speed.PARSERS,
                _add_tui_parser):
        add(sub)
    return parser


def _add_tui_parser(sub) -> None:
    # Listed for --help only: main() hands `pfs tui ...` to the explorer before parsing.
    sub.add_parser("tui", help="the terminal explorer (see `pfs tui --help`)", add_help=False)


def _exec_tui(argv: list[str]) -> None:
    """Replace this process by `python -m pfs_tui ARGV`: the engine never imports the explorer."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "pfs_tui", *argv])
