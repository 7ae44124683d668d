"""The paper's networks, built from a width configuration (see base.PrunableModel)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sample_models.base import ModelError, PrunableModel, scaled
from sample_models.mobilenet_v1 import MobileNetV1
from sample_models.mobilenet_v2 import MobileNetV2Cifar, MobileNetV2ImageNet
from sample_models.resnet_cifar import CifarResNet
from sample_models.resnet_imagenet import ImageNetResNet
from sample_models.vgg import VGG


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its class, fixed arguments and a one-line description."""

    cls: type[PrunableModel]
    arch: dict = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {
    "vgg11": ModelEntry(VGG, {"depth": 11}, "CIFAR VGG-11 with BN"),
    "vgg13": ModelEntry(VGG, {"depth": 13}, "CIFAR VGG-13 with BN"),
    "vgg16": ModelEntry(VGG, {"depth": 16}, "CIFAR VGG-16 with BN (paper)"),
    "vgg19": ModelEntry(VGG, {"depth": 19}, "CIFAR VGG-19 with BN"),
    "resnet20": ModelEntry(CifarResNet, {"depth": 20}, "CIFAR ResNet-20 (small, the default)"),
    "resnet32": ModelEntry(CifarResNet, {"depth": 32}, "CIFAR ResNet-32"),
    "resnet56": ModelEntry(CifarResNet, {"depth": 56}, "CIFAR ResNet-56 (paper)"),
    "resnet110": ModelEntry(CifarResNet, {"depth": 110}, "CIFAR ResNet-110 (paper)"),
    "mobilenet_v2": ModelEntry(MobileNetV2Cifar, {}, "CIFAR MobileNet-V2"),
    "resnet50": ModelEntry(ImageNetResNet, {"depth": 50}, "ImageNet ResNet-50 (paper)"),
    "mobilenet_v1": ModelEntry(MobileNetV1, {}, "ImageNet MobileNet-V1 (paper)"),
    "mobilenet_v2_imagenet": ModelEntry(MobileNetV2ImageNet, {}, "ImageNet MobileNet-V2 (paper)"),
}
SHORTCUTS = ("A", "B")


def list_models() -> list[str]:
    """Registered model names, in a stable order."""
    return list(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of a model; unknown names are a ModelError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def create_model(name: str, *, num_classes: int = 10, in_channels: int = 3,
                 widths: Mapping[str, int] | None = None, expand: float = 1.0,
                 **arch) -> PrunableModel:
    """Build a registered model at `widths` (None: dense x expand) with random init.

    Given `widths` are absolute group channel counts; `expand` then scales only the fixed
    channels (stem, residual stream), so `create_model(**model.spec)` rebuilds a model.
    CIFAR ResNets take `shortcut="B"` (1x1 projection, the official code's, default) or `"A"`
    (zero-pad).
    """
    entry = model_entry(name)
    if "shortcut" in arch:
        if entry.cls is not CifarResNet:
            raise ModelError(f"model {name!r} has no shortcut option; only CIFAR ResNets do")
        if arch["shortcut"] not in SHORTCUTS:
            raise ModelError(f"shortcut must be 'A' (zero-pad) or 'B' (1x1 projection), got {arch['shortcut']!r}")
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{key} must be a positive integer, got {value!r}")
    kwargs = {**entry.arch, **arch}
    model = entry.cls(num_classes=num_classes, in_channels=in_channels, widths=widths,
                      expand=expand, **kwargs)
    model.registry_name = name
    return model


def rebuild(spec: Mapping, widths: Mapping[str, int] | None = None) -> PrunableModel:
    """The model a `PrunableModel.spec` describes, optionally at other group widths."""
    spec = dict(spec)
    return create_model(spec["name"], num_classes=spec["num_classes"],
                        in_channels=spec["in_channels"], expand=spec["expand"],
                        widths=dict(widths if widths is not None else spec["widths"]),
                        **spec.get("arch", {}))


__all__ = ["ModelError", "PrunableModel", "ModelEntry", "create_model", "list_models", "model_entry",
           "rebuild", "scaled"]
