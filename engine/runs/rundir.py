"""Run directories: config, events, artifacts and checkpoints, written atomically.

Layout of `runs/<name>/`: config.json (enough to re-run), events.jsonl (one event a
line, flushed), gates.pt, init.pt, structure.json, checkpoints/last.pt, summary.json.
Every file is written to a temporary name and renamed, so a killed job never leaves a
half-written file; tensors load with weights_only=True, so a run never unpickles code.
"""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from engine.errors import RunError, shell_path
from engine.events import Event, JsonlSink, read_events, strict_json
from engine.runs.schema import check_config

DEFAULT_ROOT = Path(os.environ.get("PFS_RUNS", "runs"))
OWNER_FILE = "pid.json"  # which process is working on the run, so a dead one is not "running"
STALE_S = 300.0  # without an owner file, a run whose events stopped this long ago is not running


def _file_mode() -> int:
    """The mode a plain open() would give a new file under this process's umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()  # every file of a run gets it (mkstemp alone would give 0600)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename (all or nothing).

    A file-system refusal (read-only, full disk, a file where a folder should be) is a
    RunError naming the path, and leaves the old file as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_error(path: Path, exc: OSError) -> RunError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = {errno.ENOSPC: "free some disk space", errno.EROFS: "pick a writable --out",
           errno.EACCES: "pick a folder you can write to", errno.ENOTDIR: "a file is in the way; pick another --out",
           errno.EEXIST: "a file is in the way; pick another --out"}.get(exc.errno, "check the folder")
    return RunError(f"cannot write {path}: {reason}; {fix}")


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write pretty, strict JSON (NaN and infinities as null) atomically."""
    atomic_write_bytes(path, (strict_json(data, indent=2) + "\n").encode())


