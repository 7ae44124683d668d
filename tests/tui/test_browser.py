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


def _serve(port: int, *args: str) -> subprocess.Popen:
    """`pfs tui --serve` on 127.0.0.1:port (its own public URL), with these explorer arguments."""
    url = f"http://127.0.0.1:{port}"
    return subprocess.Popen(
        [sys.executable, "-m", "pfs_tui", "--serve", "--host", "127.0.0.1", "--port", str(port),
         "--public-url", url, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _open(sync_api, browser, url: str, frames: list[str], route=None):
    """A page on the served explorer, once the server listens; what its websocket receives
    is appended to `frames` (the terminal is a canvas: the frames are what it draws)."""
    page = browser.new_page(viewport={"width": 1000, "height": 640})
    if route is not None:
        page.route("**/*", route)
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda f: frames.append(f if isinstance(f, str) else f.decode("utf-8", "replace"))))
    deadline = time.monotonic() + 60
    while True:  # until the server listens
        try:
            page.goto(url)
            return page
        except sync_api.Error:
            assert time.monotonic() < deadline, "the server never answered"
            page.wait_for_timeout(200)


@pytest.mark.slow  # a server, an explorer per tab and a browser: 15-40 s on a shared 2-core box
def test_a_browser_tab_follows_the_presenters_run_and_keys_switch_pages(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's chromium is not installed")
    run = tmp_path / "presenter"
    shutil.copytree(FIXTURES / "learned", run)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(port, "--runs", str(tmp_path), "--follow", str(run), "--page", "setup")
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
            page = _open(sync_api, browser, url, frames)
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


@pytest.mark.slow  # a server, an explorer and a browser: 15-40 s on a shared 2-core box
def test_the_served_page_works_with_the_internet_blocked(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's chromium is not installed")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(port, "--runs", str(tmp_path), "--page", "setup")
    blocked: list[str] = []
    frames: list[str] = []

    def route(request_route):  # a room without internet: only the server answers
        if request_route.request.url.startswith(url):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort("internetdisconnected")

    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = _open(sync_api, browser, url, frames, route)
            deadline = time.monotonic() + 120
            while "Start learning" not in "".join(frames):  # the explorer drawn, fonts and all
                assert time.monotonic() < deadline, "the page never showed the explorer"
                page.wait_for_timeout(100)
            font = page.evaluate("document.fonts.check('16px \"Roboto Mono\"')")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert blocked == []  # nothing was asked of the internet
    assert font  # the page's font came from the server
