"""The explorer's jobs, free of widgets: gate learning, replay, retraining, following.

Each function runs in a worker thread (or launches a process) and reports only through
the LearnLog it is given and a `notify()` callback, which the screens turn into a
coalescing message; so these are testable without an app.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import PfsError
from engine.events import Event, iter_events, read_events
from engine.models.spec import is_user_code, model_code_allowed
from engine.runs import RunDir
from pfs_tui.session import LearnLog, Pauser, Session

PAUSED_FILE = "tui_paused.json"  # in a run whose gate learning the presenter has paused here
TRAIN_PID = "tui_train.json"  # written by the explorer into a run it launched `pfs train` on


def gates_to_lists(gates) -> dict[str, list[float]]:
    """Group -> plain floats, from tensors or lists (what GateSnapshot carries)."""
    return {g: [float(x) for x in (v.detach().cpu().reshape(-1).tolist() if hasattr(v, "detach") else v)]
            for g, v in gates.items()}


def run_learning(session: Session, pauser: Pauser, notify: Callable[[], None],
                 is_cancelled: Callable[[], bool], min_interval: float = 0.03) -> tuple[str, str]:
    """Learn gates into a new run directory; returns (status, detail) for the UI.

    Every event lands in the session's log; `notify` is called at most every
    `min_interval` seconds (plus once at the end), so a fast model cannot flood the UI.
    Pausing blocks here, in the learning thread, inside the event callback.
    """
    from engine.jobs import learn_run
    from engine.learn import LearnConfig

    s, log = session.settings, session.log
    lower_thread_priority()
    config = LearnConfig(**s.learn_kwargs(), device=learn_device())
    config.validate()
    out = session.new_run_path()
    session.run_path, session.run_finished = out, False
    last = [0.0]

    def on_event(event: Event) -> None:
        log.add(event)
        now = time.monotonic()
        if now - last[0] >= min_interval:
            last[0] = now
            notify()
        if pauser.paused:
            log.set_status("paused")
            notify()
            run = RunDir(out)
            run.write_json(PAUSED_FILE, {"paused": time.time()})  # followers show the pause too
            try:
                pauser.wait(is_cancelled)
            finally:
                run.file(PAUSED_FILE).unlink(missing_ok=True)
            if not (pauser.stop_requested or is_cancelled()):
                log.set_status("running")
                notify()

    def should_stop() -> bool:
        return pauser.stop_requested or is_cancelled()

    log.set_status("running", f"on {config.device} → {out}")
    notify()
    # The FLOPs target the presenter learns for, so that followers and replays start from it.
    result = learn_run(out, model=s.model, dataset=s.dataset, learn=config, data_root=session.data_root,
                       expand=s.expand, on_event=on_event, should_stop=should_stop,
                       extra_config={"tui": {"budget": s.budget}})
    log.set_gates(gates_to_lists(result.gates), result.selected_step)
    session.run_finished = True
    status = "stopped" if result.stopped else "finished"
    acc = result.heldout_acc
    detail = f"selected step {result.selected_step}" + (f", held-out {acc:.3f}" if acc == acc else "")
    if not result.converged:
        detail += " - no step met r (see the Learn page)"
    log.set_status(status, detail)
    notify()
    return status, detail


def lower_thread_priority(niceness: int | None = None) -> None:
    """Make the calling (worker) thread yield the CPU to the UI thread.

    On Linux a thread has its own nice value, and torch's compute threads started from
    it inherit it, so key presses are served first while learning uses what is left.
    $PFS_TUI_LEARN_NICE overrides the default 10 (0 turns it off; the benchmark compares).
    Best effort: elsewhere it does nothing.
    """
    if niceness is None:
        try:
            niceness = int(os.environ.get("PFS_TUI_LEARN_NICE", "10"))
        except ValueError:
            niceness = 10
    if sys.platform != "linux" or niceness <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (OSError, AttributeError):
        pass


SPEEDS = (1.0, 2.0, 5.0, 10.0, 50.0, 200.0, math.inf)


def replay(events: list[Event], log: LearnLog, pauser: Pauser, speed: Callable[[], float],
           notify: Callable[[], None], is_cancelled: Callable[[], bool], min_interval: float = 0.03,
           start_at: int = 0) -> str:
    """Feed recorded events into `log` at `speed()` times their recorded pace (no compute).

    Gaps are capped at one second of replay time, so an idle stretch in the recording
    does not stall the show; infinite speed replays everything at once. Events before
    step `start_at` are fed at once (a jump to that step), the rest at the pace.
    """
    log.set_status("running")
    prev_time, last_notify = None, 0.0
    for event in events:
        factor = speed()
        jumping = start_at and getattr(event, "step", 0) < start_at
        if prev_time is not None and math.isfinite(factor) and not jumping:
            gap = min(1.0, max(0.0, (event.time - prev_time) / factor))
            if gap > 0:
                time.sleep(gap)  # pacing the show, not synchronisation
        prev_time = event.time
        if pauser.paused:  # checked after the pause between events, so nothing lands while paused
            log.set_status("paused")
            notify()
            pauser.wait(is_cancelled)
            log.set_status("running")
        if is_cancelled() or pauser.stop_requested:
            log.set_status("stopped")
            notify()
            return "stopped"
        log.add(event)
        now = time.monotonic()
        if now - last_notify >= min_interval:
            last_notify = now
            notify()
    if log.status in ("running", "paused"):  # the recording ends before the run did
        log.set_status("recorded", "end of the recording: the run had not finished")
    notify()
    return log.status


def load_replay(run: str | os.PathLike) -> tuple[RunDir, list[Event]]:
    """A recorded run and its gate-learning events (train-stage events left out)."""
    rd = RunDir.open(run)
    if not rd.events_path.is_file():
        from engine.errors import RunError

        raise RunError(f"{rd.path} has no events.jsonl to replay; pick a run that has started")
    events = [e for e in read_events(rd.events_path) if getattr(e, "stage", "learn") != "train"]
    return rd, events


def selected_gates(run_path: Path, log: LearnLog) -> None:
    """Put a finished run's selected gates (gates.pt, at summary's selected_step) in `log`."""
    run = RunDir(run_path)
    gates = run.load("gates.pt")
    summary = run.read_json("summary.json") if run.exists("summary.json") else {}
    log.set_gates(gates_to_lists(gates), int(summary.get("selected_step") or log.gates_step))


# -- retraining as a detached process ------------------------------------------------
def train_command(run_path: Path, epochs: int, device: str = "auto", overwrite: bool = False,
                  subset: int = 0) -> list[str]:
    """The `pfs train` command line for a run (the same module the `pfs` script runs)."""
    cmd = [sys.executable, "-m", "engine", "train", str(run_path), "--epochs", str(epochs), "--device", device,
           *_trust_flag(run_path)]
    if subset:
        cmd += ["--subset", str(subset)]
    return cmd + ["--overwrite"] if overwrite else cmd


def resume_command(run_path: Path) -> list[str]:
    """The `pfs resume` command line: whatever stage the run stopped in continues."""
    return [sys.executable, "-m", "engine", "resume", str(run_path), "--quiet", *_trust_flag(run_path)]


def _trust_flag(run_path: Path) -> list[str]:
    """`--trust-model-code` for a child process whose run names code this explorer may run
    (the user named it, or started the explorer trusting runs): the child inherits the trust."""
    spec = RunDir(run_path).read_json_or_empty("config.json").get("model_spec") or {}
    name = spec.get("name") if isinstance(spec, dict) else None
    try:
        return ["--trust-model-code"] if isinstance(name, str) and is_user_code(name) and model_code_allowed(name) \
            else []
    except PfsError:
        return []


def resume_point(run_path: Path, stage: str) -> str:
    """Where `pfs resume` continues a stage, in words: after its newest checkpoint of that
    stage, or from its first step when it saved none (read from the run's events)."""
    from engine.events import CheckpointSaved, StructureFound

    rd = RunDir(run_path)
    newest = None
    for event in read_events(rd.events_path) if rd.events_path.is_file() else []:
        if isinstance(event, CheckpointSaved) and event.stage == stage:
            newest = event
        elif isinstance(event, StructureFound):
            newest = None  # a new structure: a training before it is not what resumes
    if newest is None:
        return f"{stage} starts again from its first step (it saved no checkpoint)"
    where = f"step {newest.step}" + (f" (epoch {newest.epoch})" if newest.epoch else "")
    return f"{stage} continues after {where}, its last checkpoint"


def launch_resume(run_path: Path) -> int:
    """Start `pfs resume RUN` detached, recorded like a launched `pfs train`; its pid."""
    return launch_train(run_path, 0, command=resume_command(run_path), what="pfs resume")


def launched_what(run_path: Path) -> str:
    """Which command the explorer launched on this run ("pfs train" or "pfs resume")."""
    try:
        what = json.loads((Path(run_path) / TRAIN_PID).read_text()).get("what")
    except (OSError, ValueError, AttributeError):
        return "pfs train"
    return what if what in ("pfs train", "pfs resume") else "pfs train"


def has_train_stage(run_path: Path) -> bool:
    """Whether `pfs train` already ran (or runs) on this run: a new one needs --overwrite."""
    from engine.runs import run_info

    return run_info(run_path).stage == "train"


def train_log_tail(run_path: Path) -> str:
    """The last line `pfs train` wrote to RUN/train.log (its error, when it failed)."""
    try:
        text = (Path(run_path) / "train.log").read_text(errors="replace")
    except OSError:
        return ""
    lines = [line.split("\r")[-1].strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def launch_train(run_path: Path, epochs: int, device: str = "auto", overwrite: bool = False,
                 command: list[str] | None = None, subset: int = 0, what: str = "pfs train",
                 env: dict | None = None) -> int:
    """Start `pfs train RUN` detached (own session, output to RUN/train.log); its pid.

    The process outlives the explorer; the pid is written into the run so a restarted
    explorer can tell whether it is still alive.
    """
    cmd = command or train_command(run_path, epochs, device, overwrite, subset)
    with open(run_path / "train.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env)
    RunDir(run_path).write_json(TRAIN_PID, {"pid": proc.pid, "command": cmd, "started": time.time(), "what": what})
    return proc.pid


def train_launched_at(run_path: Path) -> float | None:
    """When the explorer last launched `pfs train` on this run (None: never)."""
    try:
        return float(json.loads((Path(run_path) / TRAIN_PID).read_text())["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_process_alive(run_path: Path) -> bool | None:
    """Whether the `pfs train` the explorer launched on this run still runs (None: not launched here)."""
    try:
        pid = int(json.loads((Path(run_path) / TRAIN_PID).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        # Reap it if it is our own finished child, so it does not linger as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_training(run_path: Path) -> str:
    """Ask the `pfs train` (or `pfs resume`) the explorer launched on this run to stop after
    its current step, keeping a checkpoint: one SIGINT, as a first Ctrl-C in its terminal
    (a second would abort it, so it is sent once). What happened, in a line."""
    if not train_process_alive(run_path):
        return f"nothing to stop: no pfs train launched from here runs on {Path(run_path).name}"
    record = RunDir(run_path).read_json(TRAIN_PID)
    what = launched_what(run_path)
    if record.get("stop_sent"):
        return f"{what} is already stopping after its current step (pid {record['pid']})"
    try:
        os.kill(int(record["pid"]), signal.SIGINT)
    except ProcessLookupError:
        return f"{what} on {Path(run_path).name} has just ended: nothing to stop"
    RunDir(run_path).write_json(TRAIN_PID, {**record, "stop_sent": time.time()})
    return (f"stopping {what} (pid {record['pid']}) after its current step; its checkpoint is kept "
            "and c resumes it")


LABEL_FILE = "tui_label.json"  # an optional name the explorer gives a run, to tell a room's runs apart


def run_label(run_path: Path) -> str:
    """The run's label ("" without one)."""
    try:
        data = RunDir(run_path).read_json_or_empty(LABEL_FILE)
    except PfsError:  # a corrupt label file is no label; `n` writes a new one
        return ""
    label = data.get("label") if isinstance(data, dict) else None
    return label if isinstance(label, str) else ""


def set_run_label(run_path: Path, label: str) -> None:
    """Label a run (atomically; an empty label removes it)."""
    label = " ".join(label.split())[:40]
    run = RunDir(run_path)
    if label:
        run.write_json(LABEL_FILE, {"label": label})
    else:
        run.file(LABEL_FILE).unlink(missing_ok=True)


def run_settings(run_path: Path) -> dict:
    """What a run was learned with (r, gamma, seed, regulariser) and its label, for the runs table."""
    try:
        config = RunDir(run_path).config
    except PfsError:  # a run being written: its settings show on the next refresh
        config = {}
    learn = config.get("learn") if isinstance(config.get("learn"), dict) else {}
    return {"r": learn.get("sparsity"), "gamma": learn.get("gamma"), "reg": learn.get("reg"),
            "seed": config.get("seed", learn.get("seed")), "label": run_label(run_path)}


def run_busy(run_path: Path) -> str:
    """Why a run must not be touched now ("" when it may): a process is training or resuming it.

    Retraining or exporting into such a run would rewrite its structure.json under the
    running job, and a second `pfs train` would be refused by the engine after it started.
    """
    if train_process_alive(run_path):
        pid = json.loads((Path(run_path) / TRAIN_PID).read_text()).get("pid")
        return f"{Path(run_path).name} is training (pid {pid}); wait for it to finish or stop it first"
    try:
        owned = RunDir(run_path).owner_alive()
    except OSError:
        owned = None
    if owned:
        return f"{Path(run_path).name} is in use by another process; wait for it to finish or stop it first"
    return ""


class EventFollower:
    """Reads the events appended to an events.jsonl since the last call (tail -f).

    Thread-safe: pages read from thread workers, and a cancelled thread worker runs on, so
    two reads can overlap; without the lock both would return the same events.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.offset = 0
        self._partial = b""
        self._lock = threading.Lock()

    def read_new(self) -> list[Event]:
        """Complete new events; a line still being written waits for the next call."""
        with self._lock:
            return self._read_new()

    def _read_new(self) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return list(iter_events(line.decode("utf-8", "replace") for line in lines))


def learn_device() -> str:
    """Where gate learning runs: the GPU when there is one (as `pfs train --device auto`)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_label() -> str:
    """Where `pfs train --device auto` will run: the GPU's name, or cpu."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu (no GPU found)"
