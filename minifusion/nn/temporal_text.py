"""Temporal layers that read the caption: per-token text attention and motion-biased attention.

Levers of the motion study (docs/motion.md), departures from FusionFrames' four temporal variants
(arXiv 2311.13073, Table 1): the paper's temporal layers see the text only through their norm's
pooled scale and shift. Both layers here take the text tokens (B, L, D) besides the video
(``takes_text``; the U-Net passes them) and start as a zero branch, like every temporal part.

Taught in notebook 08 (notebooks/08_keyframes.ipynb).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from minifusion.checks import check_number
from minifusion.nn.attention import scaled_dot_product_attention
from minifusion.nn.temporal import (
    SpatioTemporalAttention,
    _heads,
    _Norm,
    _zero,
    check_video,
    frame_code,
    pixel_code,
)


def check_text_tokens(context, batch: int, context_dim: int, module: str) -> None:
    if not torch.is_tensor(context) or context.ndim != 3 or context.shape[0] != batch or context.shape[2] != context_dim:
        shape = tuple(context.shape) if torch.is_tensor(context) else type(context).__name__
        raise ValueError(f"{module} needs text tokens (B, L, {context_dim}) with B = {batch}, got {shape}")


def token_offsets(f: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(N, N, 3) with N = F*H*W: (frame, row, column) of every query token minus that of every key token."""
    grid = torch.stack(torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w), indexing="ij"), -1)
    grid = grid.reshape(-1, 3).to(like)  # (N, 3), tokens in (frame, row, column) order
    return grid[:, None, :] - grid[None, :, :]


