"""Down- and up-sampling by 2, as in Kandinsky 3.0: a 2x2 conv with stride 2, a 2x2 transposed conv.

Learned resampling (rather than pooling / nearest neighbour) keeps all information: a 2x2
stride-2 conv sees each input pixel exactly once. Images (N, C, H, W); H and W must be even
for ``Downsample``.
"""

from __future__ import annotations

import torch
from torch import nn


class Downsample(nn.Module):
    """(N, C, H, W) -> (N, out_channels, H/2, W/2) with a 2x2 stride-2 conv."""

    def __init__(self, channels: int, *, out_channels: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"Downsample expects (N, C, H, W) with even H and W, got shape {tuple(x.shape)}")
        return self.conv(x)


class Upsample(nn.Module):
    """(N, C, H, W) -> (N, out_channels, 2H, 2W) with a 2x2 stride-2 transposed conv."""

    def __init__(self, channels: int, *, out_channels: int | None = None):
        super().__init__()
        self.conv = nn.ConvTranspose2d(channels, out_channels or channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"Upsample expects (N, C, H, W), got shape {tuple(x.shape)}")
        return self.conv(x)
