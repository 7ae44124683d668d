"""MobileNet-V2: expansion widths are gated. CIFAR variant (stride-1 stem and second stage,
an expansion conv in every block, projection shortcuts) and the ImageNet original.

Each block's expansion channels run 1x1 expand -> 3x3 depthwise -> 1x1 project; the
depthwise conv follows its input, so the gate sits after the depthwise BN, the last
point before channels mix again: a zero gate then removes the channel exactly.
"""
from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import nn

from sample_models.base import PrunableModel

# (expansion, out_planes, blocks, stride)
CIFAR_CONFIG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]
IMAGENET_CONFIG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                   (6, 160, 3, 2), (6, 320, 1, 1)]
STEM, HEAD = 32, 1280


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1).

    Without `expand_conv` (ImageNet blocks of expansion 1) the depthwise conv works on the
    block's input directly, so the group is the previous layer's output channels.
    """

    def __init__(self, model: PrunableModel, group: str, cin: int, cout: int, stride: int, *,
                 expand_conv: bool = True, projection: bool = True) -> None:
        super().__init__()
        hidden = model.widths[group]
        self.stride = stride
        self.conv1: nn.Module = nn.Identity()
        self.bn1: nn.Module = nn.Identity()
        if expand_conv:
            self.conv1 = model.conv(cin, hidden, 1, out_group=group)
            self.bn1 = model.bn(hidden, group=group)
        self.expand_conv = expand_conv
        self.conv2 = model.conv(hidden, hidden, 3, stride=stride, depthwise=True,
                                in_group=group, out_group=group)
        self.bn2 = model.bn(hidden, gate=group)
        self.conv3 = model.conv(hidden, cout, 1, in_group=group)
        self.bn3 = model.bn(cout)
        self.shortcut: nn.Module | None = None
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif stride == 1 and projection:
            self.shortcut = nn.Sequential(model.conv(cin, cout, 1), model.bn(cout))

    def forward(self, x):
        out = F.relu6(self.bn1(self.conv1(x))) if self.expand_conv else x
        out = F.relu6(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.shortcut is not None else out


class _MobileNetV2(PrunableModel):
    """Stem conv, 17 inverted-residual blocks, 1x1 head conv, linear; the variants differ
    in strides, in the first block's expansion conv and in shortcut projections."""

    config: list[tuple[int, int, int, int]] = CIFAR_CONFIG
    stem_stride = 1
    original = False  # the ImageNet original: no expansion conv at t=1, no projections

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3, widths=None,
                 expand: float = 1.0) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=widths,
                         expand=expand, arch={})
        # Without an expansion conv the first block's group is the stem's output channels.
        stem_group = "block0" if self.original else None
        stem = self.widths["block0"] if self.original else self.fixed(STEM)
        self.conv1 = self.conv(in_channels, stem, 3, stride=self.stem_stride, out_group=stem_group)
        self.bn1 = self.bn(stem, group=stem_group)
        blocks, cin, i = [], stem, 0
        for t, planes, n, first_stride in self.config:
            cout = self.fixed(planes)
            for b in range(n):
                blocks.append(InvertedResidual(self, f"block{i}", cin, cout, first_stride if b == 0 else 1,
                                               expand_conv=not (self.original and t == 1),
                                               projection=not self.original))
                cin, i = cout, i + 1
        self.layers = nn.Sequential(*blocks)
        head = self.fixed(HEAD)
        self.conv2 = self.conv(cin, head, 1)
        self.bn2 = self.bn(head)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = self.linear(head, num_classes)
        self.init_weights()

    @classmethod
    def dense_widths(cls) -> OrderedDict[str, int]:
        widths, cin, i = OrderedDict(), STEM, 0
        for t, planes, n, _ in cls.config:
            for _ in range(n):
                widths[f"block{i}"] = cin * t
                cin, i = planes, i + 1
        return widths

    def forward(self, x):
        x = F.relu6(self.bn1(self.conv1(x)))
        x = F.relu6(self.bn2(self.conv2(self.layers(x))))
        return self.fc(self.pool(x).flatten(1))


class MobileNetV2Cifar(_MobileNetV2):
    """MobileNet-V2 for 32x32 inputs: stride-1 stem and second stage, an expansion conv in
    every block, 1x1 projections where a stride-1 block changes width."""


class MobileNetV2ImageNet(_MobileNetV2):
    """MobileNet-V2 (1.0, 224x224) as in torchvision: 300.8M MACs.

    The first block (expansion 1) has no expansion conv, so its group is the stem's
    output channels: the stem conv is pruned with it.
    """

    default_input_size = (3, 224, 224)
    config = IMAGENET_CONFIG
    stem_stride = 2
    original = True