class MotionBiasedAttention(SpatioTemporalAttention):
    """Full spatio-temporal attention with a text-conditioned relative-position bias: attend along the path.

    "Moves right" means: the object at keyframe k is where it was at keyframe k' shifted by (k - k') v.
    Each head reads a velocity v_h (2-D, latent pixels per keyframe) from the masked mean of the text
    tokens and adds to the logit of query (k, p) and key (k', p') the bias
    ``-alpha_h * |(p - p') - (k - k') v_h|^2``, so a token looks for its content where the prompted motion
    says it was (or will be). ``alpha = exp(log_alpha)`` stays positive and starts at ``locality``
    (a prior toward the same place in every keyframe); ``to_velocity`` starts random, so the velocity
    already depends on the words. Only the output is zero-initialised (the layer starts as the
    identity): a zero ``alpha`` and a zero velocity head as well made a saddle that 2500 training
    steps did not leave (docs/motion.md). Needs the text (``takes_text``).
    """

    takes_text = True

    def __init__(self, channels: int, context_dim: int, *, locality: float = 1.0, **kwargs):
        super().__init__(channels, **kwargs)
        check_number("locality", locality, minimum=0, exclusive_minimum=True)
        self.context_dim = context_dim
        self.to_velocity = nn.Linear(context_dim, 2 * self.heads)  # default init: text-dependent from the start
        self.log_alpha = nn.Parameter(torch.full((self.heads,), math.log(locality)))

    @property
    def alpha(self) -> torch.Tensor:
        """(heads,) the bias strength per head, always positive."""
        return self.log_alpha.exp()

    def velocity(self, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        """Text tokens (B, L, D) -> each head's velocity (B, heads, 2) as (rows, columns) per keyframe."""
        if context_mask is None:
            pooled = context.mean(dim=1)
        else:
            m = context_mask.to(context.dtype)[:, :, None]
            pooled = (context * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
        return rearrange(self.to_velocity(pooled), "b (n two) -> b n two", two=2)

    def motion_bias(self, velocity: torch.Tensor, f: int, h: int, w: int) -> torch.Tensor:
        """(B, heads, 2) -> the logit bias (B, heads, F*H*W, F*H*W) over (frame, row, column) tokens."""
        d = token_offsets(f, h, w, velocity)  # (N, N, 3): query - key (frame, row, column)
        gap = d[None, None, :, :, 1:] - d[None, None, :, :, :1] * velocity[:, :, None, None, :]  # (B, n, N, N, 2)
        return -self.alpha[None, :, None, None] * gap.pow(2).sum(-1)

    def motion_bias_factored(self, velocity: torch.Tensor, f: int, h: int, w: int) -> torch.Tensor:
        """``motion_bias`` as one matrix product (the speed rewrite the forward uses; tested to agree).

        Expanding the square, ``|dp - dk v|^2 = |dp|^2 - 2 dk (dp . v) + dk^2 |v|^2``: a sum of four fixed
        (N, N) maps weighted by per-head numbers, so the (B, heads, N, N, 2) gap is never built (at the
        8x8 level of 8 keyframes about 9x faster forward and backward: benchmarks/motion_bias_speed.py).
        """
        d = token_offsets(f, h, w, velocity)  # (N, N, 3): query - key (frame, row, column)
        dk, dp = d[..., :1], d[..., 1:]
        maps = torch.stack([dp.pow(2).sum(-1), (dk * dp)[..., 0], (dk * dp)[..., 1], dk[..., 0].pow(2)])  # (4, N, N)
        alpha, velocity = self.alpha[None, :], velocity.float()  # (1, heads), (B, heads, 2)
        weights = torch.stack([-alpha.expand(velocity.shape[:2]), 2 * alpha * velocity[..., 0],
                               2 * alpha * velocity[..., 1], -alpha * velocity.pow(2).sum(-1)], dim=-1)  # (B, n, 4)
        with torch.autocast(velocity.device.type, enabled=False):  # float32: the terms (up to ~100) cancel
            return torch.einsum("bnm,mij->bnij", weights, maps.float())

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        check_video(x, self.channels, type(self).__name__)
        b, _, f, h, w = x.shape
        check_text_tokens(context, b, self.context_dim, type(self).__name__)
        tokens = rearrange(self.norm(x, emb), "b c f h w -> b f (h w) c")
        tokens = tokens + self.frame_code(f, x)[:, None, :] + self.pixel_code(h, w, x)
        tokens = rearrange(tokens, "b f q c -> b (f q) c")  # (B, N, C)
        q, k, v = rearrange(self.to_qkv(tokens), "b l (three n d) -> three b n l d", three=3, n=self.heads)
        bias = self.motion_bias_factored(self.velocity(context, context_mask), f, h, w)  # = motion_bias, faster
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B, heads, N, d)
        out = self.to_out(rearrange(out, "b n l d -> b l (n d)"))
        return rearrange(out, "b (f h w) c -> b c f h w", f=f, h=h, w=w)


class TemporalTextAttention(nn.Module):
    """Cross-attention from every pixel of every keyframe to the text tokens, as that keyframe reads them.

    The per-token text path for the temporal parts (a lever of the motion study, docs/motion.md):
    in the paper's design the temporal layers see the text only through their norm's pooled scale
    and shift, the same at every pixel, and the only per-token path - the spatial cross-attention -
    is frozen from still-image training, where a direction word says nothing.

    Placing an object along a path needs a three-way interaction - word, keyframe, pixel ("right"
    at keyframe k means column c0 + k v) - and a plain cross-attention with frame and pixel codes
    added to its queries only gives attention logits that are sums of a (word, pixel) and a (frame,
    pixel) term. So, with ``frame_text=True`` (and ``embed_dim`` set), each keyframe first reads the
    caption through its own lens: its text tokens are scaled and shifted by its embedding (time + frame position + pooled
    text, (B, F, E)), ``context_k = context * (1 + a_k) + b_k`` (zero-initialised, so it starts as the
    plain caption), and the keys and values of keyframe k come from ``context_k``; on the simplest
    motion case both forms learned the word equally fast (docs/motion.md), so the plain one is the
    default. The queries carry the 2-D pixel code (and the frame code). Zero-initialised output: ``x + branch(x)`` starts as the
    identity.
    """

    takes_text = True

    def __init__(
        self,
        channels: int,
        context_dim: int,
        *,
        num_heads: int | None = None,
        head_dim: int | None = None,
        norm_groups: int = 8,
        embed_dim: int | None = None,
        zero_init: bool = True,
        frame_text: bool = False,
    ):
        super().__init__()
        self.channels, self.context_dim = channels, context_dim
        self.heads, self.head_dim = _heads(channels, num_heads, head_dim)
        inner = self.heads * self.head_dim
        self.norm = _Norm(channels, norm_groups, embed_dim)
        self.frame_text = None  # per-keyframe scale and shift of the text tokens (frame_text=False: none)
        if embed_dim is not None and frame_text:
            self.frame_text = nn.Sequential(nn.SiLU(), nn.Linear(embed_dim, 2 * context_dim))
            _zero(self.frame_text[1])
        self.to_q = nn.Linear(channels, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, channels)
        if zero_init:
            _zero(self.to_out)

    def frame_context(self, context: torch.Tensor, emb: torch.Tensor | None, num_frames: int) -> torch.Tensor:
        """Text tokens (B, L, D) -> each keyframe's reading of them, (B, F, L, D)."""
        context = repeat(context, "b l d -> b f l d", f=num_frames)
        if self.frame_text is None:
            return context
        if emb.ndim == 2:  # (B, E): the same for every frame
            emb = repeat(emb, "b e -> b f e", f=num_frames)
        scale, shift = self.frame_text(emb).chunk(2, dim=-1)  # (B, F, D) each
        return context * (1 + scale[:, :, None, :]) + shift[:, :, None, :]

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_video(x, self.channels, type(self).__name__)
        b, _, f, h, w = x.shape
        check_text_tokens(context, b, self.context_dim, type(self).__name__)
        tokens = rearrange(self.norm(x, emb), "b c f h w -> b f (h w) c")
        tokens = tokens + frame_code(f, self.channels, x)[:, None, :] + pixel_code(h, w, self.channels, x)  # (B, F, HW, C)
        text = self.frame_context(context, emb, f)  # (B, F, L, D)
        q = rearrange(self.to_q(tokens), "b f q (n d) -> (b f) n q d", n=self.heads)
        k, v = (rearrange(proj(text), "b f l (n d) -> (b f) n l d", n=self.heads) for proj in (self.to_k, self.to_v))
        mask = None if context_mask is None else repeat(context_mask.bool(), "b l -> (b f) l", f=f)
        out = scaled_dot_product_attention(q, k, v, mask)  # (B*F, heads, H*W, d)
        out = self.to_out(rearrange(out, "(b f) n q d -> b f q (n d)", f=f))
        return rearrange(out, "b f (h w) c -> b c f h w", h=h, w=w)
