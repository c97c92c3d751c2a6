"""Kandinsky 3.0 bottleneck residual block.

Four conv blocks (conditional GroupNorm, SiLU, conv) with kernel sizes 1, 3, 3, 1: the first
1x1 conv shrinks the width to ``max(in, out) // compression_ratio`` (half by default), the two
3x3 convs work at that width, the last 1x1 conv restores it (Kandinsky 3.0 ``ResNetBlock``,
Arkhipkin et al. 2023; the bottleneck of He et al. 2016). The shortcut is the identity, or a 1x1
conv when the width changes. Every norm is conditioned on the time embedding.

Images: x (N, C, H, W), emb (N, E). For video models the frames are folded into N = B*F, and
``temporal_layers`` (empty for the image model) may hold video layers run after conv i
(key ``str(i)``): FusionFrames' "temporal layers inside the spatial blocks" variant, and the
interpolation network's alpha-merged temporal conv after every spatial conv.

Taught in notebooks 05 and 07 (notebooks/05_unet_blocks.ipynb, notebooks/07_temporal_layers_vs_blocks.ipynb).
"""

from __future__ import annotations

import torch
from torch import nn

from minifusion.nn.normalization import ConditionalGroupNorm
from minifusion.nn.temporal import apply_to_frames

KERNEL_SIZES = (1, 3, 3, 1)


class ConvBlock(nn.Module):
    """Conditional GroupNorm, SiLU, conv (Kandinsky 3.0 ``Block``)."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, embed_dim: int, norm_groups: int):
        super().__init__()
        self.norm = ConditionalGroupNorm(norm_groups, in_channels, embed_dim=embed_dim)
        self.act = nn.SiLU()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.conv(self.act(self.norm(x, emb)))


class BottleneckResBlock(nn.Module):
    """Residual block with convs of kernel 1, 3, 3, 1 and a half-width bottleneck.

    Args:
        in_channels, out_channels: widths.
        embed_dim: width of the time embedding that conditions every norm.
        norm_groups: GroupNorm groups (must divide in_channels and the hidden width).
        compression_ratio: hidden width = max(in, out) // compression_ratio.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        embed_dim: int,
        norm_groups: int = 8,
        compression_ratio: int = 2,
    ):
        super().__init__()
        hidden = max(in_channels, out_channels) // compression_ratio
        if hidden < 1:
            raise ValueError(f"compression_ratio {compression_ratio} leaves no hidden channels for {in_channels}")
        widths = [in_channels, hidden, hidden, hidden, out_channels]
        self.in_channels, self.out_channels, self.hidden_channels = in_channels, out_channels, hidden
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], kernel_size=k, embed_dim=embed_dim, norm_groups=norm_groups)
            for i, k in enumerate(KERNEL_SIZES)
        )
        self.shortcut = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        self.temporal_layers = nn.ModuleDict()  # {"i": video layer run after conv i}; empty for images

    def conv_widths(self) -> list[int]:
        """Output width of each of the four convs (where a temporal layer would go)."""
        return [self.hidden_channels] * 3 + [self.out_channels]

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        *,
        num_frames: int = 1,
        temporal_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (N, in, H, W), emb (N, E) -> (N, out, H, W). N = B*num_frames for videos."""
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h, emb)
            if str(i) in self.temporal_layers:
                h = apply_to_frames(self.temporal_layers[str(i)], h, num_frames, temporal_emb)
        return self.shortcut(x) + h
