"""Encoder and MoVQ decoder of the latent autoencoder, with optional temporal decoder layers.

MoVQ (Zheng et al. 2022, "MoVQ: Modulating Quantized Vectors for High-Fidelity Image
Generation", section 3.2) replaces every GroupNorm of the decoder by a *spatially conditional*
normalisation: the latent, resized to the feature map's size, gives a per-pixel scale and shift
through 1x1 convs,

    SpatialNorm(f, z) = GroupNorm(f) * (1 + scale(z)) + shift(z),

so the decoder is reminded of the latent at every resolution (Kandinsky 2.2 / 3.0 and
FusionFrames decode with MoVQ). MoVQ writes the scale as ``phi_gamma(z)``; we write ``1 +
scale(z)`` with zero-initialised convs so the layer starts as a plain GroupNorm.

FusionFrames' video decoder (arXiv 2311.13073, section 3.3, Table 3) adds temporal layers after
the decoder blocks: a 3x1x1 or 3x3x3 conv, optionally followed by temporal attention, each
alpha-merged ``(1 - alpha) * x + alpha * (x + branch(x))`` with alpha starting at 0, so at
initialisation the video decoder is the image decoder applied frame by frame.

Images are (N, C, H, W); the decoder's temporal layers see the frames unfolded to
(B, C, F, H, W) (``apply_to_frames``).

Taught in notebook 04 (notebooks/04_autoencoder.ipynb).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minifusion.nn.normalization import group_norm
from minifusion.nn.temporal import (
    AlphaMergedTemporal,
    TemporalAttention,
    TemporalConv1d,
    TemporalConv3d,
    apply_to_frames,
)

DECODER_TEMPORAL = ("none", "conv1d", "conv3d")


class SpatialNorm(nn.Module):
    """MoVQ's spatially conditional GroupNorm: per-pixel scale and shift from the latent.

    Args:
        channels: channels C of the feature map.
        latent_channels: channels of the latent z that modulates it.
        norm_groups: GroupNorm groups (must divide ``channels``).
    """

    def __init__(self, channels: int, *, latent_channels: int, norm_groups: int):
        super().__init__()
        self.norm = group_norm(norm_groups, channels, affine=False)
        self.conv_scale = nn.Conv2d(latent_channels, channels, 1)
        self.conv_shift = nn.Conv2d(latent_channels, channels, 1)
        for conv in (self.conv_scale, self.conv_shift):  # start as plain GroupNorm
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W), z (N, latent_channels, h, w) -> (N, C, H, W)."""
        z = F.interpolate(z, size=x.shape[-2:], mode="nearest")  # (N, latent_channels, H, W)
        return self.norm(x) * (1 + self.conv_scale(z)) + self.conv_shift(z)


