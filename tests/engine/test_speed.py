"""`pfs bench`: both networks timed, interleaved, medians; speed.json strict and shown by `pfs runs`.

Timing itself is never asserted faster or slower (the machine is shared): the tests check
what was timed, how, and that every number in the file follows from the timings.
"""
from __future__ import annotations

import json

import pytest
import torch

from engine.cli import main
from engine.errors import PfsError
from engine.jobs import BenchOptions, bench_run
from engine.jobs.speed import FRESH_NOTE, time_interleaved
from engine.runs import run_info, speed_summary

# the machine is shared: the "got N% of a core" warning is expected here, and beside the point
pytestmark = pytest.mark.filterwarnings("ignore:while timing:engine.errors.PfsWarning")

QUICK = BenchOptions(batch_sizes=(1, 4), repeats=3, warmup=1, compile=False)


def _strict(text: str) -> dict:
    def refuse(token):
        raise AssertionError(f"speed.json holds {token}")
    return json.loads(text, parse_constant=refuse)


def test_bench_times_dense_and_pruned_in_torch_and_onnxruntime(tmp_path, make_run, one_thread):
    run, _, structure = make_run(tmp_path / "run")
    speed = bench_run(run.path, QUICK)
    assert _strict(run.file("speed.json").read_text()) == json.loads(json.dumps(speed))
    assert speed["macs"] == {"dense": structure.dense_macs, "pruned": structure.macs}
    assert speed["weights"] == FRESH_NOTE and speed["input_size"] == [1, 28, 28]
    assert [(r["engine"], r["batch_size"]) for r in speed["results"]] == [
        ("torch", 1), ("torch", 4), ("onnxruntime", 1), ("onnxruntime", 4)]
    for row in speed["results"]:
        for net in ("dense", "pruned"):
            s = row[net]
            assert s["repeats"] == 3 and 0 < s["median_ms"] <= s["p90_ms"]
            assert s["images_per_s"] == pytest.approx(row["batch_size"] / s["median_ms"] * 1e3)
        assert row["speedup"] == pytest.approx(row["dense"]["median_ms"] / row["pruned"]["median_ms"])
        if row["pruned"]["cpu_median_ms"] > 0:  # CPU time, the cross-check on a shared machine
            assert row["cpu_speedup"] == pytest.approx(row["dense"]["cpu_median_ms"] / row["pruned"]["cpu_median_ms"])
        if row["engine"] == "torch":  # not compiled here: eager is the one mode tried, and recorded
            assert row["dense"]["mode"] == row["pruned"]["mode"] == "eager"
            assert row["dense"]["tried_ms"] == {"eager": row["dense"]["median_ms"]}
    m = speed["machine"]
    assert m["threads"] == 1 and m["torch"] == torch.__version__ and m["onnxruntime"] and m["cpu"]
    assert speed["skipped"] == {}


def test_a_trained_run_is_timed_with_its_weights(tmp_path, make_run, one_thread):
    from engine.prune import extract
    from engine.runs.export import save_weights

    run, net, structure = make_run(tmp_path / "run")
    save_weights(run, extract(net, structure, "copy"))
    run.write_json("summary.json", {"stage": "train", "status": "finished", "expand": 1.0})
    speed = bench_run(run.path, BenchOptions(batch_sizes=(1,), repeats=3, warmup=0, compile=False, onnx=False))
    assert speed["weights"].startswith("trained") and [r["engine"] for r in speed["results"]] == ["torch"]


def test_a_training_widened_by_expand_is_timed_and_counted_at_its_width(tmp_path, make_run, one_thread):
    from engine.flops import count_macs
    from engine.prune import pruned_model
    from engine.runs.export import save_weights

    run, _, structure = make_run(tmp_path / "run")
    save_weights(run, pruned_model(structure, expand=1.5, seed=0))
    run.write_json("summary.json", {"stage": "train", "status": "finished", "expand": 1.5})
    speed = bench_run(run.path, BenchOptions(batch_sizes=(1,), repeats=3, warmup=0, compile=False, onnx=False))
    widened = count_macs(pruned_model(structure, expand=1.5), structure.input_size)
    assert speed["macs"]["pruned"] == widened > structure.macs
    assert speed["macs_ratio"] == structure.dense_macs / widened


def test_calls_are_interleaved_in_alternating_order_after_warmup():
    calls = []
    times = time_interleaved({"dense": lambda: calls.append("d"), "pruned": lambda: calls.append("p")},
                             repeats=4, warmup=2)
    assert calls == ["d", "d", "p", "p"] + ["d", "p", "p", "d"] * 2  # warm-up first, never timed
    assert {k: (len(v.wall), len(v.cpu)) for k, v in times.items()} == {"dense": (4, 4), "pruned": (4, 4)}


def test_the_headline_puts_the_speedups_next_to_the_macs_ratio():
    speed = {"macs": {"dense": 200, "pruned": 100}, "results": [
        {"engine": "torch", "batch_size": 64, "speedup": 1.9},
        {"engine": "onnxruntime", "batch_size": 1, "speedup": 1.6},
        {"engine": "torch", "batch_size": 1, "speedup": 1.45}]}
    assert speed_summary(speed).line() == "2.00x fewer MACs; 1.45x faster (torch, batch 1), 1.60x (onnxruntime)"
    assert speed_summary({"macs": {"dense": 1}, "results": []}) is None
    busy = {**speed, "cpu_share": 0.3, "results": [{**r, "cpu_speedup": r["speedup"] + 0.1} for r in speed["results"]]}
    assert speed_summary(busy).line() == ("2.00x fewer MACs; 1.55x faster (torch, batch 1), 1.70x (onnxruntime); "
                                          "in CPU time (the machine was busy)")
    assert speed_summary({**busy, "cpu_share": 0.9}).line() == speed_summary(speed).line()


