"""`pfs tui` / `python -m pfs_tui`: arguments, serving, help page and command palette."""
from __future__ import annotations

import subprocess
import sys

import pytest
from textual.widgets import Markdown

import pfs_tui.__main__ as entry
from pfs_tui.testing import make_app


def test_unknown_model_is_a_one_line_error_with_exit_2(capsys):
    assert entry.main(["--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfs: error: unknown model 'nope'") and err.count("\n") == 1


def test_serve_runs_the_same_explorer_without_the_serve_flags(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r" / "x").mkdir(parents=True)
    (tmp_path / "r" / "x" / "config.json").write_text("{}")

    class FakeServer:
        def __init__(self, command, host, port, title, public_url, templates_path):
            seen.update(command=command, host=host, port=port, public_url=public_url,
                        page=(templates_path / "app_index.html").read_text())

        def serve(self):
            seen["served"] = True

    monkeypatch.setattr("textual_serve.server.Server", FakeServer)
    assert entry.main(["--serve", "--port", "8123", "--runs", "r", "--replay", "r/x",
                       "--public-url", "http://room.example:9000/"]) == 0
    assert seen["served"] and seen["port"] == 8123
    assert seen["command"].endswith("-m pfs_tui --runs r --replay r/x")
    assert seen["public_url"] == "http://room.example:9000"  # what the page tells browsers to reach
    assert "fonts.googleapis.com" not in seen["page"]  # the page it serves loads nothing from the internet


def test_the_served_page_never_points_browsers_at_0_0_0_0(capsys):
    assert not entry.public_url_for("0.0.0.0", 8000, None).startswith("http://0.0.0.0")
    assert entry.public_url_for("localhost", 8000, None) == "http://localhost:8000"
    assert entry.main(["--serve", "--public-url", "room:8000"]) == 2
    assert capsys.readouterr().err.startswith("pfs: error: --public-url must look like http://HOST:PORT")


def test_follow_needs_a_run_or_latest(tmp_path, capsys):
    assert entry.main(["--follow", str(tmp_path)]) == 2
    assert "is not a run (no config.json)" in capsys.readouterr().err


def test_replay_of_a_missing_run_exits_2_like_follow(tmp_path, capsys):
    assert entry.main(["--replay", str(tmp_path / "nosuch")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfs: error: ") and "is not a run (no config.json)" in err and err.count("\n") == 1


def test_public_url_without_serve_is_refused(capsys):
    assert entry.main(["--public-url", "http://room:8000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfs: error: --public-url") and "add --serve" in err and err.count("\n") == 1


async def test_the_served_page_loads_nothing_from_outside_the_server(tmp_path):
    import re

    from aiohttp.test_utils import TestClient, TestServer
    from textual_serve.server import Server

    from pfs_tui.offline_page import offline_templates

    public = "http://127.0.0.1:8000"
    server = Server("true", host="127.0.0.1", port=8000, title="pfs explorer", public_url=public,
                    templates_path=offline_templates(tmp_path / "templates"))
    async with TestClient(TestServer(await server._make_app())) as client:
        page = await (await client.get("/")).text()
        urls = re.findall(r'(?:href|src)="([^"]+)"|url\("?([^")]+)"?\)', page)
        urls = [a or b for a, b in urls]
        assert urls and "fonts.googleapis.com" not in page
        outside = [u for u in urls if u.startswith(("http:", "https:", "//")) and not u.startswith(public)]
        assert outside == []  # a room without internet waits on nothing
        font = next(u for u in urls if u.endswith(".ttf"))
        response = await client.get(font.removeprefix(public))
        assert response.status == 200 and len(await response.read()) > 10_000  # the font, served here


def test_python_dash_m_pfs_tui_prints_help():
    out = subprocess.run([sys.executable, "-m", "pfs_tui", "--help"], capture_output=True, text=True, check=True)
    assert "--replay RUN" in out.stdout and "--serve" in out.stdout and "--runs" in out.stdout


async def test_help_page_explains_the_objective_r_and_gamma(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.current_mode == "help"
        text = app.screen.query_one(Markdown).source
        for words in ("gamma * (mean|g| - r)^2", "**r (sparsity)**", "**gamma**", "random weights differ"):
            assert words in text


async def test_command_palette_offers_the_main_actions(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Start gate learning", "Export structure.json", "Retrain (pfs train)", "Go to runs"):
            assert title in titles


async def test_footer_bindings_carry_ids_and_descriptions(runs_root):
    from pfs_tui.app import PfsApp
    from pfs_tui.screens.learn import LearnScreen
    from pfs_tui.screens.runs import RunsScreen
    from pfs_tui.screens.structure import StructureScreen

    for cls in (PfsApp, LearnScreen, StructureScreen, RunsScreen):
        for binding in cls.BINDINGS:
            assert binding.id and binding.description, (cls.__name__, binding.key)


@pytest.mark.slow
def test_serve_delivers_the_explorer_over_a_websocket(tmp_path):
    """`pfs tui --serve`: a browser's websocket gets the setup page drawn by the real app."""
    import asyncio
    import json
    import socket

    aiohttp = pytest.importorskip("aiohttp")
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "pfs_tui", "--serve", "--port", str(port),
                               "--runs", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def page() -> bytes:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # until the server listens
                try:
                    ws = await session.ws_connect(f"http://localhost:{port}/ws")
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            await ws.send_str(json.dumps(["resize", {"width": 80, "height": 24}]))
            data = b""
            while b"Start learning" not in data:
                msg = await asyncio.wait_for(ws.receive(), 60)
                data += msg.data if isinstance(msg.data, bytes) else str(msg.data).encode()
            await ws.close()
            return data

    try:
        assert b"Start learning" in asyncio.run(page())
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_the_page_bar_is_clickable(runs_root):
    from pfs_tui.widgets.nav_bar import NavBar

    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        nav = app.screen.query_one(NavBar)
        start, _, _ = next(span for span in nav._spans if span[2] == "runs")
        await pilot.click(NavBar, offset=(start + 1, 0))
        await pilot.pause()
        assert app.current_mode == "runs"
