"""ImageNet ResNet-50 (torchvision v1.5 layout): conv1 and conv2 of each bottleneck are gated.

conv3 writes the residual stream, tied by the adds, so it is not pruned (paper's code).
"""
from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import nn

from sample_models.base import PrunableModel

LAYERS = {50: (3, 4, 6, 3)}
PLANES = (64, 128, 256, 512)
EXPANSION = 4


class Bottleneck(nn.Module):
    def __init__(self, model: PrunableModel, name: str, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        g1, g2 = f"{name}.conv1", f"{name}.conv2"
        w1, w2 = model.widths[g1], model.widths[g2]
        self.conv1 = model.conv(cin, w1, 1, out_group=g1)
        self.bn1 = model.bn(w1, gate=g1)
        self.conv2 = model.conv(w1, w2, 3, stride=stride, in_group=g1, out_group=g2)
        self.bn2 = model.bn(w2, gate=g2)
        self.conv3 = model.conv(w2, cout, 1, in_group=g2)
        self.bn3 = model.bn(cout)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(model.conv(cin, cout, 1, stride=stride), model.bn(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.downsample(x), inplace=True)


class ImageNetResNet(PrunableModel):
    """ResNet-50 for 224x224 inputs."""

    default_input_size = (3, 224, 224)

    def __init__(self, *, depth: int = 50, num_classes: int = 1000, in_channels: int = 3,
                 widths=None, expand: float = 1.0) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=widths,
                         expand=expand, arch={"depth": depth})
        stem = self.fixed(64)
        self.conv1 = self.conv(in_channels, stem, 7, stride=2)
        self.bn1 = self.bn(stem)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = stem
        for s, (n, planes) in enumerate(zip(LAYERS[depth], PLANES)):
            cout = self.fixed(planes * EXPANSION)
            blocks = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(Bottleneck(self, f"layer{s + 1}.{b}", cin, cout, stride))
                cin = cout
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = self.linear(cin, num_classes)
        self.init_weights()

    @classmethod
    def dense_widths(cls, depth: int = 50) -> OrderedDict[str, int]:
        widths = OrderedDict()
        for s, (n, planes) in enumerate(zip(LAYERS[depth], PLANES)):
            for b in range(n):
                widths[f"layer{s + 1}.{b}.conv1"] = planes
                widths[f"layer{s + 1}.{b}.conv2"] = planes
        return widths

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x)), inplace=True))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.pool(x).flatten(1))
