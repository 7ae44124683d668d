"""`pfs runs` never crashes and never hides a run; it reads only the tail of events.jsonl."""
from __future__ import annotations

import json
import math
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.events import EpochEnd, EvalEnd, JsonlSink, RunFailed, RunFinished, RunStarted, StepEnd, StructureFound
from engine.runs import RunDir, list_runs, run_info

OLD = 1_700_000_000  # a log last written long ago: no writer can be finishing its last line


def _finished_run(path, name="run") -> RunDir:
    run = RunDir.create(path / name, {"model": "resnet20", "dataset": "synthetic", "seed": 0})
    with run.event_sink() as sink:
        for step in range(1, 4):
            sink(StepEnd(stage="learn", step=step, total_steps=3, epoch=1, loss=2.0))
        sink(EvalEnd(stage="learn", step=3, accuracy=0.25, loss=2.0))
        sink(EpochEnd(stage="learn", epoch=1, total_epochs=1, train_loss=2.0, train_acc=0.2, test_acc=0.25))
        sink(RunFinished(stage="learn", summary={"status": "finished"}))
    run.write_json("structure.json", {"budget": 0.5, "macs": 1000})
    run.write_json("summary.json", {"stage": "learn", "heldout_acc": 0.25})
    for f in run.path.iterdir():
        os.utime(f, (OLD, OLD))
    return run


DAMAGE = {
    "config.json": [b"{not json", b"[1, 2]", b"\xff\xfe\x00", b'{"model": 5, "dataset": "synthetic"}',
                    b'{"model": "resnet20", "dataset": "synthetic", "seed": "x"}'],
    "events.jsonl": [b"\xff\xfe bad bytes\n", b"[1, 2]\n", b'{"type": "step", "stage": "learn", "step": "x"}\n',
                     b'{"type": "finished", "stage": 3}\n', b'{"stage": "learn"}\n', b'{"type": "finished", "sta'],
    "structure.json": [b"", b"null", b'{"budget": "half", "macs": 10}', b'{"budget": 0.5, "macs": 1.5}'],
    "summary.json": [b"{", b'"text"', b'{"test_acc": "high"}', b'{"best_test_acc": [1]}'],
}


