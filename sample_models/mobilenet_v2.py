"""MobileNet-V2, CIFAR variant (stride-1 stem and second stage): expansion widths are gated.

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
STEM, HEAD = 32, 1280


class InvertedResidual(nn.Module):
    def __init__(self, model: PrunableModel, group: str, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        hidden = model.widths[group]
        self.stride = stride
        self.conv1 = model.conv(cin, hidden, 1, out_group=group)
        self.bn1 = model.bn(hidden, group=group)
        self.conv2 = model.conv(hidden, hidden, 3, stride=stride, depthwise=True,
                                in_group=group, out_group=group)
        self.bn2 = model.bn(hidden, gate=group)
        self.conv3 = model.conv(hidden, cout, 1, in_group=group)
        self.bn3 = model.bn(cout)
        self.shortcut: nn.Module | None = None
        if stride == 1:
            self.shortcut = nn.Identity()
            if cin != cout:
                self.shortcut = nn.Sequential(model.conv(cin, cout, 1), model.bn(cout))

    def forward(self, x):
        out = F.relu6(self.bn1(self.conv1(x)))
        out = F.relu6(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.shortcut is not None else out


class MobileNetV2Cifar(PrunableModel):
    """MobileNet-V2 for 32x32 inputs (17 inverted-residual blocks)."""

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3, widths=None,
                 expand: float = 1.0) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=widths,
                         expand=expand, arch={})
        stem = self.fixed(STEM)
        self.conv1 = self.conv(in_channels, stem, 3)
        self.bn1 = self.bn(stem)
        blocks, cin, i = [], stem, 0
        for _, planes, n, first_stride in CIFAR_CONFIG:
            cout = self.fixed(planes)
            for b in range(n):
                blocks.append(InvertedResidual(self, f"block{i}", cin, cout, first_stride if b == 0 else 1))
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
        for t, planes, n, _ in CIFAR_CONFIG:
            for _ in range(n):
                widths[f"block{i}"] = cin * t
                cin, i = planes, i + 1
        return widths

    def forward(self, x):
        x = F.relu6(self.bn1(self.conv1(x)))
        x = F.relu6(self.bn2(self.conv2(self.layers(x))))
        return self.fc(self.pool(x).flatten(1))
