"""Key-press-to-redraw latency of the explorer, idle and while gate learning runs.

Runs the real app (`python -m pfs_tui`) in a pseudo-terminal of 80x24, as over SSH,
writes key presses to it and times how long until the terminal receives the redrawn
text: after `+`/`-` on the Structure page, the new uniform-baseline line (drawn in the
same update as the searched structure, so the time includes the search), and after a
page switch, the new page's own text. First with nothing running
(the baseline), then while ResNet-56 learns gates on Fashion-MNIST in the worker thread.

    .venv/bin/python bench/bench_tui.py [--model resnet56] [--presses 30] [--json]
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ANSI = re.compile(rb"\x1b\[[0-9;?<>=$]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>78]|\x1b\][^\x07]*\x07")


class Terminal:
    """The app in a pty; a reader thread timestamps everything it draws."""

    def __init__(self, argv: list[str], cols: int = 80, rows: int = 24, env: dict | None = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, **(env or {}), "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.fd = master
        self.chunks: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.chunks.append((time.perf_counter(), data))

    def text_since(self, t0: float) -> tuple[str, float | None]:
        """Plain text drawn after t0 (escape codes removed) and the time of the last chunk."""
        with self.lock:
            parts = [(t, d) for t, d in self.chunks if t >= t0]
        raw = b"".join(d for _, d in parts)
        return ANSI.sub(b"", raw).decode("utf-8", "replace"), (parts[-1][0] if parts else None)

    def press(self, keys: str) -> float:
        t = time.perf_counter()
        os.write(self.fd, keys.encode())
        return t

    def wait_for(self, token: str, t0: float, timeout: float) -> float:
        """Seconds from t0 until `token` was drawn (polling the reader's chunks)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                parts = [(t, d) for t, d in self.chunks if t >= t0]
            acc = b""
            for t, d in parts:
                acc += d
                if token.encode() in ANSI.sub(b"", acc):
                    return t - t0
            time.sleep(0.002)
        raise TimeoutError(f"{token!r} not drawn within {timeout}s")

    def settle(self, quiet: float = 0.15, timeout: float = 5.0) -> None:
        """Wait until nothing was drawn for `quiet` seconds (so presses do not overlap)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                last = self.chunks[-1][0] if self.chunks else 0.0
            if time.perf_counter() - last >= quiet:
                return
            time.sleep(0.01)

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, 15)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        os.close(self.fd)


def uniform_tokens(model: str, dataset: str) -> dict[float, str]:
    """Target -> the text the Structure page draws for its uniform baseline, "(0.xxx)".

    That line is written in the same update as the searched structure, so seeing it
    means the key press went through the search and the redraw, not just the input box.
    """
    from engine.search import uniform_structure
    from pfs_tui.session import Settings, build_model

    model_, size = build_model(Settings(model=model, dataset=dataset))
    tokens = {}
    for i in range(51, 60):
        u = uniform_structure(model_, i / 100, size)
        tokens[i / 100] = f"({u.macs / u.dense_macs:.3f})"
    if len(set(tokens.values())) != len(tokens):
        raise SystemExit(f"{model}: uniform MACs ratios repeat between targets; pick another model")
    return tokens


def nudges(term: Terminal, presses: int, quiet: float, value: float,
           tokens: dict[float, str]) -> tuple[list[float], list[float], float]:
    """Latencies of `presses` FLOPs-target nudges on the Structure page (to the redrawn
    structure, and to the echo in the input box), and the final target."""
    # Stay within 0.51..0.59, whose uniform-baseline texts are all distinct.
    out, echo, step = [], [], 0.01
    for _ in range(presses):
        if not 0.51 <= round(value + step, 2) <= 0.59:
            step = -step
        value = round(value + step, 2)
        key = "+" if step > 0 else "-"
        term.settle(quiet)
        t0 = term.press(key)
        echo.append(term.wait_for(f"{value:.4g}", t0, timeout=10))  # the input box
        out.append(term.wait_for(tokens[value], t0, timeout=10))  # the searched structure
    return out, echo, value


def page_switches(term: Terminal, presses: int, quiet: float) -> list[float]:
    """Latency of switching Learn <-> Structure (each page's own text must be drawn).

    Starts from Structure and ends there (an even count), so the next phase knows its page.
    """
    out = []
    presses += presses % 2
    for i in range(presses):
        key, token = ("2", "held-out accuracy") if i % 2 == 0 else ("3", "kept/dense channels")
        term.settle(quiet)
        t0 = term.press(key)
        out.append(term.wait_for(token, t0, timeout=10))
    return out


def summary(samples: list[float]) -> dict:
    ms = sorted(1000 * s for s in samples)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 1),
            "p90_ms": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 1), "max_ms": round(ms[-1], 1)}


def steps_seen(term: Terminal) -> int:
    text, _ = term.text_since(0.0)
    found = re.findall(r"step (\d+)/(\d+)", text)
    return int(found[-1][0]) if found else 0


def measure(args: argparse.Namespace, nice: int) -> dict:
    """One session of the app: idle presses, then presses while gate learning runs."""
    runs = Path(tempfile.mkdtemp(prefix="pfs-bench-tui-"))
    cmd = [sys.executable, "-m", "pfs_tui", "--model", args.model, "--dataset", args.dataset, "--runs", str(runs)]
    term = Terminal(cmd, env={"PFS_TUI_LEARN_NICE": str(nice)})
    results: dict = {}
    try:
        term.wait_for("Start learning", 0.0, timeout=120)
        term.wait_for("resnet110", 0.0, timeout=120)  # the model list's MAC counts are done
        term.settle(0.5, timeout=30)
        t0 = term.press("3")
        term.wait_for("kept/dense channels", t0, timeout=30)
        tokens = uniform_tokens(args.model, args.dataset)
        samples, echo, value = nudges(term, args.presses, args.quiet, 0.50, tokens)
        results["idle_nudge"], results["idle_echo"] = summary(samples), summary(echo)
        results["idle_switch"] = summary(page_switches(term, max(4, args.presses // 3), args.quiet))
        term.settle(args.quiet)
        t0 = term.press("2")
        term.wait_for("held-out accuracy", t0, timeout=30)
        term.settle(args.quiet)
        term.press("s")  # start gate learning on the Learn page
        deadline = time.perf_counter() + 300
        while steps_seen(term) < 1:
            if time.perf_counter() > deadline:
                raise TimeoutError("gate learning did not reach its first step in 300 s")
            time.sleep(0.1)
        first = steps_seen(term)
        t0 = term.press("3")
        term.wait_for("kept/dense channels", t0, timeout=30)
        t_learn = time.perf_counter()
        samples, echo, value = nudges(term, args.presses, args.quiet, value, tokens)
        results["learning_nudge"], results["learning_echo"] = summary(samples), summary(echo)
        results["learning_switch"] = summary(page_switches(term, max(4, args.presses // 3), args.quiet))
        term.press("2")
        term.settle(0.5)
        results["steps_during_measurement"] = steps_seen(term) - first
        results["seconds_measured_while_learning"] = round(time.perf_counter() - t_learn, 1)
    finally:
        term.press("x")
        term.close()
        shutil.rmtree(runs, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet56")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--presses", type=int, default=30)
    p.add_argument("--quiet", type=float, default=0.15, help="idle gap before each press (s)")
    p.add_argument("--nice", type=int, nargs="+", default=[10, 0],
                   help="niceness of the learning thread per session (10 is the app's default, 0 = off)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    results: dict = {"model": args.model, "dataset": args.dataset, "terminal": "80x24 pty",
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
                     "python": platform.python_version(), "runs": {}}
    for nice in args.nice:
        results["runs"][f"nice {nice}"] = measure(args, nice)
    results["load_after"] = round(os.getloadavg()[0], 1)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{args.model} on {args.dataset}, {results['terminal']}, {results['machine']}")
    for name, r in results["runs"].items():
        print(f"learning thread {name}:")
        for key in ("idle_echo", "idle_nudge", "idle_switch", "learning_echo", "learning_nudge", "learning_switch"):
            x = r[key]
            print(f"  {key:16s} median {x['median_ms']:7.1f} ms  p90 {x['p90_ms']:7.1f} ms  "
                  f"max {x['max_ms']:7.1f} ms  (n={x['n']})")
        print(f"  learning advanced {r['steps_during_measurement']} steps in "
              f"{r['seconds_measured_while_learning']} s of measurement")
    return 0


if __name__ == "__main__":
    sys.exit(main())