def save_tensors(path: str | os.PathLike, obj: Any) -> None:
    """torch.save a structure of tensors / numbers / strings atomically."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_tensors(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True: anything but plain tensors and containers is refused."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist; the run has not reached that stage yet")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles in lines of its own; we refuse them
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # unpickling errors come in many types; all mean "unsafe or corrupt"
        raise RunError(f"refusing to load {path}: it is corrupt or holds more than plain tensors "
                       "(only files written by pfs load); re-create it with the command that made it") from None


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; missing or corrupt files are a RunError that names the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} does not exist; is this a pfs run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is corrupt ({exc.msg if hasattr(exc, 'msg') else exc}); "
                       "re-create the run") from None


class RunDir:
    """One run directory; every write goes through an atomic helper."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | os.PathLike, config: dict, *, overwrite: bool = False) -> RunDir:
        """A new run directory holding `config`; an existing run is refused unless `overwrite`.

        Call it only once every input has been checked: it is the first write of a job.
        `discard()` removes a directory this call made, when the job fails to start.
        """
        run = cls(path)
        run.check_creatable(overwrite=overwrite)
        run.created = not run.path.exists()
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _write_error(run.path, exc) from None
        run.write_json("config.json", config)
        return run

    def check_creatable(self, *, overwrite: bool = False) -> None:
        """Raise a RunError (naming the fix) if a run cannot be made at this path: nothing written."""
        for parent in (self.path, *self.path.parents):
            if parent.exists() and not parent.is_dir():
                raise RunError(f"{parent} is a file, not a folder; pick another --out")
        if (self.path / "config.json").exists():
            if not overwrite:
                raise RunError(f"{self.path} already holds a run; pick another --out, "
                               f"or `pfs resume {shell_path(self.path)}` to continue it")
            self.check_not_in_use()
        elif self.path.is_dir() and any(self.path.iterdir()):
            raise RunError(f"{self.path} is a folder with other files, not a run; pick another --out")

    def discard(self) -> None:
        """Remove this directory if `create` made it (a start that failed leaves nothing)."""
        if getattr(self, "created", False):
            shutil.rmtree(self.path, ignore_errors=True)

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """An existing run directory; a folder without config.json is a RunError."""
        run = cls(path)
        if run.path.is_file():
            raise RunError(f"{run.path} is a file, not a run directory; pass the run's folder (list runs with "
                           "`pfs runs`)")
        if not run.path.is_dir():
            raise RunError(f"run directory {run.path} does not exist; list runs with `pfs runs`")
        if not (run.path / "config.json").is_file():
            raise RunError(f"{run.path} is not a pfs run (no config.json); point at a folder made "
                           "by `pfs learn/prune/run --out`")
        _ = run.config  # parse now: a corrupt config is reported here, not mid-job
        return run

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        return check_config(self.read_object("config.json"), self.path / "config.json")

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self, name: str) -> bool:
        return (self.path / name).is_file()

    def write_json(self, name: str, data: Any) -> None:
        atomic_write_json(self.path / name, data)

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name)

    def read_object(self, name: str) -> dict:
        """A JSON file of the run that must hold an object (config, summary); else a RunError."""
        data = self.read_json(name)
        if not isinstance(data, dict):
            raise RunError(f"{self.path / name} is corrupt (a JSON {type(data).__name__}, not an object); "
                           "re-create the run")
        return data

    def read_json_or_empty(self, name: str) -> dict:
        """A JSON object file of the run, or {} when the run has not written it yet."""
        return self.read_object(name) if self.exists(name) else {}

    def save(self, name: str, obj: Any) -> None:
        save_tensors(self.path / name, obj)

    def load(self, name: str, map_location: str | torch.device = "cpu") -> Any:
        return load_tensors(self.path / name, map_location)

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    def event_sink(self) -> JsonlSink:
        """A sink appending to events.jsonl (close it when the job ends)."""
        return JsonlSink(self.events_path)

    def events(self) -> list[Event]:
        return read_events(self.events_path) if self.events_path.is_file() else []

    def branch(self, dest: str | os.PathLike, *, overwrite: bool = False) -> RunDir:
        """A new run holding this one's learned gates and structure, without its training.

        So several trainings of one structure (scratch, ticket, Scratch-B, ...) can sit side
        by side: `pfs train RUN --out RUN-budget --budget`.
        """
        config = {k: v for k, v in self.config.items() if k not in ("train", "pipeline")}
        new = RunDir.create(dest, {**config, "branched_from": str(self.path)}, overwrite=overwrite)
        for name in ("init.pt", "gates.pt", "structure.json"):
            if self.exists(name):
                atomic_write_bytes(new.file(name), self.file(name).read_bytes())
        if self.exists("events.jsonl"):  # the learning's and search's events, never the parent's training
            lines = self.file("events.jsonl").read_bytes().splitlines(keepends=True)
            atomic_write_bytes(new.file("events.jsonl"), b"".join(x for x in lines if not _is_training(x)))
        summary = self.read_json_or_empty("summary.json")
        learn = summary.get("learn") if summary.get("stage") == "train" else summary
        for stale in ("summary.json", "checkpoints/last.pt"):
            new.file(stale).unlink(missing_ok=True)
        if learn:
            new.write_json("summary.json", learn)
        return new

    @contextmanager
    def owned(self, stage: str) -> Iterator[None]:
        """Record this process as the run's only owner while the block runs.

        The owner file is created exclusively (O_EXCL), so of two processes starting on one
        run, one gets it and the other is refused with the owner's pid; a file left by a
        dead process is taken over. `pfs runs` reads it to tell running from killed.
        """
        owner = _read_owner(self.file(OWNER_FILE))
        if owner.get("pid") == os.getpid():
            yield  # already ours (a pipeline owning all its stages): leave the file to the outer block
            return
        me = {"pid": os.getpid(), "host": socket.gethostname(), "stage": stage,
              "started": _process_start(os.getpid()), "time": time.time()}
        self._claim(me)
        try:
            yield
        finally:
            if self.exists(OWNER_FILE) and _read_owner(self.file(OWNER_FILE)).get("pid") == me["pid"]:
                self.file(OWNER_FILE).unlink(missing_ok=True)

    def _claim(self, me: dict) -> None:
        path = self.file(OWNER_FILE)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            except FileExistsError:
                self.check_not_in_use()
                path.unlink(missing_ok=True)  # left by a process that is gone
                continue
            except OSError as exc:
                raise _write_error(path, exc) from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            return
        self.check_not_in_use()

    def check_not_in_use(self) -> None:
        """Raise a RunError naming the owner's pid while another live process works on the run."""
        if self.owner_alive():
            owner = _read_owner(self.file(OWNER_FILE))
            raise RunError(f"{self.path} is in use by process {owner.get('pid')} ({owner.get('stage')}); "
                           f"wait for it to finish or stop it (kill {owner.get('pid')}) first")

    def owner_alive(self) -> bool | None:
        """True/False when an owner file says whether its process still lives; None without one."""
        owner = _read_owner(self.file(OWNER_FILE))
        if not owner or owner.get("host") != socket.gethostname():
            return None  # no owner, or one on another machine: cannot tell from here
        pid = owner.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:  # os.kill takes a C int
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        if _process_state(pid) == "Z":
            return False  # killed, not yet reaped by its parent
        started = _process_start(pid)
        return started is None or owner.get("started") in (None, started)  # pid reuse check


def _read_owner(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (Linux; empty elsewhere)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_state(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[0] if fields else None


def _process_start(pid: int) -> int | None:
    """The kernel's start time of `pid` (Linux), to tell a reused pid from the owner."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _is_training(line: bytes) -> bool:
    """True for an events.jsonl line of a training stage (a torn line counts as training: dropped)."""
    try:
        return json.loads(line).get("stage") == "train"
    except (ValueError, AttributeError):
        return True
