"""Fixtures of the explorer's tests: a temporary runs folder; async tests without plugins."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    """An empty runs folder, as ./runs of a temporary working directory."""
    monkeypatch.chdir(tmp_path)
    root = Path("runs")
    root.mkdir()
    return root


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests in a fresh event loop (no pytest-asyncio in this project)."""
    import asyncio
    import inspect

    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None
