"""Structure page: `l` switches the target between MACs and measured latency (probes in a worker);
the run's `pfs bench` headline shows in the run's detail page."""
from __future__ import annotations

import threading

import pytest
import torch

from engine.jobs import BenchOptions, bench_run
from engine.runs import speed_summary
from pfs_tui.screens import structure as structure_page
from pfs_tui.screens.run_detail import RunDetailScreen
from pfs_tui.testing import make_app, settled_structure, text_of, wait_until

# the machine is shared: the "got N% of a core" warning is expected here, and beside the point
pytestmark = pytest.mark.filterwarnings("ignore:while timing:engine.errors.PfsWarning")


async def test_l_targets_a_fraction_of_the_dense_latency_timed_off_the_ui_thread(runs_root, monkeypatch,
                                                                                 one_thread):
    threads = []

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return latency_structures(*args, **kwargs)

    latency_structures = structure_page.latency_structures
    monkeypatch.setattr(structure_page, "latency_structures", recorded)
    # 0.9 of ResNet-20's dense latency: its smallest structure takes about a tenth, so a
    # structure is found however loaded the machine is while the probes are timed
    app = make_app(runs_root, budget=0.9)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        by_macs = await settled_structure(pilot, app)
        await pilot.press("l")
        found = await settled_structure(pilot, app)
        screen, lat = app.screen, app.screen.latency
        assert threads and threading.main_thread() not in threads
        assert lat.structure is found and lat.budget_ms == pytest.approx(0.9 * lat.dense_ms)
        assert lat.search_ms <= lat.budget_ms and lat.measured_ms > 0
        assert screen.uniform.macs <= found.macs  # the uniform network of the found structure's MACs
        summary = text_of(app, "#structure-summary")
        assert f"target {lat.budget_ms:.2f} ms" in summary and f"measured {lat.search_ms:.2f} ms" in summary
        await pilot.press("l")
        back = await settled_structure(pilot, app)
        assert back.widths == by_macs.widths and screen.latency is None
        assert "latency" not in text_of(app, "#structure-summary")


async def test_the_run_page_and_the_structure_page_show_the_bench_headline(runs_root, make_run_dir, one_thread):
    run = make_run_dir(runs_root / "benched")
    speed = bench_run(run, BenchOptions(batch_sizes=(1,), repeats=3, warmup=0, compile=False, onnx=False))
    headline = speed_summary(speed).line()
    assert headline.startswith(f"{speed['macs_ratio']:.2f}x fewer MACs; ") and "faster (torch, batch 1)" in headline
    app = make_app(runs_root)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.push_screen(RunDetailScreen(run))
        await wait_until(pilot, lambda: "pfs bench" in text_of(app, "#run-head"), what="the bench line")
        assert headline in text_of(app, "#run-head")
        app.pop_screen()
        app.session.run_path = run  # as `g` on the run's page leaves it
        await pilot.press("3")
        await settled_structure(pilot, app)
        assert f"measured (pfs bench, saved structure): {headline}" in text_of(app, "#structure-summary")


@pytest.fixture
def make_run_dir():
    """A learned and searched run directory (random gates), as `pfs learn` + `pfs search` leave it."""
    from engine.gating import create_model
    from engine.runs import RunDir
    from engine.search import search

    def make(path):
        net = create_model("resnet20", num_classes=10, in_channels=1, expand=0.25)
        gates = {k: torch.rand(w, generator=torch.Generator().manual_seed(1)) for k, w in net.widths.items()}
        run = RunDir.create(path, {"model": "resnet20", "dataset": "fashion-mnist", "model_spec": net.spec,
                                   "input_size": [1, 28, 28], "num_classes": 10, "seed": 0})
        run.write_json("structure.json", search(net, 0.5, (1, 28, 28), gates=gates).to_json())
        return run.path
    return make
