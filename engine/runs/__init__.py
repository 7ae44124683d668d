"""Run directories: the on-disk record of a run, written atomically and read back safely.

rundir (RunDir: config, events, artifacts, checkpoints, owner record; atomic writes and
weights-only tensor loading), listing (what `pfs runs` and the explorer show of each run),
artifacts (a run's gated network, gates and structure read back), speed_record (what
speed.json, written by `pfs bench`, holds: its headline for people).

Layer: above the method (artifacts rebuild gated networks) and below training, jobs and
the CLI, which all write runs through it; it never imports those.
"""
from engine.runs.artifacts import check_structure, load_gated_model, load_gates, load_structure
from engine.runs.listing import RunInfo, list_runs, run_info
from engine.runs.rundir import (
    DEFAULT_ROOT,
    RunDir,
    atomic_write_bytes,
    atomic_write_json,
    load_tensors,
    read_json,
    save_tensors,
)
from engine.runs.speed_record import SPEED_FILE, SpeedSummary, measured_speed, speed_summary

__all__ = ["DEFAULT_ROOT", "SPEED_FILE", "RunDir", "RunInfo", "SpeedSummary", "atomic_write_bytes",
           "atomic_write_json", "check_structure", "list_runs", "load_gated_model", "load_gates", "load_structure",
           "load_tensors", "measured_speed", "read_json", "run_info", "save_tensors", "speed_summary"]