class ResnetBlock2d(nn.Module):
    """Norm, SiLU, 3x3 conv, norm, SiLU, 3x3 conv, plus a (1x1 conv) shortcut.

    With ``latent_channels`` set the norms are ``SpatialNorm`` and ``forward`` takes the latent.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm_groups: int, latent_channels: int | None = None):
        super().__init__()
        self.spatial = latent_channels is not None
        if self.spatial:
            self.norm1 = SpatialNorm(in_channels, latent_channels=latent_channels, norm_groups=norm_groups)
            self.norm2 = SpatialNorm(out_channels, latent_channels=latent_channels, norm_groups=norm_groups)
        else:
            self.norm1 = group_norm(norm_groups, in_channels)
            self.norm2 = group_norm(norm_groups, out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def _norm(self, norm: nn.Module, h: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return norm(h, z) if self.spatial else norm(h)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self._norm(self.norm1, x, z)))
        h = self.conv2(F.silu(self._norm(self.norm2, h, z)))
        return self.shortcut(x) + h


class Downsample2d(nn.Module):
    """(N, C, H, W) -> (N, C, H/2, W/2): 3x3 conv with stride 2 (LDM / MoVQ encoders)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample2d(nn.Module):
    """(N, C, H, W) -> (N, C, 2H, 2W): nearest-neighbour doubling, then a 3x3 conv.

    Nearest + conv (rather than a transposed conv) is what LDM and MoVQ decoders use: every
    output pixel sees the same kernel, so no checkerboard pattern is built in.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    """(N, in_channels, H, W) -> raw latents (N, latent_channels, H/s, W/s), s = 2^(levels-1).

    conv_in; per level ``layers_per_block`` ResNet blocks and a stride-2 conv (not after the last
    level); a middle block; GroupNorm, SiLU, conv_out.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        latent_channels: int,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        norm_groups: int,
    ):
        super().__init__()
        widths = block_out_channels
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        prev = widths[0]
        for i, width in enumerate(widths):
            level = nn.Module()
            level.resnets = nn.ModuleList(
                ResnetBlock2d(prev if j == 0 else width, width, norm_groups=norm_groups) for j in range(layers_per_block)
            )
            level.downsample = Downsample2d(width) if i < len(widths) - 1 else nn.Identity()
            self.down_blocks.append(level)
            prev = width
        self.mid = ResnetBlock2d(prev, prev, norm_groups=norm_groups)
        self.norm_out = group_norm(norm_groups, prev)
        self.conv_out = nn.Conv2d(prev, latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down_blocks:
            for resnet in level.resnets:
                h = resnet(h)
            h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class TemporalStage(nn.Module):
    """Temporal layers after one decoder block: an alpha-merged conv, optionally alpha-merged attention.

    Each branch is built with ``zero_init=False`` and merged through a scalar alpha that starts at
    0: the stage is the identity at initialisation, and both alpha and the branch get gradients
    once alpha moves (a zero branch times a zero alpha would give neither a gradient).

    Input and output (B, C, F, H, W).
    """

    def __init__(self, channels: int, *, kind: str, attention: bool, norm_groups: int, attention_head_dim: int):
        super().__init__()
        if kind == "conv1d":
            branch = TemporalConv1d(channels, norm_groups=norm_groups, zero_init=False)
        elif kind == "conv3d":
            branch = TemporalConv3d(channels, norm_groups=norm_groups, zero_init=False)
        else:
            raise ValueError(f"decoder_temporal {kind!r} is not one of 'conv1d', 'conv3d' for a temporal stage")
        self.conv = AlphaMergedTemporal(branch)
        self.attention = (
            AlphaMergedTemporal(
                TemporalAttention(channels, head_dim=attention_head_dim, norm_groups=norm_groups, zero_init=False)
            )
            if attention
            else None
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(x)
        return x if self.attention is None else self.attention(x)


class Decoder(nn.Module):
    """MoVQ decoder: raw latents (N, latent_channels, h, w) -> frames (N, out_channels, h*s, w*s).

    conv_in; a middle block; per level (deepest first) ``layers_per_block`` ResNet blocks with
    SpatialNorm and a nearest + conv upsample (not after the last level); SpatialNorm, SiLU,
    conv_out. With ``temporal`` != "none" a ``TemporalStage`` follows the middle block and the
    blocks of every level; it runs only when ``num_frames`` says how the N = B*F frames fold.
    """

    def __init__(
        self,
        *,
        out_channels: int,
        latent_channels: int,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        norm_groups: int,
        temporal: str = "none",
        temporal_attention: bool = False,
        attention_head_dim: int = 32,
    ):
        super().__init__()
        if temporal not in DECODER_TEMPORAL:
            raise ValueError(f"decoder_temporal {temporal!r} is not one of {', '.join(map(repr, DECODER_TEMPORAL))}")
        widths = tuple(reversed(block_out_channels))  # deepest level first
        stage = lambda c: (  # noqa: E731
            None if temporal == "none" else TemporalStage(
                c, kind=temporal, attention=temporal_attention, norm_groups=norm_groups,
                attention_head_dim=attention_head_dim,
            )
        )
        spatial = {"norm_groups": norm_groups, "latent_channels": latent_channels}
        self.conv_in = nn.Conv2d(latent_channels, widths[0], 3, padding=1)
        self.mid = ResnetBlock2d(widths[0], widths[0], **spatial)
        self.mid_temporal = stage(widths[0])
        self.up_blocks = nn.ModuleList()
        prev = widths[0]
        for i, width in enumerate(widths):
            level = nn.Module()
            level.resnets = nn.ModuleList(
                ResnetBlock2d(prev if j == 0 else width, width, **spatial) for j in range(layers_per_block)
            )
            level.temporal = stage(width)
            level.upsample = Upsample2d(width) if i < len(widths) - 1 else nn.Identity()
            self.up_blocks.append(level)
            prev = width
        self.norm_out = SpatialNorm(prev, latent_channels=latent_channels, norm_groups=norm_groups)
        self.conv_out = nn.Conv2d(prev, out_channels, 3, padding=1)

    def _temporal(self, stage: TemporalStage | None, h: torch.Tensor, num_frames: int | None) -> torch.Tensor:
        if stage is None or num_frames is None:
            return h
        return apply_to_frames(stage, h, num_frames)  # (B*F, C, H, W) -> video -> back

    def forward(self, z: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """z (N, latent_channels, h, w) with N = B*F frames folded (video) or N images."""
        h = self.mid(self.conv_in(z), z)
        h = self._temporal(self.mid_temporal, h, num_frames)
        for level in self.up_blocks:
            for resnet in level.resnets:
                h = resnet(h, z)
            h = self._temporal(level.temporal, h, num_frames)
            h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h, z)))
