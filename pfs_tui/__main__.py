"""`pfs tui` / `python -m pfs_tui`: start the explorer, serve it, or replay a run."""
from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pfs tui", description="Terminal explorer for Pruning from Scratch.")
    p.add_argument("--model", default="resnet20", help="model to start with (default resnet20): a sample model, "
                   "torchvision:NAME, timm:NAME, path/to/file.py:factory or package.module:factory")
    p.add_argument("--dataset", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.add_argument("--data-root", default=None, help="folder holding the data set")
    p.add_argument("--runs", default=None, help="runs folder (default ./runs or $PFS_RUNS)")
    p.add_argument("--replay", metavar="RUN", default=None, help="replay a recorded run's events, no compute")
    p.add_argument("--demo", action="store_true", help="open the bundled recording: a gate-learning run replayed, "
                   "its structure and a finished race (no compute, nothing written outside a temporary folder)")
    p.add_argument("--page", default=None, choices=["setup", "learn", "structure", "runs", "race", "help"],
                   help="page to open on")
    p.add_argument("--serve", action="store_true", help="serve the explorer in a browser (textual-serve)")
    p.add_argument("--host", default="localhost", help="host to serve on (with --serve)")
    p.add_argument("--port", type=int, default=8000, help="port to serve on (with --serve)")
    p.add_argument("--public-url", default=None, metavar="URL",
                   help="the address browsers use to reach the server, e.g. http://HOST:8000 or an "
                        "SSH-forwarded http://localhost:8000 (with --serve; default: this machine's name)")
    p.add_argument("--follow", metavar="RUN", default=None,
                   help="follow RUN read-only (or `latest`: the newest run under --runs): its curves, "
                        "histogram and structure, without learning; with --serve every browser tab follows it")
    p.add_argument("--trust-model-code", action="store_true",
                   help="let the explorer import the model code (file.py:factory, package.module:factory) that the "
                        "runs it opens name; without it, only code you name (--model, Setup) runs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the explorer (or serve it); the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.demo and (args.replay or args.follow):
        print("pfs: error: --demo opens its own recording; use it without --replay and --follow", file=sys.stderr)
        return 2
    from engine.errors import PfsError
    from engine.models.spec import allow_model_code, parse_spec
    from sample_models import list_models

    try:
        spec = parse_spec(args.model)  # a foreign spec is built (and checked) on the setup page
    except PfsError as exc:
        print(f"pfs: error: {exc}", file=sys.stderr)
        return 2
    allow_model_code(None if args.trust_model_code else spec)  # --model names the user's own code
    if spec.is_sample and args.model not in list_models():
        print(f"pfs: error: unknown model {args.model!r}; choose one of: {', '.join(list_models())}, or a spec "
              "such as torchvision:resnet18", file=sys.stderr)
        return 2
    if args.follow and args.follow != "latest" and not (Path(args.follow) / "config.json").is_file():
        print(f"pfs: error: {args.follow} is not a run (no config.json); give a run folder, or "
              "`--follow latest` to follow the newest run under --runs", file=sys.stderr)
        return 2
    if args.serve:
        try:
            public_url = public_url_for(args.host, args.port, args.public_url)
        except ValueError as exc:
            print(f"pfs: error: {exc}", file=sys.stderr)
            return 2
        return _serve(args, argv if argv is not None else sys.argv[1:], public_url)
    from pfs_tui import preferences
    from pfs_tui.app import PfsApp
    from pfs_tui.session import Session, Settings

    prefs = preferences.default_path()
    settings, warning = preferences.load(prefs, Settings(model=args.model, dataset=args.dataset))
    if warning:
        print(f"pfs: warning: {warning}", file=sys.stderr)
    try:
        allow_model_code(settings.model)  # the user's own Setup, kept from their last session
    except PfsError:
        pass  # the setup page says what is wrong with it
    # A follower (one per browser tab) retrains nothing: it keeps no preferences either.
    session = Session(settings=settings, data_root=args.data_root, prefs_path=None if args.follow else prefs)
    if args.runs:
        session.runs_root = Path(args.runs)
    if args.demo:
        return _run_demo(args, session)
    start = args.page or ("learn" if args.replay else "setup")
    if args.follow:
        start = args.page or "learn"
    app = PfsApp(session, start=start, replay=args.replay, follow=args.follow)
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


def _run_demo(args: argparse.Namespace, session) -> int:
    """The explorer on a temporary copy of the bundled recording (so labels, exports or a new
    race never touch the installed package): Learn replays it, Race shows its race.

    The copy is removed on quit, unless a race started in it still trains (its detached
    `pfs train` processes write there): then it is kept and named.
    """
    import shutil
    import tempfile

    from pfs_tui.app import PfsApp
    from pfs_tui.demo import copy_recording
    from pfs_tui.tasks import TRAIN_PID, train_process_alive

    tmp = Path(tempfile.mkdtemp(prefix="pfs-demo-"))
    try:
        run = copy_recording(tmp)
        session.runs_root, session.prefs_path = tmp, None  # a demo changes nobody's Setup
        PfsApp(session, start=args.page or "learn", replay=str(run)).run()
    finally:
        if any(train_process_alive(p.parent) for p in tmp.rglob(TRAIN_PID)):
            print(f"pfs: the race started in the demo still trains in {tmp}; it is kept there", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def public_url_for(host: str, port: int, given: str | None) -> str:
    """The URL the served page tells browsers to connect back to.

    textual-serve writes it into the page (scripts and the websocket), so it must be an
    address the attendees' browsers can reach: never 0.0.0.0. A wildcard host becomes
    this machine's name unless --public-url says better (an SSH tunnel, a proxy).
    """
    if given is not None:
        url = urlsplit(given)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"--public-url must look like http://HOST:PORT, got {given!r}")
        return given.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()  # no DNS lookup: it can stall on a machine without a resolver
    return f"http://{host}:{port}"


def _serve(args: argparse.Namespace, argv: list[str], public_url: str) -> int:
    """Serve the same explorer (minus the serving flags) to browsers: one app per tab."""
    from textual_serve.server import Server

    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--serve",):
            continue
        if a in ("--port", "--host", "--public-url"):
            skip = True
            continue
        if a.startswith(("--port=", "--host=", "--public-url=")):
            continue
        rest.append(a)
    command = " ".join(shlex.quote(x) for x in [sys.executable, "-m", "pfs_tui", *rest])
    Server(command, host=args.host, port=args.port, title="pfs explorer", public_url=public_url).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
