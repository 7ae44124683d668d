"""Gate learning under torchrun (gloo, CPU): 2 ranks x B/2 learn the gates 1 process x B learns.

The ranks normalise with the global batch's BatchNorm statistics (engine.learn_distributed),
and so does one plain `pfs learn` (its "world-invariant" BatchNorm: per-image sums, then
float64 sums over images): the gates come out bit for bit equal. PyTorch's native CPU
BatchNorm computes the same statistics with other rounding, and Adam turns rounding in a gate
whose gradient is near zero into a step of its own, so a run learned with it (what runs made
before the arithmetic was recorded used) differs by about 1.5e-2 after 20 steps: the control.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.cli import main
from engine.collective import DistInfo
from engine.data import load_dataset
from engine.errors import PfsError
from engine.jobs import learn_run
from engine.learn import LearnConfig
from engine.learn_distributed import NATIVE, Ranks, global_batch_norm
from engine.runs import list_runs, load_tensors

TORCHRUN = Path(sys.executable).with_name("torchrun")
LEARN = ["learn", "resnet20", "--expand", "0.5", "--batch-size", "32", "--subset", "1000", "--eval-every", "10",
         "--heldout-limit", "200", "--device", "cpu", "--quiet", "--json"]
STEPS = ["--steps", "20"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
needs_torchrun = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed next to this python")


def torchrun(*args: str, launch: tuple[str, ...] = ("--standalone", "--nproc_per_node", "2"), **kw):
    """`torchrun LAUNCH -m engine ARGS` as a child process (its own session, so Ctrl-C can reach it)."""
    return subprocess.Popen([str(TORCHRUN), *launch, "-m", "engine", *args], env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finished(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def max_gate_diff(a: Path, b: Path) -> float:
    ga, gb = load_tensors(a / "gates.pt"), load_tensors(b / "gates.pt")
    assert set(ga) == set(gb)
    return max((ga[k] - gb[k]).abs().max().item() for k in ga)


def one_thread(job):
    """`job()` in this process on one thread, as each rank runs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return job()
    finally:
        torch.set_num_threads(n)


def learn_here(out: Path, *extra: str) -> None:
    """The single-process reference: plain `pfs learn`."""
    assert one_thread(lambda: main([*LEARN, *STEPS, *extra, "--out", str(out)])) == 0


def learn_native(out: Path) -> None:
    """LEARN's run, one process, with torch's native BatchNorm kernel (engine.jobs.learn_run)."""
    config = LearnConfig(steps=20, batch_size=32, eval_every=10, heldout_limit=200, device="cpu")
    shaping = {"subset": 1000, "image_size": None, "workers": 0}  # as LEARN's flags record it
    one_thread(lambda: learn_run(out, model="resnet20", dataset="fashion-mnist", learn=config, expand=0.5,
                                 data=load_dataset("fashion-mnist"), data_options=shaping, batch_norm=NATIVE))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """20 steps of one plain `pfs learn` process."""
    out = tmp_path_factory.mktemp("ref") / "run"
    learn_here(out)
    return out


@needs_torchrun
def test_two_gloo_ranks_learn_the_gates_one_process_learns(reference, tmp_path):
    proc = torchrun(*LEARN, *STEPS, "--out", str(tmp_path / "ddp"))
    native = tmp_path / "native"
    learn_native(native)  # meanwhile: the control, native BatchNorm
    code, err = finished(proc)
    assert code == 0, err[-3000:]
    ddp = tmp_path / "ddp"
    assert max_gate_diff(ddp, reference) <= 1e-5  # measured: 0.0 (bit for bit)
    control = max_gate_diff(native, reference)
    assert 1e-5 < control < 0.1  # measured: 1.5e-2 of gates in [0, 1]: rounding, amplified by Adam
    assert json.loads((native / "config.json").read_text())["batch_norm"] == NATIVE
    summary, ref = (json.loads((p / "summary.json").read_text()) for p in (ddp, reference))
    assert summary["heldout_acc"] == ref["heldout_acc"] and summary["steps"] == 20
    assert (summary["world_size"], ref["world_size"]) == (2, 1)
    # Only rank 0 wrote: the same files as one process, one stream with one start and one end.
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in reference.iterdir())
    kinds = [json.loads(line)["type"] for line in (ddp / "events.jsonl").read_text().splitlines()]
    assert kinds.count("started") == 1 and kinds.count("finished") == 1
    assert kinds.count("step") == 20
    # Only rank 0 reported: one JSON summary on stdout.
    assert [i.world_size for i in list_runs(tmp_path) if i.name == "ddp"] == [2]


