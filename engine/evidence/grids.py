"""The three grids of the paper's evidence, each filling an experiment directory cell by cell.

- baselines: every arm (PFS and the five baselines) x seeds, each structure trained with
  one schedule: accuracy, MACs, params and the wall time of finding the structure.
- correlation: per seed one pre-training per arm (slimming, pretrained-pfs), structures
  taken after each listed epoch count (0 = PFS at random init): how alike across seeds.
- ticket: one run's structure trained from a fresh init, its ticket init and inherited
  pre-trained weights, per seed.
Cells run seed by seed, so a grid stopped early still has every arm for the first seeds.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from engine.analysis import keep_ratios
from engine.data import load_dataset
from engine.errors import PfsError
from engine.evidence.baselines import KINDS, BaselineSpec, gated_network, make_baseline
from engine.evidence.experiments import EXPERIMENTS, Experiment, mean_sd, train_cell
from engine.evidence.pretrain import pretrain
from engine.learn import LearnConfig
from engine.learn_schedule import resolve_schedule
from engine.runs import RunDir, load_structure, load_tensors
from engine.search import uniform_structure
from engine.training import CHECKPOINT, TrainOptions

COMMON = {"subset": None, "test_subset": None, "train_batch_size": None}
DEFAULTS = {
    "baselines": {"model": None, "dataset": "fashion-mnist", "data_root": None, "flops": None, "seeds": [0, 1, 2],
                  "train_epochs": None, "pretrain_epochs": 10, "slim_lambda": 1e-4, "arms": list(KINDS),
                  "learn": {}, "expand": 1.0, "min_channels": 1, "arch": None, **COMMON},
    "correlation": {"model": None, "dataset": "fashion-mnist", "data_root": None, "flops": 0.3,
                    "seeds": [0, 1, 2, 3, 4], "pretrain_epochs": [0, 1, 5, 20], "slim_lambda": 1e-4,
                    "arms": ["slimming", "pretrained-pfs"], "learn": {}, "expand": 1.0, "min_channels": 1,
                    "arch": None, **COMMON},
    "ticket": {"run": None, "seeds": [0, 1, 2], "train_epochs": None, "pretrained": None, "pretrain_epochs": 10,
               "inits": ["scratch", "ticket", "inherit"], **COMMON},
}
LEARN_KEYS = {f.name for f in fields(LearnConfig)} - {"seed", "reg", "device"}


def normalise(kind: str, settings: dict) -> dict:
    """The settings with defaults filled in and checked (before anything is written)."""
    defaults = DEFAULTS[kind]
    unknown = set(settings) - set(defaults)
    if unknown:
        raise PfsError(f"unknown setting(s) for a {kind} experiment: {', '.join(sorted(unknown))}")
    out = {**defaults, **{k: v for k, v in settings.items() if v is not None}}
    missing = [k for k, v in out.items() if v is None and defaults[k] is None and k not in COMMON
               and k not in ("data_root", "pretrained", "arch")]
    if missing:
        raise PfsError(f"a {kind} experiment needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
    if not out["seeds"] or len(set(out["seeds"])) != len(out["seeds"]):
        raise PfsError(f"--seeds must list distinct seeds, got {out['seeds']}")
    if "learn" in out:
        bad = set(out["learn"]) - LEARN_KEYS
        if bad:
            raise PfsError(f"unknown learning setting(s): {', '.join(sorted(bad))}")
        config = LearnConfig(**resolve_schedule(out.get("dataset", "fashion-mnist"), out["learn"]))
        config.validate()
        out["learn"] = {k: v for k, v in asdict(config).items() if k in LEARN_KEYS}  # recorded whole
    if kind == "baselines":
        bad = [a for a in out["arms"] if a not in KINDS]
        if bad:
            raise PfsError(f"unknown arm(s) {', '.join(bad)}; choose from: {', '.join(KINDS)}")
    if kind == "correlation" and (sorted(set(out["pretrain_epochs"])) != list(out["pretrain_epochs"])
                                  or min(out["pretrain_epochs"]) < 0):
        raise PfsError(f"--pretrain-epochs must be increasing epoch counts >= 0, got {out['pretrain_epochs']}")
    if kind == "ticket":
        out["run"] = str(Path(out["run"]).resolve())
        if out["pretrained"]:
            out["pretrained"] = str(Path(out["pretrained"]).resolve())
            if not Path(out["pretrained"]).is_file():
                raise PfsError(f"--pretrained {out['pretrained']} is not a file; pass a trained dense model's "
                               "weights, or leave --pretrained out to pre-train here")
    return out


def _spec(s: dict, kind: str, seed: int, pretrain_epochs: int) -> BaselineSpec:
    return BaselineSpec(kind=kind, model=s["model"], dataset=s["dataset"], flops=s["flops"], seed=seed,
                        pretrain_epochs=pretrain_epochs, slim_lambda=s["slim_lambda"],
                        learn=LearnConfig(**s["learn"]), subset=s["subset"], test_subset=s["test_subset"],
                        batch_size=s["train_batch_size"], data_root=s["data_root"], min_channels=s["min_channels"],
                        expand=s["expand"], arch=grid_arch(s))


V1_ARCH = {"shortcut": "A"}  # what CIFAR ResNets were built with when version-1 grids were made


def grid_arch(s: dict) -> dict:
    """The model options of a grid's cells: as recorded, or (a version-1 grid, which recorded
    none) shortcut A for a CIFAR ResNet, the default then, so that its cells stay alike."""
    if "arch" in s:
        return dict(s["arch"] or {})
    return dict(V1_ARCH) if _takes_shortcut(s["model"]) else {}


def _takes_shortcut(model: str) -> bool:
    from sample_models import model_entry
    from sample_models.resnet_cifar import CifarResNet

    try:
        return model_entry(model).cls is CifarResNet
    except ValueError:  # not a sample model (a file, torchvision:, timm:): no shortcut option
        return False


def _train_options(s: dict, seed: int, **extra) -> TrainOptions:
    return TrainOptions(epochs=s["train_epochs"], subset=s["subset"], test_subset=s["test_subset"],
                        batch_size=s["train_batch_size"], seed=seed, **extra)


LEARN_FACTS = ("steps", "selected_step", "heldout_acc", "open_frac", "converged")


def _learn_facts(found: dict, path: Path) -> dict:
    """What gate learning gave an arm that learns (pfs report says when no step met r, or the
    gated network's held-out accuracy sat near chance): {"learn": {...}}, or {} for the others."""
    learned = found.get("learn")
    if not learned:
        return {}
    return {"learn": {**{k: learned.get(k) for k in LEARN_FACTS},
                      "classes": RunDir.open(path).config.get("num_classes")}}


def _structure_facts(path: Path) -> dict:
    st = load_structure(path)
    return {"keep_ratios": keep_ratios(st).round(6).tolist(), "groups": list(st.dense_widths),
            "macs": st.macs, "params": st.params, "macs_ratio": st.macs_ratio}


# -- baselines ----------------------------------------------------------------------------
def baselines(exp: Experiment, *, data=None, on_event=None, should_stop=None, on_cell=None) -> None:
    s = exp.settings
    ds = data if data is not None else load_dataset(s["dataset"], s["data_root"])
    for seed, arm, name, path in exp.pending(s["seeds"], s["arms"]):
        found = make_baseline(path, _spec(s, arm, seed, s["pretrain_epochs"]), data=ds, on_event=on_event,
                              should_stop=should_stop)
        summary = train_cell(path, _train_options(s, seed), data=ds, on_event=on_event, should_stop=should_stop)
        result = {"arm": arm, "seed": seed, "test_acc": summary["test_acc"],
                  "best_test_acc": summary["best_test_acc"], "finding_seconds": found["finding_seconds"],
                  "timing": found["timing"], "train_seconds": sum(h["seconds"] for h in summary["history"]),
                  **_learn_facts(found, path), **_structure_facts(path)}
        exp.record(name, result, _aggregate_baselines, on_cell)


def _aggregate_baselines(cells: dict) -> dict:
    arms: dict[str, dict] = {}
    for c in cells.values():
        arms.setdefault(c["arm"], []).append(c)
    out = {}
    for arm, cs in arms.items():
        out[arm] = {"test_acc": mean_sd([c["test_acc"] for c in cs]),
                    "best_test_acc": mean_sd([c["best_test_acc"] for c in cs]),
                    "finding_seconds": mean_sd([c["finding_seconds"] for c in cs]),
                    "macs": mean_sd([c["macs"] for c in cs]), "params": mean_sd([c["params"] for c in cs]),
                    "macs_ratio": mean_sd([c["macs_ratio"] for c in cs]),
                    "keep_ratios": np.mean([c["keep_ratios"] for c in cs], axis=0).round(6).tolist(),
                    "seeds": sorted(c["seed"] for c in cs)}
    return {"arms": out, "groups": next(iter(cells.values()))["groups"]}


# -- correlation --------------------------------------------------------------------------
def correlation(exp: Experiment, *, data=None, on_event=None, should_stop=None, on_cell=None) -> None:
    s = exp.settings
    ds = data if data is not None else load_dataset(s["dataset"], s["data_root"])
    epochs = s["pretrain_epochs"]
    for seed in s["seeds"]:
        for arm in s["arms"]:
            todo = [e for e in epochs if f"{arm}-e{e}-s{seed}" not in exp.results()["cells"]]
            if arm == "slimming":
                todo = [e for e in todo if e > 0]  # at init every BN gamma is 1: nothing to rank
            trained = [e for e in todo if e > 0]
            source = exp.pretraining(f"{arm}-s{seed}")
            if trained:
                spec = _spec(s, arm, seed, max(epochs))
                config = _pretrain_config(s, seed, ds)
                pretrain(source, config, spec.pretrain_options(), snapshots=[e for e in epochs if e > 0], data=ds,
                         on_event=on_event, should_stop=should_stop)
            for e in todo:
                name = f"{arm}-e{e}-s{seed}"
                kind = arm if e > 0 else "pfs"
                found = make_baseline(exp.cell(name), _spec(s, kind, seed, max(e, 1)), data=ds,
                                      weights_from=(source, e) if e > 0 else None,
                                      on_event=on_event, should_stop=should_stop)
                result = {"arm": arm, "epoch": e, "seed": seed, "finding_seconds": found["finding_seconds"],
                          "timing": found["timing"], **_structure_facts(exp.cell(name))}
                exp.record(name, result, _aggregate_correlation, on_cell)


def _pretrain_config(s: dict, seed: int, ds) -> dict:
    from engine.evidence.baselines import gated_network, run_config

    net = gated_network(s["model"], seed, ds, s["expand"], grid_arch(s))
    return run_config(net, ds, model=s["model"], dataset=s["dataset"], seed=seed, data_root=s["data_root"])


def correlation_matrix(vectors: list[list[float]]) -> list[list[float | None]]:
    """Pearson correlation of keep-ratio vectors (None where one is constant: a uniform structure)."""
    x = np.asarray(vectors, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.corrcoef(x) if len(x) > 1 else np.ones((1, 1))
    return [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in np.atleast_2d(m)]


def _aggregate_correlation(cells: dict) -> dict:
    groups: dict[tuple[str, int], list[dict]] = {}
    for c in cells.values():
        groups.setdefault((c["arm"], c["epoch"]), []).append(c)
    out: dict[str, dict] = {}
    for (arm, e), cs in sorted(groups.items()):
        cs = sorted(cs, key=lambda c: c["seed"])
        m = correlation_matrix([c["keep_ratios"] for c in cs])
        off = [m[i][j] for i in range(len(cs)) for j in range(len(cs)) if i != j and m[i][j] is not None]
        out.setdefault(arm, {})[str(e)] = {"seeds": [c["seed"] for c in cs], "matrix": m,
                                           "mean": float(np.mean(off)) if off else None,
                                           "finding_seconds": mean_sd([c["finding_seconds"] for c in cs])}
    return {"correlation": out, "groups": next(iter(cells.values()))["groups"]}


# -- ticket -------------------------------------------------------------------------------
def ticket(exp: Experiment, *, data=None, on_event=None, should_stop=None, on_cell=None) -> None:
    s = exp.settings
    source = RunDir.open(s["run"])
    if not source.exists("structure.json") or not source.exists("init.pt"):
        raise PfsError(f"{source.path} needs init.pt and structure.json (a run made by `pfs learn` + "
                       f"`pfs search`, or `pfs baseline pfs`)")
    config = source.config
    ds = data if data is not None else load_dataset(config["dataset"], config.get("data_root"))
    checkpoint = s["pretrained"]
    if "inherit" in s["inits"] and not checkpoint:
        pre = exp.pretraining("dense")
        pretrain(pre, config, TrainOptions(epochs=s["pretrain_epochs"], subset=s["subset"],
                                           test_subset=s["test_subset"], batch_size=s["train_batch_size"],
                                           seed=int(config.get("seed", 0))),
                 data=ds, on_event=on_event, should_stop=should_stop)
        checkpoint = str((pre / CHECKPOINT).resolve())
    if checkpoint:
        _check_fits(source, checkpoint)  # before any training: a wrong model costs nothing
    for seed, init, name, path in exp.pending(s["seeds"], s["inits"]):
        if not (path / "config.json").is_file():
            source.branch(path)
        extra = {"init": init, **({"from_checkpoint": checkpoint} if init == "inherit" else {})}
        summary = train_cell(path, _train_options(s, seed, **extra), data=ds, on_event=on_event,
                             should_stop=should_stop)
        result = {"init": init, "seed": seed, "test_acc": summary["test_acc"],
                  "best_test_acc": summary["best_test_acc"], "macs": summary["macs"], "params": summary["params"]}
        exp.record(name, result, _aggregate_ticket, on_cell)


def _check_fits(run: RunDir, checkpoint: str) -> None:
    from engine.training.inits import dense_model

    state = load_tensors(checkpoint)
    state = state.get("model", state) if isinstance(state, dict) else state
    try:
        dense_model(run, load_structure(run.path)).load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError):
        raise PfsError(f"--pretrained {checkpoint} does not fit the dense {run.config.get('model')} of "
                       f"{run.path}; pass a checkpoint of the same model, or leave it out to pre-train "
                       "here") from None


def _aggregate_ticket(cells: dict) -> dict:
    inits: dict[str, list[dict]] = {}
    for c in cells.values():
        inits.setdefault(c["init"], []).append(c)
    return {"inits": {k: {"test_acc": mean_sd([c["test_acc"] for c in cs]),
                          "best_test_acc": mean_sd([c["best_test_acc"] for c in cs]),
                          "macs": cs[0]["macs"], "params": cs[0]["params"]} for k, cs in inits.items()}}


def grid_settings(kind: str, settings: dict, out) -> dict:
    """The settings an experiment at `out` records: `normalise`d, and (but for ticket) with
    the cells' model options recorded whole (the shortcut a CIFAR ResNet gets by default
    included), or, for a version-1 grid, left out as it recorded them."""
    s = normalise(kind, settings)
    return s if kind == "ticket" else _record_arch(s, out)


def _record_arch(s: dict, out) -> dict:
    given = dict(s.get("arch") or {})
    config = Path(out) / "config.json"
    if config.is_file() and Experiment.open(out).version == 1:
        if given:
            raise PfsError(f"{out} was made before grids recorded model options (its CIFAR ResNets use "
                           "shortcut A); leave --shortcut out to continue it, or pick another --out")
        return {k: v for k, v in s.items() if k != "arch"}
    if _takes_shortcut(s["model"]):
        from sample_models.resnet_cifar import DEFAULT_SHORTCUT

        given.setdefault("shortcut", DEFAULT_SHORTCUT)
    return {**s, "arch": given}


def _check_budget(s: dict, ds) -> None:
    """BudgetError (naming the fix) when even the smallest structure exceeds the grid's budget."""
    net = gated_network(s["model"], s["seeds"][0], ds, s["expand"], grid_arch(s))
    uniform_structure(net, s["flops"], ds.input_size, min_channels=s["min_channels"])


def run_experiment(kind: str, out: str | Path, settings: dict, *, data=None, on_event=None,
                   should_stop=None, on_cell: Callable[[str, dict], None] | None = None,
                   on_start: Callable[[str, int, int], None] | None = None) -> dict:
    """Run (or resume) experiment `kind` with `settings` into `out`; returns results.json.
    `on_start(text, number, total)` hears of each cell as it starts ("cell 3 of 12: pfs seed 1")."""
    if kind not in EXPERIMENTS:
        raise PfsError(f"unknown experiment {kind!r}; choose one of: {', '.join(EXPERIMENTS)}")
    given_learn = {k: v for k, v in (settings.get("learn") or {}).items() if v is not None}
    settings = grid_settings(kind, settings, out)
    if kind != "ticket":  # everything checked before the experiment directory is written
        data = data if data is not None else load_dataset(settings["dataset"], settings["data_root"])
        _check_budget(settings, data)
    exp = Experiment.open_or_create(out, kind, settings, given_learn)
    exp.on_start = on_start
    _GRIDS[kind](exp, data=data, on_event=on_event, should_stop=should_stop, on_cell=on_cell)
    return exp.results()


_GRIDS = {"baselines": baselines, "correlation": correlation, "ticket": ticket}

__all__ = ["baselines", "correlation", "correlation_matrix", "grid_settings", "normalise", "run_experiment",
           "ticket"]
