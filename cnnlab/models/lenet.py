"""LeNet-5 (LeCun et al., 1998), sized for 3-channel images of any size from 16 px.

Kept to the classic layout — conv(6, 5×5) → pool → conv(16, 5×5) → pool → fc120 → fc84 → fc(classes) —
with three deliberate modernisations, so it trains with the same recipe as the other networks:
- ReLU + max-pool instead of tanh + trainable average subsampling (the usual modern re-implementation);
- padding=2 on the first conv, which is how the 28 px MNIST digits were fed to the original 32 px network;
- an adaptive average pool to 5×5 before the classifier, so any input ≥ 16 px reaches the 16·5·5 = 400
  features fc120 expects (at 28 px the map already is 5×5 and the pool is the identity).
"""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(5)
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
