"""Same-budget baselines as ordinary run directories: the paper's comparison arms.

Every arm ends the same way as `pfs learn` + `pfs search`: the run holds config.json,
init.pt (the network the gates belong to), gates.pt (one value per channel), events.jsonl
and structure.json from the same global-threshold search at the same budget; only the
gate values differ. So `pfs runs` lists a baseline and `pfs train RUN` trains it.

- pfs: gates learned on the frozen random network (the method itself);
- uniform: every gate 1, so the search keeps the same fraction of every layer;
- random: uniformly random gate values (seeded);
- slimming: |BN gamma| of the gated groups after training the dense network with an L1
  penalty on BN scales (Liu et al. 2017);
- pretrained-pfs: gates learned exactly as pfs does, on pre-trained weights (init.pt then
  holds those weights, so the structure's "ticket" init is the pre-trained network);
- l1-gates: gates learned with the plain L1 regulariser (the paper's ablation).

Pre-training runs in RUN/pretrain, itself a run directory that `engine.train` resumes.
Calling `make_baseline` again on the same directory continues a killed job where it
stopped and returns at once when the baseline is complete.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from engine.data import load_dataset
from engine.errors import PfsError, StopRequested
from engine.events import RunFinished, RunStarted
from engine.evidence.arms import BASELINES, KINDS, LEARNED, NEEDS_PRETRAIN
from engine.evidence.pretrain import pretrain, pretrained_weights, seconds_until
from engine.jobs import resume_learn, search_run
from engine.learn import LearnConfig
from engine.learn_distributed import WORLD_INVARIANT
from engine.models.spec import allow_model_code
from engine.runs import RunDir
from engine.search import uniform_structure
from engine.training import TrainOptions

TIMING = "timing.json"  # seconds per structure-finding phase, kept across resumes


@dataclass(frozen=True)
class BaselineSpec:
    """What one baseline run is asked for (stored in config.json as "baseline")."""

    kind: str
    model: str
    dataset: str
    flops: float
    seed: int = 0
    pretrain_epochs: int = 10
    slim_lambda: float = 1e-4
    learn: LearnConfig = field(default_factory=LearnConfig)
    subset: int | None = None  # training images for pre-training (gate learning sees all)
    test_subset: int | None = None
    batch_size: int | None = None  # pre-training batch (default: the recipe's)
    data_root: str | None = None
    min_channels: int = 1
    expand: float = 1.0  # width of the dense network the gates sit in (tests use thin ones)
    arch: dict = field(default_factory=dict)  # model options, e.g. {"shortcut": "A"} (default: the model's)

    def validate(self) -> None:
        """Raise a PfsError naming the flag for a setting that cannot work."""
        if self.kind not in KINDS:
            raise PfsError(f"unknown baseline {self.kind!r}; choose one of: {', '.join(KINDS)}")
        if isinstance(self.flops, bool) or not isinstance(self.flops, (int, float)) or not 0 < self.flops <= 1:
            raise PfsError(f"--flops must be a fraction of the dense model's MACs in (0, 1], got {self.flops}")
        if self.kind in NEEDS_PRETRAIN and self.pretrain_epochs < 1:
            raise PfsError(f"{self.kind} needs a pre-training: --pretrain-epochs must be >= 1, "
                           f"got {self.pretrain_epochs}")
        if not self.slim_lambda >= 0:
            raise PfsError(f"--slim-lambda must be >= 0, got {self.slim_lambda}")
        self.learn_config().validate()

    def learn_config(self) -> LearnConfig:
        """The gate-learning settings of this arm: the run's seed, and L1 for l1-gates."""
        return replace(self.learn, seed=self.seed, reg="l1" if self.kind == "l1-gates" else self.learn.reg)

    def pretrain_options(self) -> TrainOptions:
        return TrainOptions(epochs=self.pretrain_epochs, subset=self.subset, test_subset=self.test_subset,
                            batch_size=self.batch_size, seed=self.seed,
                            slim_lambda=self.slim_lambda if self.kind == "slimming" else 0.0)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> BaselineSpec:
        return cls(**{**data, "learn": LearnConfig(**data["learn"])})