@needs_torchrun
@pytest.mark.slow  # two more torchrun launches (~25 s on 2 loaded cores)
def test_two_nodes_of_one_process_each_learn_the_same_gates(reference, tmp_path):
    """Multi-node as the docs launch it, on localhost: two torchrun agents, --nnodes 2."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    nodes = [torchrun(*LEARN, *STEPS, "--out", str(tmp_path / "nodes"),
                      launch=("--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank),
                              "--master_addr", "127.0.0.1", "--master_port", port))
             for rank in (0, 1)]
    for node in nodes:
        code, err = finished(node)
        assert code == 0, err[-3000:]
    assert max_gate_diff(tmp_path / "nodes", reference) <= 1e-5
    assert json.loads((tmp_path / "nodes" / "summary.json").read_text())["world_size"] == 2


@needs_torchrun
@pytest.mark.slow  # a torchrun launch (~10 s)
def test_a_refused_start_under_torchrun_is_one_error_line_and_leaves_the_run_as_it_was(reference, tmp_path):
    before = {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()}
    code, err = finished(torchrun(*LEARN, *STEPS, "--out", str(reference)))
    assert code != 0
    assert err.count("pfs: error:") == 1 and "already holds a run" in err  # rank 0's check
    assert {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()} == before


@needs_torchrun
@pytest.mark.slow  # two torchrun launches (~40 s on 2 loaded cores)
def test_ctrl_c_stops_both_ranks_with_a_checkpoint_and_resume_ends_on_the_same_gates(reference, tmp_path):
    out = tmp_path / "stopped"
    proc = torchrun(*LEARN, *STEPS, "--out", str(out))
    events = out / "events.jsonl"
    deadline = time.monotonic() + 240
    while not (events.is_file() and '"type": "step"' in events.read_text()):  # learning has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends to the whole group
    code, err = finished(proc)
    assert code != 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] < 20
    assert err.count("pfs: stopped at step") == 1  # one line, from rank 0
    assert (out / "checkpoints" / "learn.pt").is_file()
    [info] = [i for i in list_runs(tmp_path) if i.name == "stopped"]
    assert (info.status, info.world_size) == ("stopped", 2)

    code, err = finished(torchrun("resume", str(out), "--quiet", "--json"))
    assert code == 0, err[-3000:]
    assert json.loads((out / "summary.json").read_text())["steps"] == 20
    assert max_gate_diff(out, reference) <= 1e-5  # nothing lost, nothing repeated


@needs_torchrun
@pytest.mark.slow
def test_a_killed_rank_ends_the_learn_and_resume_continues_from_the_last_checkpoint(tmp_path):
    """kill -9 of rank 1 after the step-100 checkpoint: rank 0 stops too, and resuming under
    torchrun finishes the run from that checkpoint."""
    out = tmp_path / "killed"
    proc = torchrun(*LEARN, "--steps", "130", "--out", str(out))
    events = out / "events.jsonl"
    deadline = time.monotonic() + 600
    while not (events.is_file() and '"checkpoint"' in events.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    rank1 = next(p for p in workers if "RANK=1\0" in Path(f"/proc/{p}/environ").read_text())
    os.kill(rank1, signal.SIGKILL)
    code, err = finished(proc)
    assert code != 0
    [info] = [i for i in list_runs(tmp_path) if i.name == "killed"]
    # Rank 0 either notices the lost peer in a collective first (one line, a "failed" run)
    # or is stopped by torchrun first (no word, a "killed" run): both keep the checkpoint.
    if info.status == "failed":
        assert err.count("pfs: failed: another process of this torchrun job died") == 1
    else:
        assert info.status == "killed" and info.progress == pytest.approx(100 / 130)

    code, err = finished(torchrun("resume", str(out), "--quiet", "--json"))
    assert code == 0, err[-3000:]
    started = [json.loads(line) for line in events.read_text().splitlines() if '"started"' in line]
    assert started[-1]["config"]["resumed_from_step"] == 100
    assert json.loads((out / "summary.json").read_text())["steps"] == 130


def test_global_batch_norm_in_one_process_is_batch_norm():
    """Outputs, gradients and running statistics of plain BatchNorm (float64: to rounding)."""
    torch.manual_seed(0)
    x = (torch.randn(6, 4, 5, 5, dtype=torch.float64) * 3 + 1).contiguous(memory_format=torch.channels_last)
    w, b = torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    grad = torch.randn(6, 4, 5, 5, dtype=torch.float64)
    results = []
    for use_global in (False, True):
        xi, wi, bi = (t.clone().requires_grad_() for t in (x, w, b))
        stats = [torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)]
        with global_batch_norm() if use_global else nullcontext():
            out = F.batch_norm(xi, *stats, wi, bi, True, 0.1, 1e-5)
        out.backward(grad)
        results.append([out, xi.grad, wi.grad, bi.grad, *stats])
    for native, ours in zip(*results):
        assert torch.allclose(native, ours, rtol=0, atol=1e-10)
    assert F.batch_norm is torch.nn.functional.batch_norm  # restored after the block


def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused():
    with pytest.raises(PfsError, match="multiple of 2"):
        Ranks(DistInfo(rank=0, world_size=2)).check_batch(63)
    Ranks(DistInfo(rank=1, world_size=2)).check_batch(64)


def test_learn_under_torchrun_needs_a_named_run(monkeypatch, tmp_path, capsys):
    """Each process would stamp its own default name: --out is asked for before anything is written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*LEARN, *STEPS]) == 2
    assert "under torchrun name the run with --out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_command_that_does_not_split_over_processes_is_refused_under_torchrun_once(monkeypatch, tmp_path, capsys,
                                                                                     rank):
    """`pfs search` / `bench` / ... would run once per process and write the same files: refused,
    and every rank refuses alike, so only rank 0 prints the line."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    for command in (["search", str(tmp_path), "--flops", "0.5"], ["bench", str(tmp_path)], ["runs", str(tmp_path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        if rank == "0":
            assert err.count("\n") == 1 and err.startswith(f"pfs: error: pfs {command[0]} runs in one process")
            assert "learn, prune, train, run, resume" in err
        else:
            assert err == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_learn_on_cuda_without_cuda_is_one_line_and_writes_nothing(tmp_path, capsys):
    args = [a if a != "cpu" else "cuda" for a in LEARN]
    assert main([*args, *STEPS, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pfs: error:" in err and "--device cpu" in err
    assert not (tmp_path / "r").exists()


@needs_torchrun
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_learn_under_torchrun_on_cuda_runs_a_rank_per_gpu(tmp_path):
    nproc = str(min(2, torch.cuda.device_count()))
    cuda = [a if a != "cpu" else "cuda" for a in LEARN]
    code, err = finished(torchrun(*cuda, *STEPS, "--out", str(tmp_path / "r"),
                                  launch=("--standalone", "--nproc_per_node", nproc)))
    assert code == 0, err[-3000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["world_size"] == int(nproc)


@needs_torchrun
@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs (nccl: one rank per GPU)")
def test_two_nccl_ranks_learn_the_gates_one_gpu_process_learns(tmp_path):
    cuda = [a if a != "cpu" else "cuda" for a in LEARN]
    proc = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "engine", *cuda, *STEPS,
                           "--out", str(tmp_path / "ddp")], env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main([*cuda, *STEPS, "--out", str(tmp_path / "ref")]) == 0  # plain pfs learn, one GPU
    # cuDNN's kernels may differ between batch 32 and 64: equal to the GPU's rounding.
    assert max_gate_diff(tmp_path / "ddp", tmp_path / "ref") <= 1e-2
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["world_size"] == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_global_batch_norm_on_cuda_is_batch_norm():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 6, 6, device="cuda", dtype=torch.float64, requires_grad=True)
    with global_batch_norm():
        ours = F.batch_norm(x, None, None, None, None, True, 0.1, 1e-5)
    native = F.batch_norm(x, None, None, None, None, True, 0.1, 1e-5)
    assert torch.allclose(ours, native, atol=1e-10)
