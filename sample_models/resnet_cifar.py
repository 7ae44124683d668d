"""CIFAR ResNet (He et al. 2016, 6n+2 layers): only each block's first conv is gated.

The residual stream is tied across every add of a stage, so it is not pruned, as in the
paper's code. Shortcut "A" zero-pads channels (no parameters); "B" is a 1x1 projection.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from sample_models.base import PrunableModel

STAGES = (16, 32, 64)
# Shortcut B (1x1 conv + BN where the width or stride changes) is the official code's
# (models/resnet.py); A (zero-pad) stays selectable, and runs record which they used.
DEFAULT_SHORTCUT = "B"


class PadShortcut(nn.Module):
    """Option A: subsample spatially and zero-pad the new channels (no MACs, no params)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.front = (cout - cin) // 2
        self.back = cout - cin - self.front

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.front, self.back))


class BasicBlock(nn.Module):
    def __init__(self, model: PrunableModel, group: str, cin: int, cout: int, stride: int,
                 shortcut: str) -> None:
        super().__init__()
        mid = model.widths[group]
        self.conv1 = model.conv(cin, mid, 3, stride=stride, out_group=group)
        self.bn1 = model.bn(mid, gate=group)
        self.conv2 = model.conv(mid, cout, 3, in_group=group)
        self.bn2 = model.bn(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            if shortcut == "A":
                self.shortcut = PadShortcut(cin, cout, stride)
            else:
                self.shortcut = nn.Sequential(model.conv(cin, cout, 1, stride=stride), model.bn(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class CifarResNet(PrunableModel):
    """ResNet-{20,32,56,110} for 32x32 inputs: three stages of n basic blocks."""

    def __init__(self, *, depth: int = 56, shortcut: str = DEFAULT_SHORTCUT, num_classes: int = 10,
                 in_channels: int = 3, widths=None, expand: float = 1.0) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=widths,
                         expand=expand, arch={"depth": depth, "shortcut": shortcut})
        n = _blocks_per_stage(depth)
        stem = self.fixed(STAGES[0])
        self.conv1 = self.conv(in_channels, stem, 3)
        self.bn1 = self.bn(stem)
        cin = stem
        for s, planes in enumerate(STAGES):
            cout = self.fixed(planes)
            blocks = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(BasicBlock(self, f"layer{s + 1}.{b}", cin, cout, stride, shortcut))
                cin = cout
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = self.linear(cin, num_classes)
        self.init_weights()

    @classmethod
    def dense_widths(cls, depth: int = 56, shortcut: str = "A") -> OrderedDict[str, int]:
        n = _blocks_per_stage(depth)
        return OrderedDict((f"layer{s + 1}.{b}", planes)
                           for s, planes in enumerate(STAGES) for b in range(n))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


def _blocks_per_stage(depth: int) -> int:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    return (depth - 2) // 6
