"""Property: whatever happens to one file of a finished run, every command that reads runs
ends in exit 0 or one `pfs: error:` line, never runs planted code, and changes no other file.

One small run is made once (synthetic data, a few steps: config.json, events.jsonl,
init.pt, gates.pt, structure.json, checkpoints/last.pt, summary.json). Each example copies
it, damages one file (truncated, random bytes, wrong JSON types or non-finite numbers,
wrong tensor contents, a pickle whose code would create a marker file) and runs `pfs runs`,
`search` (plain and --overwrite), `train`, `resume`, `compare`, `flops --widths` and `export`
on fresh copies in-process.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main

FILES = ("config.json", "events.jsonl", "structure.json", "summary.json", "gates.pt", "init.pt",
         "checkpoints/last.pt", "model.safetensors")
TRAINED = {"config.json", "events.jsonl", "summary.json", "checkpoints/last.pt", "model.safetensors"}
TINY_TRAIN = ["--epochs", "1", "--subset", "64", "--test-subset", "64", "--batch-size", "32", "--device", "cpu",
              "--quiet"]
# Command -> (argv for a run at RUN inside folder ROOT, files it may write when it succeeds).
COMMANDS = {
    "runs": (lambda run, root: ["runs", str(root), "--json"], set()),
    "search": (lambda run, root: ["search", str(run), "--flops", "0.5"], {"structure.json", "events.jsonl"}),
    # The run is trained: a new search must be told to discard that training.
    "search --overwrite": (lambda run, root: ["search", str(run), "--flops", "0.5", "--overwrite"],
                           {"structure.json", *TRAINED}),
    "train": (lambda run, root: ["train", str(run), "--overwrite", *TINY_TRAIN], TRAINED),
    "resume": (lambda run, root: ["resume", str(run), "--quiet"], TRAINED - {"config.json"}),
    "export": (lambda run, root: ["export", str(run), "--format", "safetensors", "--out", str(root / "net.st")],
               set()),
    "compare": (lambda run, root: ["compare", str(run), str(run)], set()),
    "flops": (lambda run, root: ["flops", "resnet20", "--widths", str(run / "structure.json")], set()),
}
WRONG_VALUES = [None, "x", "", -1, 0, 1.5, 10**12, True, [], {}, [1, "a"], {"a": None},
                float("nan"), float("inf"), -float("inf")]


class _Plant:
    """Unpickling this creates the marker file: a load that runs code would show."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(str(self.marker)),))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("base")
    run = root / "run"
    for argv in (["learn", "resnet20", "--dataset", "synthetic", "--steps", "2", "--batch-size", "32",
                  "--expand", "0.25", "--heldout-limit", "64", "--quiet", "--out", str(run)],
                 ["search", str(run), "--flops", "0.5"],
                 ["train", str(run), *TINY_TRAIN]):
        assert main(argv) == 0, argv
    assert {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()} == set(FILES)
    for name in FILES:  # every JSON pfs wrote is strict (null, never NaN or Infinity)
        if name.endswith(".json"):
            _strict_json((run / name).read_text())
        elif name.endswith(".jsonl"):
            [_strict_json(line) for line in (run / name).read_text().splitlines()]
    return run


def _hashes(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"pfs printed non-strict JSON ({name})")
    return json.loads(text, parse_constant=refuse)


KINDS = ("truncate", "random bytes", "wrong types", "pickle with code")


@st.composite
def damage(draw):
    """(file, kind of damage, data to draw its details from) for one file of the run."""
    return draw(st.sampled_from(FILES)), draw(st.sampled_from(KINDS)), draw(st.data())


