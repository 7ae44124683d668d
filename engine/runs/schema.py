"""What a run's config.json must hold, checked whenever it is read.

config.json is the user's file as much as ours: hand-edited, copied between machines, cut
short by a full disk. Checking the types of the keys pfs reads turns any of that into one
RunError naming the key, instead of a TypeError deep inside a job after it has started
writing. Only keys that are present are checked (old and test runs hold fewer).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from engine.errors import RunError, shell_path


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def positive_int(v) -> bool:
    return _is_int(v) and v >= 1


def finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def image_size(v) -> bool:
    """[C, H, W] of positive whole numbers."""
    return isinstance(v, list) and len(v) == 3 and all(positive_int(x) for x in v)


def _model_spec(v) -> bool:
    """A sample model's or a foreign model's spec (the latter has no expand, may have no widths)."""
    return (isinstance(v, dict) and isinstance(v.get("name"), str) and positive_int(v.get("num_classes"))
            and positive_int(v.get("in_channels"))
            and ("expand" not in v or (finite_number(v["expand"]) and v["expand"] > 0))
            and isinstance(v.get("widths", {}), dict) and all(positive_int(w) for w in v.get("widths", {}).values())
            and isinstance(v.get("arch", {}), dict))


CONFIG_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "model": (lambda v: isinstance(v, str), "a model name"),
    "dataset": (lambda v: isinstance(v, str), "a data set name"),
    "data_root": (lambda v: v is None or isinstance(v, str), "a folder or null"),
    "expand": (lambda v: finite_number(v) and v > 0, "a positive number"),
    "arch": (lambda v: isinstance(v, dict), "an object"),
    "model_spec": (_model_spec, "the model's spec (name, num_classes, in_channels, expand, widths)"),
    "input_size": (image_size, "[C, H, W]"),
    "num_classes": (positive_int, "a positive whole number"),
    "seed": (_is_int, "a whole number"),
    "learn": (lambda v: isinstance(v, dict), "an object"),
    "train": (lambda v: isinstance(v, dict), "an object"),
    "pipeline": (lambda v: isinstance(v, dict), "an object"),
    "data_options": (lambda v: isinstance(v, dict), "an object"),
    "created": (finite_number, "a time"),
    "branched_from": (lambda v: isinstance(v, str), "a run directory"),
    # engine.learn_distributed.BATCH_NORMS (not imported: the run format needs no torch.distributed)
    "batch_norm": (lambda v: v in ("world-invariant", "native"), '"world-invariant" or "native"'),
}


def config_problem(config: dict) -> str | None:
    """What is wrong with a parsed config.json ('key "seed" is ...'), or None when it is sound."""
    for key, (ok, expected) in CONFIG_KEYS.items():
        if key in config and not ok(config[key]):
            return f"key {key!r} is {config[key]!r:.60}, expected {expected}"
    return None


def structure_problem(structure: dict, config: dict) -> str | None:
    """What makes structure.json unfit for this run: another model's, or widths outside the
    dense ones (each group keeps 1..dense channels, `keep` naming exactly that many); None if fit."""
    model, own = structure.get("model"), config.get("model")
    if isinstance(model, str) and isinstance(own, str) and model != own:
        return f"structure.json is of {model}, the run is {own}"
    widths, dense, keep = (structure.get(k) for k in ("widths", "dense_widths", "keep"))
    if not all(isinstance(x, dict) for x in (widths, dense)):
        return None if widths is None else "structure.json has no widths per group"
    for group, width in widths.items():
        full = dense.get(group)
        if not (positive_int(width) and positive_int(full) and width <= full):
            return f"structure.json keeps {width!r} of {full!r} channels in {group}"
        kept = keep.get(group) if isinstance(keep, dict) else None
        if kept is not None and not (isinstance(kept, list) and len(kept) == width
                                     and all(_is_int(i) and 0 <= i < full for i in kept)):
            return f"structure.json's kept channels of {group} are not {width} of 0..{full - 1}"
    return None


def check_config(config: dict, path: str | Path) -> dict:
    """`config` if sound; else a RunError naming the file and the key."""
    problem = config_problem(config)
    if problem:
        raise RunError(f"{path} is corrupt ({problem}); fix the file or re-create the run")
    return config


# What a finished training's summary.json holds (pfs resume reports it as it is).
TRAIN_SUMMARY_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "test_acc": (finite_number, "a number"), "best_test_acc": (finite_number, "a number"),
    "best_epoch": (_is_int, "a whole number"), "epochs": (positive_int, "a positive whole number"),
    "macs": (_is_int, "a whole number"), "macs_ratio": (finite_number, "a number"),
    "images_per_s": (finite_number, "a number"), "device": (lambda v: isinstance(v, str), "a device name"),
}


def check_train_summary(summary: dict, path: str | Path) -> dict:
    """A finished training's summary if it holds what is reported of it; else a RunError naming the key."""
    for key, (ok, expected) in TRAIN_SUMMARY_KEYS.items():
        if not ok(summary.get(key)):
            raise RunError(f"{path} is corrupt (key {key!r} is {summary.get(key)!r:.60}, expected {expected}); "
                           f"`pfs train {shell_path(Path(path).parent)} --overwrite` trains the structure again")
    return summary
