"""CIFAR VGG with BatchNorm (as in network slimming / the paper's code): every conv is gated."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from sample_models.base import PrunableModel

CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512],
}


class VGG(PrunableModel):
    """VGG-{11,13,16,19}: conv3x3-BN-gate-ReLU stacks, max-pools, global pool, one linear."""

    def __init__(self, *, depth: int = 16, num_classes: int = 10, in_channels: int = 3,
                 widths=None, expand: float = 1.0) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=widths,
                         expand=expand, arch={"depth": depth})
        layers: list[nn.Module] = []
        cin, in_group = in_channels, None
        for item in CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            group = f"conv{sum(isinstance(m, nn.Conv2d) for m in layers) + 1}"
            cout = self.widths[group]
            layers += [self.conv(cin, cout, 3, in_group=in_group, out_group=group),
                       self.bn(cout, gate=group), nn.ReLU(inplace=True)]
            cin, in_group = cout, group
        self.features = nn.Sequential(*layers)
        # Global pooling equals the paper's AvgPool2d(2) at 32x32 and also fits 28x28 inputs.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = self.linear(cin, num_classes, in_group=in_group)
        self.init_weights(bn_gamma=0.5, linear_std=0.01)

    @classmethod
    def dense_widths(cls, depth: int = 16) -> OrderedDict[str, int]:
        convs = [c for c in CONFIGS[depth] if c != "M"]
        return OrderedDict((f"conv{i + 1}", c) for i, c in enumerate(convs))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))