@pytest.mark.parametrize("options, match", [
    (BenchOptions(batch_sizes=(0,)), "--batch-sizes"),
    (BenchOptions(repeats=2), "--repeats"),
    (BenchOptions(device="tpu"), "--device"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, make_run, options, match):
    run, _, _ = make_run(tmp_path / "run")
    with pytest.raises(PfsError, match=match):
        bench_run(run.path, options)
    assert not run.file("speed.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_clear_line(tmp_path, make_run, capsys):
    run, _, _ = make_run(tmp_path / "run")
    assert main(["bench", str(run.path), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cpu" in err[0] and not run.file("speed.json").exists()


def test_a_run_without_a_structure_is_refused(tmp_path, make_run, capsys):
    run, _, _ = make_run(tmp_path / "run")
    run.file("structure.json").unlink()
    assert main(["bench", str(run.path)]) == 2
    assert "pfs search" in capsys.readouterr().err and not run.file("speed.json").exists()


def test_cli_bench_then_runs_shows_the_speedup(tmp_path, make_run, capsys, one_thread):
    run, _, _ = make_run(tmp_path / "runs" / "a")
    make_run(tmp_path / "runs" / "b")  # not benchmarked: no speed-up
    assert main(["bench", str(run.path), "--batch-sizes", "1", "2", "--repeats", "3", "--no-compile",
                 "--json"]) == 0
    speed = _strict(capsys.readouterr().out)
    shown = speed_summary(speed).speedups["torch"]  # wall clock, or CPU time when the machine was busy
    torch_1 = next(r for r in speed["results"] if r["engine"] == "torch" and r["batch_size"] == 1)
    assert shown == torch_1["cpu_speedup" if speed["cpu_share"] < 0.7 else "speedup"]
    info = run_info(run.path)
    assert info.speedup == pytest.approx(shown) and info.corrupt is None
    assert run_info(tmp_path / "runs" / "b").speedup is None
    assert main(["runs", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["speed-up", "ranks"]
    assert {line.split()[0]: line.split()[-2] for line in lines[1:]} == {"a": f"{shown:.2f}x", "b": "-"}


def test_a_damaged_speed_file_is_listed_as_corrupt(tmp_path, make_run):
    run, _, _ = make_run(tmp_path / "run")
    run.file("speed.json").write_text('{"results": "fast"}')
    info = run_info(run.path)
    assert info.speedup is None and "speed.json" in info.corrupt


def test_a_new_structure_drops_the_old_ones_speed(tmp_path, make_run, one_thread):
    from engine.jobs import search_run

    run, _, _ = make_run(tmp_path / "run")
    bench_run(run.path, BenchOptions(batch_sizes=(1,), repeats=3, warmup=0, compile=False, onnx=False))
    search_run(run.path, 0.3)
    assert not run.file("speed.json").exists()


@pytest.mark.slow
def test_torch_compile_is_tried_and_the_faster_mode_kept(tmp_path, make_run):
    run, _, _ = make_run(tmp_path / "run")
    speed = bench_run(run.path, BenchOptions(batch_sizes=(1,), repeats=5, warmup=2, onnx=False))
    for net in ("dense", "pruned"):
        s = speed["results"][0][net]
        assert s["compile"].startswith(("compiled in", "failed"))
        assert s["mode"] == min(s["tried_ms"], key=s["tried_ms"].get)
        assert ("compiled" in s["tried_ms"]) == s["compile"].startswith("compiled")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_on_cuda_times_both_networks(tmp_path, make_run):
    run, _, _ = make_run(tmp_path / "run")
    speed = bench_run(run.path, BenchOptions(device="cuda", batch_sizes=(1, 64), repeats=10))
    assert speed["device"] == "cuda" and speed["machine"]["gpu"]
    assert {(r["engine"], r["batch_size"]) for r in speed["results"]} >= {("torch", 1), ("torch", 64)}
    assert all(r["dense"]["median_ms"] > 0 and r["pruned"]["median_ms"] > 0 for r in speed["results"])


def test_the_cpu_share_says_how_much_of_a_core_the_timing_got():
    from engine.jobs.speed import cpu_share

    rows = [{"dense": {"median_ms": 10.0, "cpu_median_ms": 4.0}, "pruned": {"median_ms": 6.0, "cpu_median_ms": 2.4}}]
    assert cpu_share(rows, 1, "cpu") == pytest.approx(0.4)
    assert cpu_share(rows, 2, "cpu") is None and cpu_share(rows, 1, "cuda") is None  # CPU time is no latency there


def test_a_busy_machine_is_one_warning_line_and_recorded(tmp_path, make_run, capsys, monkeypatch, one_thread):
    from engine.jobs import speed

    run, _, _ = make_run(tmp_path / "run")
    monkeypatch.setattr(speed, "BUSY_SHARE", 2.0)  # any share counts as busy
    assert main(["bench", str(run.path), "--batch-sizes", "1", "--repeats", "3", "--no-compile", "--no-onnx"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pfs: warning:")]
    assert len(warned) == 1 and "of a core" in warned[0] and "CPU-time speed-ups" in warned[0]
    assert 0 < json.loads(run.file("speed.json").read_text())["cpu_share"] < 2.0
