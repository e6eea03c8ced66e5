"""The image encoder of seed 001's network, trained from scratch: a ResNet-18-style trunk to a
4 x 4 x C feature map, flattened, then two fully connected layers of 200 (ReLU).

No pretrained weights can be downloaded here (and torchvision is not a dependency), so the trunk
is written out: a stem convolution, four stages of two basic residual blocks each (the stride-2
stages halve the resolution), and an adaptive average pool to 4 x 4 so that any input size of at
least 32 pixels works. ``width`` scales every stage's channels (64 gives ResNet-18's 64-128-256-512
trunk; the default 16 keeps a CPU step short).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm and an identity (or 1 x 1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class Encoder(nn.Module):
    """Image (B, C_in, S, S) -> feature (B, 200).

    Args:
        in_channels: 3 for RGB images, 1 for masks-only sets.
        width: channels of the first stage (stages have width, 2 width, 4 width, 8 width).
        feature_channels: channels of the 4 x 4 map before flattening (256 in the seed).
        feature_dim: size of the two fully connected layers (200 in the seed).
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 16,
        feature_channels: int = 256,
        feature_dim: int = 200,
    ) -> None:
        super().__init__()
        if in_channels < 1 or width < 1:
            raise ValueError(f"expected in_channels, width >= 1, got {in_channels}, {width}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, 2, 2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.to_map = nn.Sequential(
            nn.Conv2d(cin, feature_channels, 1, bias=False),
            nn.BatchNorm2d(feature_channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4),
        )
        self.fc = nn.Sequential(
            nn.Linear(16 * feature_channels, feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(inplace=True),
        )
        self.feature_dim = feature_dim

    def forward(self, images: Tensor) -> Tensor:
        """``images`` (B, C_in, S, S) in [0, 1] -> (B, feature_dim)."""
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, S, S), got {tuple(images.shape)}")
        x = self.to_map(self.stages(self.stem(images * 2.0 - 1.0)))
        return self.fc(x.flatten(1))
