"""Named hyper-parameter presets for retraining (CIFAR, ImageNet) and the plan they resolve to.

A recipe is only defaults: every field can be overridden by a `pfs train` flag. Keeping
them here, not scattered through argparse defaults, means the CLI, the TUI and
`pfs run` agree on what "the paper's recipe" is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from engine.errors import PfsError

SCHEDULES = ("step", "cos")
INITS = ("scratch", "ticket", "inherit")  # see engine.training.inits
DEVICES = ("auto", "cpu", "cuda")

# The race's demo size (`pfs race --demo`, the explorer's `v`): resnet20 at half the MACs on
# Fashion-MNIST, both arms at once on 2 loaded CPU cores, reached 0.80 and 0.81 test accuracy
# in 173 s (docs/explorer.md has the measurements; 3 x 4,000 images at batch 128 stopped at
# 0.72, 5 x 6,000 at batch 64 at 0.80 in 205 s). Batch 64: twice the recipe's steps per image.
DEMO_RACE = {"epochs": 3, "subset": 10_000, "test_subset": 1_000, "batch_size": 64}


@dataclass(frozen=True)
class Recipe:
    """Optimiser and schedule defaults for one training regime."""

    name: str
    epochs: int
    batch_size: int
    lr: float  # at `batch_size`; with `lr_per` set, scaled linearly to the batch actually used
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "step"  # step: x`gamma` at each milestone; cos: cosine to 0 per step
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of the epochs
    gamma: float = 0.1
    label_smoothing: float = 0.0
    no_wd_bn_depthwise: bool = False  # BN affine and depthwise kernels are not decayed
    lr_per: int | None = None  # lr is given per this many images (linear scaling rule)

    def lr_for(self, batch_size: int) -> float:
        """The learning rate for a global batch of `batch_size` images."""
        return self.lr * batch_size / self.lr_per if self.lr_per else self.lr


# The paper's CIFAR recipe (and the usual one for CIFAR ResNets/VGG since He et al.).
CIFAR = Recipe("cifar", epochs=160, batch_size=128, lr=0.1)

# The paper's ImageNet recipe: Nesterov SGD, lr 0.05 per 256 images, label smoothing 0.1,
# no weight decay on BN and depthwise kernels; MobileNet gets a cosine schedule. Epoch
# counts and milestones are the common ones (ResNet-50: 90 epochs, x0.1 at 30 and 60).
IMAGENET = Recipe("imagenet", epochs=90, batch_size=256, lr=0.05, lr_per=256, nesterov=True,
                  weight_decay=1e-4, schedule="step", milestones=(1 / 3, 2 / 3),
                  label_smoothing=0.1, no_wd_bn_depthwise=True)

RECIPES = {"cifar": CIFAR, "imagenet": IMAGENET}


def recipe_names() -> list[str]:
    return list(RECIPES)


def get_recipe(name: str, model: str = "") -> Recipe:
    """The named recipe, adapted to the model (MobileNets: cosine, 150 epochs, wd 4e-5)."""
    try:
        r = RECIPES[name]
    except KeyError:
        raise PfsError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}") from None
    if name == "imagenet" and model.startswith("mobilenet"):
        r = replace(r, schedule="cos", epochs=150, weight_decay=4e-5)
    return r


def default_recipe(dataset: str) -> str:
    """ImageNet-style folders get the ImageNet recipe; everything else the CIFAR one."""
    return "imagenet" if dataset.startswith("imagefolder:") else "cifar"


@dataclass(frozen=True)
class Plan:
    """The concrete hyper-parameters of a run (recipe + flags + budget), stored in summary.json."""

    recipe: str
    epochs: int
    base_epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str
    milestones: tuple[int, ...]
    gamma: float
    label_smoothing: float
    no_wd_bn_depthwise: bool
    seed: int


def budget_epochs(epochs: int, dense_macs: int, pruned_macs: int) -> int:
    """Scratch-B epochs: the pruned network gets the dense network's training compute.

    epochs x dense MACs / pruned MACs, rounded to the nearest epoch, never fewer than `epochs`.
    """
    if pruned_macs <= 0:
        raise PfsError("the pruned network has no MACs; re-run the search with a larger --flops")
    return max(epochs, int(round(epochs * dense_macs / pruned_macs)))


def make_plan(options, *, model: str, dataset: str, dense: int, macs: int, seed: int) -> Plan:
    """Resolve the recipe, the flags (a train.TrainOptions; None = recipe default) and Scratch-B."""
    r = get_recipe(options.recipe or default_recipe(dataset), model)
    base = options.epochs or r.epochs
    epochs = budget_epochs(base, dense, macs) if options.budget else base
    batch = options.batch_size or r.batch_size
    if batch % options.accum_steps:
        raise PfsError(f"batch size {batch} must be a multiple of --accum-steps {options.accum_steps}")
    schedule = options.schedule or r.schedule
    return Plan(recipe=r.name, epochs=epochs, base_epochs=base, batch_size=batch,
                lr=options.lr if options.lr is not None else r.lr_for(batch),
                momentum=options.momentum if options.momentum is not None else r.momentum,
                nesterov=r.nesterov, weight_decay=options.wd if options.wd is not None else r.weight_decay,
                schedule=schedule, milestones=tuple(int(round(f * epochs)) for f in r.milestones),
                gamma=r.gamma, label_smoothing=(options.label_smoothing if options.label_smoothing is not None
                                                else r.label_smoothing),
                no_wd_bn_depthwise=r.no_wd_bn_depthwise, seed=seed)


def lr_at(plan: Plan, epoch: int, step: int, steps: int) -> float:
    """Learning rate for step `step` (of `steps`) in 0-based epoch `epoch`."""
    if plan.schedule == "cos":
        t = (epoch * steps + step) / max(1, plan.epochs * steps)
        return 0.5 * plan.lr * (1.0 + math.cos(math.pi * t))
    return plan.lr * plan.gamma ** sum(epoch >= m for m in plan.milestones)
