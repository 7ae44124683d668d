"""The served explorer in a real browser: Debian's headless Chromium driven by Playwright.

The page draws the terminal on a canvas (xterm.js), so the test reads what the browser
receives on the page's websocket and types with the browser's keyboard, as a person would.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pfs_tui.testing import FIXTURES

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a server, an explorer per tab and a browser: 15-40 s on a shared 2-core box
def test_a_browser_tab_follows_the_presenters_run_and_keys_switch_pages(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's chromium is not installed")
    run = tmp_path / "presenter"
    shutil.copytree(FIXTURES / "learned", run)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "pfs_tui", "--serve", "--host", "127.0.0.1", "--port", str(port),
         "--public-url", url, "--runs", str(tmp_path), "--follow", str(run), "--page", "setup"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    frames: list[str] = []

    def received(since: int = 0) -> str:
        return "".join(frames[since:])

    def wait_for(page, text: str, since: int = 0, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in received(since):
            assert time.monotonic() < deadline, f"the page never showed {text!r}"
            page.wait_for_timeout(100)

    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda f: frames.append(f if isinstance(f, str) else f.decode("utf-8", "replace"))))
            deadline = time.monotonic() + 60
            while True:  # until the server listens
                try:
                    page.goto(url)
                    break
                except sync_api.Error:
                    assert time.monotonic() < deadline, "the server never answered"
                    page.wait_for_timeout(200)
            wait_for(page, "Start learning")  # the Setup page, drawn by this tab's own explorer
            page.mouse.click(500, 300)  # the terminal takes the keyboard
            seen = len(frames)
            page.keyboard.press("2")
            wait_for(page, "gate histogram at step 150", since=seen)  # the Learn page, following the run
            assert "read-only" in received(seen)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in (FIXTURES / "learned").iterdir())