def gated_network(model: str, seed: int, ds, expand: float = 1.0, arch: dict | None = None):
    """The gated dense network a run of `seed` starts from (as `pfs learn` builds it)."""
    from engine.gating import build_model

    torch.manual_seed(seed)
    return build_model(model, in_channels=ds.input_size[0], num_classes=ds.num_classes, expand=expand,
                       input_size=ds.input_size, **(arch or {}))


def run_config(net, ds, *, model: str, dataset: str, seed: int, data_root: str | None) -> dict:
    """config.json of a gated run (the keys `pfs learn` writes, which the readers rely on)."""
    return {"model": model, "dataset": dataset, "data_root": data_root, "expand": net.expand, "arch": {},
            "model_spec": net.spec, "input_size": list(ds.input_size), "num_classes": ds.num_classes,
            "seed": seed, "created": time.time()}


def make_baseline(out: str | Path, spec: BaselineSpec, *, data=None, weights_from: tuple[Path, int] | None = None,
                  on_event: Callable | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Make (or finish) the baseline run `out`; returns its summary.json.

    `weights_from` = (pre-training run, epoch) takes the pre-trained weights from an
    existing pre-training instead of running one (the correlation experiment shares one
    pre-training per seed across epoch counts); its time counts as the finding time.
    """
    spec.validate()
    # The caller names the model: its code is theirs (needed here, not only where gated_network
    # builds it, because a reopened cell rebuilds the network from its run directory).
    allow_model_code(spec.model)
    path = Path(out)
    ds = data
    if (path / "config.json").is_file():
        run = _reopen(path, spec)
        summary = run.read_json_or_empty("summary.json")
        if summary.get("stage") == "train":  # trained since (a grid cell): the baseline's record is inside
            summary = summary.get("learn") or {}
        if summary.get("stage") == "baseline" and summary.get("status") == "finished":
            return summary
    else:
        ds = ds if ds is not None else load_dataset(spec.dataset, spec.data_root)
        net = gated_network(spec.model, spec.seed, ds, spec.expand, spec.arch)
        uniform_structure(net, spec.flops, ds.input_size, min_channels=spec.min_channels)  # budget check first
        config = {**run_config(net, ds, model=spec.model, dataset=spec.dataset, seed=spec.seed,
                                data_root=spec.data_root),
                  "learn": asdict(spec.learn_config()), "batch_norm": WORLD_INVARIANT, "baseline": spec.to_json()}
        run = RunDir.create(path, config)
        run.save("init.pt", net.state_dict())
    ds = ds if ds is not None else load_dataset(spec.dataset, spec.data_root)
    with run.event_sink() as sink:
        sink(RunStarted(stage="baseline", config=spec.to_json()))
    timing = run.read_json_or_empty(TIMING)
    weights = None
    if spec.kind in NEEDS_PRETRAIN:
        source, epoch = weights_from if weights_from else (run.file("pretrain"), None)
        if weights_from is None:
            pretrain(source, run.config, spec.pretrain_options(), data=ds, on_event=on_event, should_stop=should_stop)
        weights = pretrained_weights(source, epoch)
        timing["pretrain"] = seconds_until(source, spec.pretrain_epochs if epoch is None else epoch)
        run.write_json(TIMING, timing)
    if spec.kind in LEARNED:
        _learn(run, spec, ds, weights, timing, on_event, should_stop)
    elif not run.exists("gates.pt"):
        run.save("gates.pt", _gate_values(run, spec, weights))
    t0 = time.perf_counter()
    structure = search_run(run.path, spec.flops, min_channels=spec.min_channels, on_event=on_event)
    timing["search"] = time.perf_counter() - t0
    run.write_json(TIMING, timing)
    learned = run.read_json_or_empty("summary.json")
    summary = {"stage": "baseline", "status": "finished", "kind": spec.kind, "seed": spec.seed,
               "finding_seconds": sum(timing.values()), "timing": timing, "macs": structure.macs,
               "params": structure.params, "macs_ratio": structure.macs_ratio,
               **({"learn": learned} if spec.kind in LEARNED and learned.get("stage") == "learn" else {})}
    run.write_json("summary.json", summary)
    with run.event_sink() as sink:
        sink(RunFinished(stage="baseline", summary={k: v for k, v in summary.items() if k != "learn"}))
    return summary


def _reopen(path: Path, spec: BaselineSpec) -> RunDir:
    run = RunDir.open(path)
    stored = run.config.get("baseline")
    if stored is None:
        raise PfsError(f"{path} already holds a run that is not a baseline; pick another --out")
    if "arch" not in stored:  # made before specs recorded model options: its network records them
        stored = {**stored, "arch": spec.arch if _same_arch(run, spec.arch) else {"recorded": "other"}}
    stored, wanted = _what_matters(stored, spec.kind), _what_matters(spec.to_json(), spec.kind)
    if stored != wanted:
        diff = sorted(k for k in stored if stored.get(k) != wanted.get(k))
        raise PfsError(f"{path} holds a {stored.get('kind')} baseline made with other settings "
                       f"({', '.join(diff)}); repeat its command to continue it, or pick another --out")
    return run


def _what_matters(spec: dict, kind: str) -> dict:
    """A stored spec without the settings its arm never uses, so that a uniform cell made in
    a grid that learned gates for 300 steps is the same cell in one that learns for 10 epochs
    (copied between grids, it is adopted instead of trained again)."""
    unused = ([] if kind in LEARNED else ["learn"]) + ([] if kind in NEEDS_PRETRAIN else ["pretrain_epochs"])
    unused += [] if kind == "slimming" else ["slim_lambda"]
    return {k: v for k, v in spec.items() if k not in unused}


def _same_arch(run: RunDir, arch: dict) -> bool:
    """Whether the run's recorded network (model_spec's arch) has the options `arch` asks for."""
    built = (run.config.get("model_spec") or {}).get("arch") or {}
    return all(built.get(k) == v for k, v in arch.items())


def _learn(run: RunDir, spec: BaselineSpec, ds, weights, timing: dict, on_event, should_stop) -> None:
    """Learn the gates (pretrained-pfs: on the pre-trained weights, put into init.pt first)."""
    summary = run.read_json_or_empty("summary.json")
    if run.exists("gates.pt") and summary.get("stage") == "learn" and summary.get("status") == "finished":
        return
    if weights is not None and not run.config.get("init_pretrained"):
        net = gated_network(spec.model, spec.seed, ds, spec.expand, spec.arch)
        net.load_state_dict(weights)
        run.save("init.pt", net.state_dict())
        run.write_json("config.json", {**run.config, "init_pretrained": True})
    t0 = time.perf_counter()
    result = resume_learn(run.path, on_event=on_event, should_stop=should_stop, data=ds)
    timing["learn"] = timing.get("learn", 0.0) + time.perf_counter() - t0
    run.write_json(TIMING, timing)
    if result.stopped:
        raise StopRequested(f"stopped while learning gates; repeat the command to continue {run.path}")


def _gate_values(run: RunDir, spec: BaselineSpec, weights) -> dict[str, torch.Tensor]:
    """Gate values of the arms that do not learn them: ones, random, or |BN gamma|."""
    widths = run.config["model_spec"]["widths"]
    if spec.kind == "uniform":
        return {g: torch.ones(w) for g, w in widths.items()}
    if spec.kind == "random":  # the same draw as engine.analysis.random_structure
        gen = torch.Generator().manual_seed(spec.seed)
        return {g: torch.rand(w, generator=gen) for g, w in widths.items()}
    from engine.gating import rebuild_model

    net = rebuild_model(run.config["model_spec"])
    net.load_state_dict(weights)
    return {g: bn.weight.detach().abs().clone() for g, bn in net.gated_bns().items()}


__all__ = ["BASELINES", "KINDS", "BaselineSpec", "gated_network", "make_baseline", "run_config"]
