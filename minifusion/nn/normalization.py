"""Conditional GroupNorm (Kandinsky 3.0's ``ConditionalGroupNorm``).

GroupNorm without its own affine parameters, followed by a scale and shift predicted from a
conditioning embedding (the diffusion time embedding, plus the pooled text in Kandinsky 3.0):

    y = GroupNorm(x) * (1 + scale(e)) + shift(e),   [scale, shift] = Linear(SiLU(e))

The linear layer is zero-initialised, so at init the layer is plain GroupNorm (scale 1, shift 0).
This is FiLM (Perez et al. 2018) / AdaGN (Dhariwal & Nichol 2021, section 3) applied to every
norm of the U-Net.

Works on images (B, C, H, W) and videos (B, C, F, H, W). The embedding is (B, E) - one scale and
shift per sample - or, for videos, (B, F, E) - one per frame (used when each frame has its own
frame-position embedding). Statistics of a video are taken over all its frames.

Taught in notebook 05 (notebooks/05_unet_blocks.ipynb).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from minifusion.checks import positive_int


def check_groups(num_groups: int, num_channels: int) -> None:
    if num_channels % positive_int("norm_groups", num_groups):
        raise ValueError(f"norm_groups {num_groups} does not divide the channel count {num_channels}")


def group_norm(num_groups: int, num_channels: int, *, affine: bool = True) -> nn.GroupNorm:
    """``nn.GroupNorm`` with a clear error when the groups do not divide the channels."""
    check_groups(num_groups, num_channels)
    return nn.GroupNorm(num_groups, num_channels, eps=1e-6, affine=affine)


class ConditionalGroupNorm(nn.Module):
    """GroupNorm whose scale and shift come from an embedding through a zero-initialised linear.

    Args:
        num_groups: GroupNorm groups (must divide ``num_channels``).
        num_channels: channels C of the input.
        embed_dim: width E of the conditioning embedding.
    """

    def __init__(self, num_groups: int, num_channels: int, *, embed_dim: int):
        super().__init__()
        self.num_channels = num_channels
        self.norm = group_norm(num_groups, num_channels, affine=False)
        self.context_mlp = nn.Sequential(nn.SiLU(), nn.Linear(embed_dim, 2 * num_channels))
        nn.init.zeros_(self.context_mlp[1].weight)
        nn.init.zeros_(self.context_mlp[1].bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        c = self.num_channels
        if x.ndim not in (4, 5) or x.shape[1] != c:
            raise ValueError(
                f"expected (B, {c}, H, W) or (B, {c}, F, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        params = self.context_mlp(emb)
        if params.ndim == 2:  # (B, 2C): one scale/shift per sample
            if params.shape[0] != x.shape[0]:
                raise ValueError(f"embedding batch {tuple(emb.shape)} does not match input {tuple(x.shape)}")
            params = params.reshape(*params.shape, *([1] * (x.ndim - 2)))  # (B, 2C, 1, 1[, 1])
        elif params.ndim == 3 and x.ndim == 5:  # (B, F, 2C): one per frame
            if params.shape[:2] != (x.shape[0], x.shape[2]):
                raise ValueError(f"per-frame embedding {tuple(emb.shape)} does not match video {tuple(x.shape)}")
            params = rearrange(params, "b f c -> b c f 1 1")
        else:
            raise ValueError(f"embedding must be (B, E) or, for video, (B, F, E); got shape {tuple(emb.shape)}")
        scale, shift = params.chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift
