"""`pfs tui` / `python -m pfs_tui`: start the explorer, serve it, or replay a run."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pfs tui", description="Terminal explorer for Pruning from Scratch.")
    p.add_argument("--model", default="resnet20", help="model to start with (default resnet20)")
    p.add_argument("--dataset", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.add_argument("--data-root", default=None, help="folder holding the data set")
    p.add_argument("--runs", default=None, help="runs folder (default ./runs or $PFS_RUNS)")
    p.add_argument("--replay", metavar="RUN", default=None, help="replay a recorded run's events, no compute")
    p.add_argument("--page", default=None, choices=["setup", "learn", "structure", "runs", "help"],
                   help="page to open on")
    p.add_argument("--serve", action="store_true", help="serve the explorer in a browser (textual-serve)")
    p.add_argument("--host", default="localhost", help="host to serve on (with --serve)")
    p.add_argument("--port", type=int, default=8000, help="port to serve on (with --serve)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the explorer (or serve it); the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    from engine.errors import PfsError
    from sample_models import list_models

    if args.model not in list_models():
        print(f"pfs: error: unknown model {args.model!r}; choose one of: {', '.join(list_models())}",
              file=sys.stderr)
        return 2
    if args.serve:
        return _serve(args, argv if argv is not None else sys.argv[1:])
    from pfs_tui.app import PfsApp
    from pfs_tui.session import Session, Settings

    session = Session(settings=Settings(model=args.model, dataset=args.dataset), data_root=args.data_root)
    if args.runs:
        session.runs_root = Path(args.runs)
    start = args.page or ("learn" if args.replay else "setup")
    app = PfsApp(session, start=start, replay=args.replay)
    try:
        app.run()
    except PfsError as exc:
        print(f"pfs: error: {exc}", file=sys.stderr)
        return 2
    if app.hard_exit:
        # The learning thread is mid-step and Python would wait for it at exit; the run
        # directory stays consistent (atomic writes) and shows as stopped/killed.
        print("pfs: quit without waiting for gate learning; its run is unfinished", file=sys.stderr)
        os._exit(0)
    return 0


def _serve(args: argparse.Namespace, argv: list[str]) -> int:
    """Serve the same explorer (minus --serve/--host/--port) to browsers."""
    from textual_serve.server import Server

    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--serve",):
            continue
        if a in ("--port", "--host"):
            skip = True
            continue
        if a.startswith(("--port=", "--host=")):
            continue
        rest.append(a)
    command = " ".join(shlex.quote(x) for x in [sys.executable, "-m", "pfs_tui", *rest])
    Server(command, host=args.host, port=args.port, title="pfs explorer").serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
