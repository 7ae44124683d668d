"""ImageNet MobileNet-V1: the 13 pointwise outputs are gated.

A pointwise output feeds the next depthwise conv, which follows its channels; so the
group's gate sits after that depthwise BN (the last op before channels mix again), and a
zero gate removes the channel from both convs exactly.
"""
from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import nn

from sample_models.base import PrunableModel

# (pointwise out channels, stride of the depthwise conv before it)
CONFIG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
          (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
STEM = 32


class MobileNetV1(PrunableModel):
    """MobileNet-V1 (1.0, 224x224): stem conv, 13 depthwise-separable blocks, linear."""

    default_input_size = (3, 224, 224)

    def __init__(self, *, num_classes: int = 1000, in_channels: int = 3, widths=None,
                 expand: float = 1.0) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=widths,
                         expand=expand, arch={})
        stem = self.fixed(STEM)
        self.conv1 = self.conv(in_channels, stem, 3, stride=2)
        self.bn1 = self.bn(stem)
        layers: list[nn.Module] = []
        cin, in_group = stem, None
        for i, (_, stride) in enumerate(CONFIG):
            group = f"pw{i + 1}"
            cout = self.widths[group]
            # The depthwise BN closes the previous pointwise group, so it carries that gate.
            layers += [self.conv(cin, cin, 3, stride=stride, depthwise=True,
                                 in_group=in_group, out_group=in_group),
                       self.bn(cin, gate=in_group) if in_group else self.bn(cin), nn.ReLU(inplace=True),
                       self.conv(cin, cout, 1, in_group=in_group, out_group=group),
                       self.bn(cout, group=group) if i + 1 < len(CONFIG) else self.bn(cout, gate=group),
                       nn.ReLU(inplace=True)]
            cin, in_group = cout, group
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = self.linear(cin, num_classes, in_group=in_group)
        self.init_weights()

    @classmethod
    def dense_widths(cls) -> OrderedDict[str, int]:
        return OrderedDict((f"pw{i + 1}", c) for i, (c, _) in enumerate(CONFIG))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return self.fc(self.pool(self.features(x)).flatten(1))
