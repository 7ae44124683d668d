from __future__ import annotations

import io
import json
import math

from engine.events import (
    EVENT_TYPES,
    EpochEnd,
    EvalEnd,
    Event,
    GateSnapshot,
    JsonlSink,
    ProgressBar,
    StepEnd,
    StructureFound,
    read_events,
)


def samples():
    return [StepEnd(stage="learn", step=3, total_steps=10, epoch=0, loss=2.3, mean_gate=0.5, open_frac=0.9),
            EvalEnd(stage="learn", step=3, accuracy=0.21, loss=2.1, best=True),
            GateSnapshot(step=3, gates={"layer1.0": [0.0, 0.5, 1.0]}),
            StructureFound(widths={"a": 3}, macs=10, params=5, dense_macs=20, budget=0.5, threshold=0.1, tied=0),
            EpochEnd(stage="train", epoch=1, total_epochs=2, train_loss=1.0, train_acc=0.5, test_acc=0.6)]


def test_every_event_round_trips_through_json_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    with JsonlSink(path) as sink:
        for e in samples():
            sink(e)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["step", "eval", "gates", "structure", "epoch"]
    back = read_events(path)
    assert [type(e) for e in back] == [type(e) for e in samples()]
    assert (back[1].accuracy, back[1].best, back[1].step) == (0.21, True, 3)
    assert back[2].gates == {"layer1.0": [0.0, 0.5, 1.0]}
    assert set(EVENT_TYPES) >= {"step", "eval", "gates", "structure", "epoch", "checkpoint", "finished", "failed"}


def test_nan_is_written_as_null_and_read_back_as_nan(tmp_path):
    e = StepEnd(stage="learn", step=1, total_steps=2, epoch=0, loss=1.0)
    data = e.to_json()
    assert data["mean_gate"] is None
    back = Event.from_json(json.loads(json.dumps(data)) | {"mean_gate": float("nan")})
    assert math.isnan(back.mean_gate)


def test_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    with JsonlSink(path) as sink:
        sink(samples()[0])
    with open(path, "a") as f:
        f.write('{"type": "eval", "stage": "le')
    assert len(read_events(path)) == 1


def test_progress_bar_shows_loss_heldout_and_open_fraction():
    out = io.StringIO()
    bar = ProgressBar(stream=out, hz=1e9)
    bar(EvalEnd(stage="learn", step=1, accuracy=0.25, loss=2.0))
    bar(StepEnd(stage="learn", step=5, total_steps=10, epoch=0, loss=1.5, open_frac=0.4, steps_per_s=2.0))
    bar.close()
    text = out.getvalue()
    assert "5/10" in text and "loss 1.500" in text and "held-out 0.250" in text and "open 0.40" in text
    assert text.endswith("\n")
    bar(EvalEnd(stage="train", step=1, accuracy=0.5, loss=1.0))
    bar(StepEnd(stage="train", step=1, total_steps=10, epoch=0, loss=1.0))
    assert "test 0.500" in out.getvalue()