def _damaged_bytes(name: str, kind: str, old: bytes, data, marker: Path) -> bytes:
    if kind == "truncate":
        return old[:data.draw(st.integers(0, max(0, len(old) - 1)), label="cut at")]
    if kind == "random bytes":
        start = data.draw(st.integers(0, max(0, len(old) - 1)), label="start")
        noise = data.draw(st.binary(min_size=1, max_size=64), label="noise")
        return old[:start] + noise + old[start + len(noise):]
    if kind == "pickle with code":
        if data.draw(st.booleans(), label="zip format"):
            buf = io.BytesIO()
            torch.save({"w": torch.ones(2), "planted": _Plant(marker)}, buf)
            return buf.getvalue()
        return pickle.dumps({"planted": _Plant(marker)})
    # wrong types: JSON of the right shape with a wrong value, or tensors that do not fit
    if name.endswith(".safetensors"):
        from safetensors.torch import save

        return save({"conv1.weight": torch.zeros(3), "fc.bias": torch.full((2,), float("nan"))})
    if name.endswith(".pt"):
        value = data.draw(st.sampled_from(["list", "nan", "shape", "scalar"]), label="tensor damage")
        state = torch.load(io.BytesIO(old), weights_only=True)
        if value == "list":
            state = [1, 2]
        elif value == "scalar":
            state = torch.tensor(1.0)
        else:
            flat = _tensor_paths(state)
            path = data.draw(st.sampled_from(flat), label="tensor") if flat else None
            if path is not None:
                _set_path(state, path, lambda t: torch.full_like(t, float("nan")) if value == "nan" and
                          t.is_floating_point() else torch.zeros(3, 3))
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()
    if name == "events.jsonl":
        lines = old.decode().splitlines()
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        event = json.loads(lines[i])
        key = data.draw(st.sampled_from(sorted(event)), label="key")
        event[key] = data.draw(st.sampled_from(WRONG_VALUES), label="value")
        lines[i] = json.dumps(event) if data.draw(st.booleans(), label="as object") else "[1, 2]"
        return ("\n".join(lines) + "\n").encode()
    doc = json.loads(old)
    if data.draw(st.booleans(), label="replace whole document"):
        doc = data.draw(st.sampled_from([None, 3, "x", [], [1, 2], True]), label="document")
    else:
        key = data.draw(st.sampled_from(sorted(doc)), label="key")
        doc[key] = data.draw(st.sampled_from(WRONG_VALUES), label="value")
    return json.dumps(doc).encode()  # Python writes NaN/Infinity: a hand-edited file may hold them


def _tensor_paths(obj, prefix=()) -> list[tuple]:
    if isinstance(obj, torch.Tensor):
        return [prefix]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _tensor_paths(v, (*prefix, k))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in _tensor_paths(v, (*prefix, i))]
    return []


def _set_path(obj, path: tuple, change) -> None:
    if not path:
        return
    *head, last = path
    for k in head:
        obj = obj[k]
    if isinstance(obj, tuple):
        return
    obj[last] = change(obj[last])


def _check_command(base: Path, work: Path, name: str, new: bytes, command: str, marker: Path) -> None:
    root = work / command.replace(" ", "_")
    run = root / "run"
    shutil.copytree(base, run)
    (run / name).write_bytes(new)
    before = _hashes(run)
    argv, may_write = COMMANDS[command][0](run, root), COMMANDS[command][1]
    out, err = io.StringIO(), io.StringIO()
    from contextlib import redirect_stderr, redirect_stdout

    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    what = f"`pfs {' '.join(argv)}` with {name} damaged"
    assert not marker.exists(), f"{what} ran planted code"
    lines = err.getvalue().strip().splitlines()
    assert "Traceback" not in err.getvalue(), f"{what}: {err.getvalue()}"
    if code == 0:
        if "--json" in argv:
            _strict_json(out.getvalue())
        after = _hashes(run)
        changed = {f for f in set(before) | set(after) if before.get(f) != after.get(f)}
        assert changed <= may_write | {name}, f"{what} changed {sorted(changed - may_write - {name})}"
    else:
        assert code == 2 and len(lines) == 1 and lines[0].startswith("pfs: error: "), \
            f"{what}: exit {code}, stderr {err.getvalue()!r}"
        assert _hashes(run) == before, f"{what} failed but changed the run"


def _check_all(base: Path, tmp: Path, example: tuple, marker: Path) -> None:
    name, kind, data = example
    new = _damaged_bytes(name, kind, (base / name).read_bytes(), data, marker)
    n = len(list(tmp.iterdir())) if tmp.exists() else 0
    work = tmp / f"ex{n}"
    for command in COMMANDS:
        _check_command(base, work, name, new, command, marker)
    shutil.rmtree(work)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", FILES)
@settings(max_examples=1, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_each_damaged_run_file_ends_in_one_clear_line_and_changes_nothing_else(finished_run, tmp_path, name,
                                                                               kind, data):
    _check_all(finished_run, tmp_path / "work", (name, kind, data), tmp_path / "planted")


@pytest.mark.slow
@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(example=damage())
def test_many_damaged_run_files_end_in_one_clear_line_and_change_nothing_else(finished_run, tmp_path, example):
    marker = tmp_path / "planted"
    _check_all(finished_run, tmp_path / "work", example, marker)


@pytest.mark.parametrize("value", [None, "high", float("nan")])
def test_resume_reports_a_finished_run_only_from_a_whole_summary(finished_run, tmp_path, value):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "best_test_acc": value}))
    err = io.StringIO()
    from contextlib import redirect_stderr

    with redirect_stderr(err):
        assert main(["resume", str(run), "--quiet"]) == 2
    assert err.getvalue().startswith(f"pfs: error: {run}/summary.json is corrupt (key 'best_test_acc' is ")
    assert err.getvalue().count("\n") == 1