@pytest.mark.parametrize(("name", "damage"), [(n, d) for n, ds in DAMAGE.items() for d in ds])
def test_a_run_with_a_damaged_file_is_listed_as_corrupt_beside_the_others(tmp_path, capsys, name, damage):
    _finished_run(tmp_path, "good")
    bad = _finished_run(tmp_path, "bad")
    path = bad.file(name)
    if name == "events.jsonl":
        path.write_bytes(path.read_bytes() + damage)
    else:
        path.write_bytes(damage)
    os.utime(path, (OLD, OLD))
    infos = {i.name: i for i in list_runs(tmp_path)}
    assert set(infos) == {"good", "bad"}
    assert infos["bad"].corrupt == name and infos["good"].corrupt is None
    if name != "events.jsonl":  # the events still tell the stage and status
        assert (infos["bad"].stage, infos["bad"].status) == ("learn", "finished")
    assert main(["runs", str(tmp_path)]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("bad ")]
    assert len(rows) == 1 and rows[0].endswith(f"corrupt: {name}")
    assert main(["runs", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert {i["name"]: i["corrupt"] for i in listed} == {"good": None, "bad": name}


def test_an_event_of_a_newer_pfs_is_not_damage(tmp_path):
    run = _finished_run(tmp_path)
    with open(run.events_path, "a") as f:
        f.write('{"type": "added-later", "stage": "learn"}\n')
    os.utime(run.events_path, (OLD, OLD))
    assert run_info(run.path).corrupt is None


def test_a_torn_last_line_is_a_write_in_progress_only_while_fresh(tmp_path):
    run = _finished_run(tmp_path)
    with open(run.events_path, "ab") as f:
        f.write(b'{"type": "step", "stage": "train", "st')
    assert run_info(run.path).corrupt is None  # just written: its writer is finishing the line
    os.utime(run.events_path, (OLD, OLD))
    assert run_info(run.path).corrupt == "events.jsonl"  # nobody finished it: the log was cut short


def test_only_the_tail_of_a_long_events_log_is_read(tmp_path, monkeypatch):
    run = _finished_run(tmp_path)
    head = b"\xff damage that only a full read would see\n"
    body = "".join(json.dumps(StepEnd(stage="train", step=i, total_steps=10**6, epoch=1, loss=1.0).to_json()) + "\n"
                   for i in range(20000)).encode()
    tail = run.events_path.read_bytes()
    run.events_path.write_bytes(head + body + tail)
    os.utime(run.events_path, (OLD, OLD))
    reads = []

    class Counting:
        def __init__(self, *args):
            self.f = open(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, *args):
            return self.f.seek(*args)

        def read(self, n=-1):
            data = self.f.read(n)
            reads.append(len(data))
            return data

    import engine.runs.listing as listing

    monkeypatch.setattr(listing, "open", Counting, raising=False)
    info = run_info(run.path)
    assert (info.stage, info.status, info.heldout_accuracy, info.corrupt) == ("learn", "finished", 0.25, None)
    assert run.events_path.stat().st_size > 1_500_000 and sum(reads) <= 64 * 1024 + 1


def test_run_names_are_shown_whole(tmp_path, capsys):
    for suffix in ("20261202-101500", "20261202-101501"):
        _finished_run(tmp_path, f"resnet20-fashion-mnist-{suffix}")
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "resnet20-fashion-mnist-20261202-101500 " in out and "resnet20-fashion-mnist-20261202-101501 " in out


# -- the tail gives what the whole log gave --------------------------------------------------
def _forward(events) -> tuple:
    """The listing's fold over the whole log, as pfs did before reading only the tail."""
    stage, status, progress, accuracy, heldout, epoch = "learn", "stopped", 0.0, None, None, None
    for e in events:
        if not isinstance(e, (RunStarted, StructureFound)):
            stage = e.stage
        if isinstance(e, StepEnd):
            progress, status = e.step / max(1, e.total_steps), "running"
        elif isinstance(e, EpochEnd):
            progress, status, epoch = e.epoch / max(1, e.total_epochs), "running", (e.epoch, e.total_epochs)
            if e.stage != "train":  # learning's epochs do not test
                accuracy = None
            elif math.isfinite(e.test_acc):
                accuracy = e.test_acc
        elif isinstance(e, EvalEnd) and stage != "train" and math.isfinite(e.accuracy):
            heldout = e.accuracy
        elif isinstance(e, StructureFound):
            stage, status, progress, accuracy, epoch = "search", "finished", 1.0, None, None
        elif isinstance(e, RunFinished):
            stopped = e.summary.get("status") == "stopped"
            status, progress = ("stopped", progress) if stopped else ("finished", 1.0)
        elif isinstance(e, RunFailed):
            status = "stopped" if e.error.startswith("stopped") else "failed"
    return stage, status, progress, accuracy, heldout, epoch


stages = st.sampled_from(["learn", "train"])
accuracies = st.one_of(st.floats(0, 1), st.just(math.nan))
events = st.lists(st.one_of(
    st.builds(StepEnd, stage=stages, step=st.integers(0, 50), total_steps=st.integers(0, 50), epoch=st.just(1),
              loss=st.just(1.0)),
    st.builds(EvalEnd, stage=stages, step=st.integers(0, 50), accuracy=accuracies, loss=st.just(1.0)),
    st.builds(EpochEnd, stage=stages, epoch=st.integers(0, 9), total_epochs=st.integers(0, 9), train_loss=st.just(1.0),
              train_acc=st.just(0.5), test_acc=accuracies),
    st.builds(RunFinished, stage=stages, summary=st.sampled_from([{}, {"status": "stopped"}])),
    st.builds(RunFailed, stage=stages, error=st.sampled_from(["stopped in epoch 2", "boom"])),
    st.builds(RunStarted, stage=stages),
    st.builds(StructureFound, widths=st.just({}), macs=st.just(1), params=st.just(1), dense_macs=st.just(2),
              budget=st.just(0.5), threshold=st.just(0.1), tied=st.just(0)),
), max_size=40)


@settings(max_examples=60, deadline=None, database=None)
@given(log=events, block=st.sampled_from([7, 64, 4096]))
def test_reading_backwards_from_the_tail_gives_what_the_whole_log_gives(tmp_path_factory, log, block):
    import engine.runs.listing as listing

    saved, listing.TAIL_BLOCK = listing.TAIL_BLOCK, block  # small blocks: lines cross block borders
    try:
        info = _listed(tmp_path_factory.mktemp("run"), log)
    finally:
        listing.TAIL_BLOCK = saved
    stage, status, progress, accuracy, heldout, epoch = _forward(log)
    if status == "running":
        status = "stopped"  # no owner and silent for an hour: not running (both ways)
    assert (info.stage, info.status, info.accuracy, info.heldout_accuracy, info.corrupt) == \
        (stage, status, accuracy, heldout, None)
    assert info.progress == pytest.approx(progress)
    assert (info.epoch, info.total_epochs) == (epoch or (None, None))


def _listed(path, log):
    run = RunDir.create(path / "r", {"model": "resnet20", "dataset": "synthetic"})
    with JsonlSink(run.events_path) as sink:
        for e in log:
            sink(e)
    past = time.time() - 3600
    for f in run.path.iterdir():
        os.utime(f, (past, past))
    return run_info(run.path)


@pytest.mark.parametrize("owner", [b"\xff", b"[1]", b'{"pid": 99999999999999999999, "host": "%s"}',
                                   b'{"pid": true, "host": "%s"}', b'{"pid": "1", "host": "%s"}'])
def test_a_damaged_owner_record_does_not_stop_the_listing(tmp_path, owner):
    import socket

    run = _finished_run(tmp_path)
    run.file("pid.json").write_bytes(owner.replace(b"%s", socket.gethostname().encode()))
    [info] = list_runs(tmp_path)
    assert (info.status, info.corrupt) == ("finished", None)
