"""The race: a run's learned structure against another one at the same MACs, trained alike.

The paper's claim, made checkable: does the structure the gates found retrain better than
a uniform (or random, or another run's) structure of the same cost? A race is two
ordinary training runs (DESIGN: "a race is two training jobs and a view"). `prepare_race`
branches RUN into RACE/learned and RACE/<other>, each holding its structure.json, and
writes RACE/race.json; each arm is then a plain `pfs train ARM` with the same options and
the same seed, so both see the same images in the same order. `pfs race` trains them one
after the other; the explorer starts them as two detached `pfs train` processes. Either
way the arms are run directories: `pfs runs` lists them, `pfs resume` continues them.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from engine.analysis import random_structure
from engine.errors import PfsError, RunError, shell_path
from engine.runs import RunDir, check_structure, load_gated_model, load_structure, read_json
from engine.search import Structure, uniform_structure
from engine.training import CHECKPOINT, TrainOptions, train_run
from engine.training.recipes import DEMO_RACE as DEMO

RACE_FILE = "race.json"
VS_KINDS = ("uniform", "random")  # or the path of another run with a structure.json
LEARNED = "learned"


@dataclass(frozen=True)
class Race:
    """A prepared race: where it lives, what it compares, how both arms are trained."""

    path: Path
    run: Path
    vs: str
    options: dict  # TrainOptions.to_json(), the same for both arms (seed included)

    @property
    def arms(self) -> tuple[str, str]:
        return (LEARNED, self.other)

    @property
    def other(self) -> str:
        """The other arm's folder name: uniform, random, or vs-<run name>."""
        return self.vs if self.vs in VS_KINDS else f"vs-{Path(self.vs).name}"

    def arm(self, name: str) -> Path:
        return self.path / name

    def to_json(self) -> dict:
        # The run relative to the race: a race copied with its run (the bundled demo) still finds it.
        run = os.path.relpath(self.run.resolve(), self.path.resolve())
        return {"run": run, "vs": self.vs, "arms": list(self.arms), "options": self.options}

    @classmethod
    def load(cls, path: str | Path) -> Race:
        """The race recorded in RACE/race.json (a RunError when it is missing or damaged)."""
        path = Path(path)
        data = read_json(path / RACE_FILE)
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("run", "vs")) \
                or not isinstance(data.get("options"), dict):
            raise RunError(f"{path / RACE_FILE} is not a race record; start the race again with `pfs race RUN`")
        return cls(path, Path(os.path.normpath(path.resolve() / data["run"])), data["vs"], data["options"])


def default_race_dir(run_path: str | Path) -> Path:
    """Where `pfs race RUN` writes unless told: RUN/race."""
    return Path(run_path) / "race"


def prepare_race(run_path: str | Path, vs: str = "uniform", *, options: TrainOptions | None = None,
                 out: str | Path | None = None, overwrite: bool = False) -> Race:
    """Make (or find again) the race folder with both arms ready to train; returns the Race.

    Everything is checked before the first write. The same race asked again returns the
    existing one (so an interrupted race continues); another race in the folder is refused.
    `overwrite` replaces whatever race is there, once no arm of it is being trained.
    """
    run = RunDir.open(run_path)
    if not run.exists("structure.json"):
        raise PfsError(f"{run.path} has no structure to race yet; run `pfs search {shell_path(run.path)} "
                       "--flops F` first")
    learned = load_structure(run.path)
    check_structure(learned, run.config, run.file("structure.json"))
    options = replace(options or TrainOptions(), structure=None)
    options.validate()
    seed = options.seed if options.seed is not None else int(run.config.get("seed", 0))
    options = replace(options, seed=seed)  # one seed, both arms: same init draw, same data order
    other = _other_structure(run, learned, vs, seed)
    race = Race(Path(out) if out is not None else default_race_dir(run.path), run.path, vs, options.to_json())
    if (race.path / RACE_FILE).is_file():
        same = Race.load(race.path).to_json() == race.to_json()
        if same and not overwrite:
            return race  # asked again: the arms continue where they stopped
        if not overwrite:
            raise PfsError(f"{race.path} holds another race; add --overwrite to replace it, or --out DIR")
        for name in Race.load(race.path).arms:
            if (race.path / name / "config.json").is_file():
                RunDir(race.path / name).check_not_in_use()
        shutil.rmtree(race.path)
    elif race.path.exists() and (not race.path.is_dir() or any(race.path.iterdir())):
        raise PfsError(f"{race.path} exists and is not a race; pick another --out")
    for name, structure in ((LEARNED, learned), (race.other, other)):
        arm = run.branch(race.arm(name), overwrite=True)
        arm.write_json("structure.json", {**structure.to_json(), "dataset": run.config.get("dataset")})
        arm.write_json("config.json", {**arm.config, "race": {"arm": name, "vs": vs}})
    RunDir(race.path).write_json(RACE_FILE, race.to_json())  # last: a race.json means both arms exist
    return race


def _other_structure(run: RunDir, learned: Structure, vs: str, seed: int) -> Structure:
    """The structure the learned one races: uniform or random at its budget, or another run's."""
    if vs in VS_KINDS:
        net = load_gated_model(run.path, gates=False)
        size = run.config.get("input_size")
        if vs == "uniform":
            return uniform_structure(net, learned.budget, size, min_channels=learned.min_channels)
        return random_structure(net, learned.budget, size, seed=seed)
    other = Path(vs)
    if not (other / "structure.json").is_file():
        raise PfsError(f"--vs {vs} is neither uniform, random nor a run with a structure.json; "
                       "give one of those")
    structure = load_structure(other)
    try:
        check_structure(structure, run.config, other / "structure.json")
    except PfsError as exc:
        raise PfsError(f"--vs {vs} does not fit {run.path.name}'s network ({exc}); race runs of the same "
                       "model and data set") from None
    return structure


def train_arm(race: Race, name: str, *, on_event: Callable | None = None,
              should_stop: Callable[[], bool] | None = None, data=None) -> dict:
    """Train one arm of the race; its summary.json."""
    return train_or_continue(race.arm(name), race.options, on_event=on_event, should_stop=should_stop, data=data)


def train_or_continue(path: str | Path, options: dict, *, on_event: Callable | None = None,
                      should_stop: Callable[[], bool] | None = None, data=None) -> dict:
    """Train a prepared run with `options` (TrainOptions as JSON), continue it from its
    checkpoint, or return its summary when it is finished: a repeated race redoes nothing."""
    run = RunDir.open(path)
    summary = run.read_json_or_empty("summary.json")
    if summary.get("stage") == "train" and summary.get("status") == "finished":
        return summary
    if "train" in run.config and run.exists(CHECKPOINT):
        return train_run(run.path, on_event=on_event, should_stop=should_stop, resume=True, data=data)
    return train_run(run.path, TrainOptions.from_json(options), on_event=on_event, should_stop=should_stop,
                     data=data, overwrite=True)


__all__ = ["DEMO", "LEARNED", "RACE_FILE", "VS_KINDS", "Race", "default_race_dir", "prepare_race", "train_arm",
           "train_or_continue"]
