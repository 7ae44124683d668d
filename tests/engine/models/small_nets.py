"""Small foreign networks the tests load through `path/to/file.py:factory` specs.

Each shows one coupling the dependency graph must get right: a residual add with a 1x1
projection shortcut, a concatenation, a grouped conv, and a network without BatchNorm
(gates on conv outputs, a conv flattened straight into a linear).
"""
import torch
import torch.nn.functional as F
from torch import nn


def _cbr(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Residual(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.stem = _cbr(in_channels, 8)
        self.conv1 = _cbr(8, 12, stride=2)
        self.conv2 = nn.Sequential(nn.Conv2d(12, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.proj = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.conv3 = _cbr(16, 10)
        self.fc = nn.Linear(10, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.conv2(self.conv1(x)) + self.proj(x))
        return self.fc(F.adaptive_avg_pool2d(self.conv3(x), 1).flatten(1))


class Concat(nn.Module):
    def __init__(self, num_classes, in_channels=1):
        super().__init__()
        self.a = _cbr(in_channels, 6)
        self.b = _cbr(in_channels, 10, k=5)
        self.c = _cbr(16, 12)
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x):
        x = self.c(torch.cat([self.a(x), self.b(x)], dim=1))
        return self.fc(x.mean((2, 3)))


class Grouped(nn.Module):
    def __init__(self, num_classes, in_channels=1):
        super().__init__()
        self.stem = _cbr(in_channels, 8)
        self.grouped = _cbr(8, 16, groups=4)
        self.head = _cbr(16, 20, k=1)
        self.fc = nn.Linear(20, num_classes)

    def forward(self, x):
        return self.fc(self.head(self.grouped(self.stem(x))).mean((2, 3)))


class NoBN(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 6, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(6 * 16, num_classes)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def residual(num_classes, in_channels):
    return Residual(num_classes, in_channels)


def concat(num_classes, in_channels):
    return Concat(num_classes, in_channels)


def grouped(num_classes, in_channels):
    return Grouped(num_classes, in_channels)


def no_bn(num_classes):  # no in_channels: fixed 3-channel input, 1-channel data is repeated
    return NoBN(num_classes)


class Shuffle(nn.Module):
    """A channel shuffle (view/transpose/reshape), which Torch-Pruning 1.6 cannot map."""

    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.a = _cbr(in_channels, 8)
        self.b = _cbr(8, 6)
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        x = self.a(x)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.fc(self.b(x).mean((2, 3)))


def shuffle(num_classes, in_channels):
    return Shuffle(num_classes, in_channels)
