"""Kandinsky 3.0 attention block: conditional norm, attention, conditional norm, feed-forward.

    x = x + Attention(CondNorm(x, t))          # self-attention, or cross-attention to the text
    x = x + FeedForward(CondNorm(x, t))        # 1x1 convs, width x expansion_ratio, SiLU

(Kandinsky 3.0 ``AttentionBlock``; a pre-norm Transformer layer, Vaswani et al. 2017, on the
H*W pixels as tokens.) Used for self-attention (``context_dim=None``) and for text
cross-attention with a key padding mask.

Images: x (N, C, H, W). For video models frames are folded into N = B*F, and
``temporal_layers["attention"]`` (empty for images) may hold a video layer run right after the
spatial attention: FusionFrames' "temporal attention inside the spatial block" variant.

Taught in notebooks 05 and 07 (notebooks/05_unet_blocks.ipynb, notebooks/07_temporal_layers_vs_blocks.ipynb).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from minifusion.checks import positive_int
from minifusion.nn.attention import Attention
from minifusion.nn.normalization import ConditionalGroupNorm
from minifusion.nn.temporal import apply_to_frames


class AttentionBlock(nn.Module):
    """Pre-norm attention + feed-forward on the pixels of an image.

    Args:
        channels: width C.
        embed_dim: time-embedding width (conditions both norms).
        context_dim: text width for cross-attention; None = self-attention.
        head_dim: width of each attention head (heads = channels // head_dim).
        norm_groups: GroupNorm groups.
        expansion_ratio: feed-forward hidden width = channels * expansion_ratio.
    """

    def __init__(
        self,
        channels: int,
        *,
        embed_dim: int,
        context_dim: int | None = None,
        head_dim: int = 32,
        norm_groups: int = 8,
        expansion_ratio: int = 4,
    ):
        super().__init__()
        if channels % positive_int("attention_head_dim", head_dim):
            raise ValueError(f"attention_head_dim {head_dim} does not divide the width {channels}")
        self.channels = channels
        self.in_norm = ConditionalGroupNorm(norm_groups, channels, embed_dim=embed_dim)
        self.attention = Attention(
            channels, cross_attention_dim=context_dim, heads=channels // head_dim, dim_head=head_dim, out_bias=False
        )
        self.out_norm = ConditionalGroupNorm(norm_groups, channels, embed_dim=embed_dim)
        hidden = channels * expansion_ratio
        self.feed_forward = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.SiLU(), nn.Conv2d(hidden, channels, 1, bias=False)
        )
        self.temporal_layers = nn.ModuleDict()  # {"attention": video layer}; empty for images

    @property
    def is_cross_attention(self) -> bool:
        return self.attention.is_cross_attention

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        *,
        num_frames: int = 1,
        temporal_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (N, C, H, W), emb (N, E), context (N, L, D), context_mask (N, L) -> (N, C, H, W)."""
        _, _, height, width = x.shape
        tokens = rearrange(self.in_norm(x, emb), "n c h w -> n (h w) c")
        if not self.is_cross_attention:
            context, context_mask = None, None
        out = self.attention(tokens, context, context_mask)  # (N, H*W, C)
        x = x + rearrange(out, "n (h w) c -> n c h w", h=height, w=width)
        if "attention" in self.temporal_layers:
            x = apply_to_frames(self.temporal_layers["attention"], x, num_frames, temporal_emb)
        return x + self.feed_forward_tokens(self.out_norm(x, emb))

    def feed_forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``self.feed_forward(x)`` computed as two matrix products on the H*W tokens: the same result.

        A 1x1 conv is a linear layer on each pixel; as (N*H*W, C) @ (C, 4C) it runs about 1.5x
        faster on the CPU than oneDNN's 1x1 conv on NCHW at these sizes (benchmarks/bench_unet.py).
        """
        n, c, height, width = x.shape
        up, act, down = self.feed_forward
        tokens = rearrange(x, "n c h w -> n (h w) c")
        hidden = act(F.linear(tokens, up.weight.flatten(1)))  # (N, H*W, 4C)
        out = F.linear(hidden, down.weight.flatten(1))  # (N, H*W, C)
        return rearrange(out, "n (h w) c -> n c h w", h=height, w=width)
