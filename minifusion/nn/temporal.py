"""Temporal layers: 3x1x1 conv, 3x3x3 conv, per-pixel and windowed temporal attention, alpha merge.

FusionFrames (arXiv 2311.13073, section 3.1, Table 1) adds time to a frozen text-to-image U-Net
and compares four ways of doing it; these are its parts. Every module here takes a video
``x`` of shape (B, C, F, H, W) and returns the same shape.

The conv and attention modules are *branches*: they return only the update, and their output
projection is zero-initialised (``zero_init=True``), so at init the branch outputs 0 and
``x + branch(x)`` is the identity - the video model starts as the image model applied frame by
frame. ``TemporalResidual`` wraps a branch as ``x + branch(x)``.

Alpha merge (Video LDM, Blattmann et al. 2023, eq. 2; FusionFrames' interpolation network):
``(1 - alpha) * spatial + alpha * temporal`` with a learned scalar alpha starting at 0. Use it
with a branch built with ``zero_init=False``: alpha = 0 already makes the identity, and a
zero-initialised branch times a zero alpha would give neither of them a gradient.
``AlphaMergedTemporal`` does exactly this: ``merge(x, x + branch(x))``.

Optional conditioning: with ``embed_dim`` set, the branch's GroupNorm is a
``ConditionalGroupNorm`` and ``forward(x, emb)`` takes emb (B, E) or per frame (B, F, E) (the
keyframe model passes time embedding + frame-position embedding). Without it, ``emb`` must be
None.

Taught in notebooks 07 and 10 (notebooks/07_temporal_layers_vs_blocks.ipynb, notebooks/10_video_decoder.ipynb).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from minifusion.checks import positive_int
from minifusion.nn.attention import scaled_dot_product_attention
from minifusion.nn.embeddings import sinusoidal_embedding
from minifusion.nn.normalization import ConditionalGroupNorm, group_norm


def check_video(x: torch.Tensor, channels: int, module: str) -> None:
    if not torch.is_tensor(x) or x.ndim != 5 or x.shape[1] != channels:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{module} expects a video (B, {channels}, F, H, W), got shape {shape}")


def _check_kernel(kernel_size: int) -> None:
    if positive_int("kernel_size", kernel_size, note="and odd") % 2 == 0:
        raise ValueError(f"kernel_size {kernel_size} is not allowed; it must be odd")


class _Norm(nn.Module):
    """GroupNorm, or ConditionalGroupNorm when ``embed_dim`` is given."""

    def __init__(self, channels: int, norm_groups: int, embed_dim: int | None):
        super().__init__()
        self.conditional = embed_dim is not None
        if self.conditional:
            self.norm = ConditionalGroupNorm(norm_groups, channels, embed_dim=embed_dim)
        else:
            self.norm = group_norm(norm_groups, channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        if self.conditional:
            if emb is None:
                raise ValueError("this temporal layer is conditional (embed_dim set): pass emb (B, E) or (B, F, E)")
            return self.norm(x, emb)
        if emb is not None:
            raise ValueError("this temporal layer has no embed_dim, so it takes no emb; got one")
        return self.norm(x)


def conv_over_frames(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a stride-1, "same"-padded Conv3d, computed with 2-D convolutions: the same result.

    On the CPU PyTorch runs 3-D convolutions on a slow generic path (im2col + one matrix product)
    and 2-D ones with oneDNN; at this project's sizes the 2-D route is 1.5-5x faster
    (``python -m minifusion bench``). x (B, C, F, H, W) -> (B, C_out, F, H, W).

    - a (k, 1, 1) kernel only mixes frames: flatten H, W into one axis and run a (k, 1) conv2d on
      (B, C, F, H*W) (a 1x1x1 kernel is the case k = 1);
    - a (k, kh, kw) kernel: fold the frames into the batch, run one conv2d whose output stacks the
      k frame taps, (B*F, k*C_out, H, W), and add tap j of frame f + j - k//2 into frame f (zero
      beyond the clip, as the zero padding of the 3-D conv).
    """
    k, kh, kw = conv.kernel_size
    if conv.stride != (1, 1, 1) or conv.dilation != (1, 1, 1) or conv.groups != 1 or \
            conv.padding != (k // 2, kh // 2, kw // 2):
        return conv(x)
    b, c, f, h, w = x.shape
    if kh == kw == 1:
        weight = conv.weight.flatten(-2)  # (C_out, C_in, k, 1, 1) -> (C_out, C_in, k, 1)
        y = F.conv2d(x.reshape(b, c, f, h * w), weight, conv.bias, padding=(k // 2, 0))
        return y.reshape(b, -1, f, h, w)
    weight = rearrange(conv.weight, "o i k kh kw -> (k o) i kh kw")
    taps = F.conv2d(rearrange(x, "b c f h w -> (b f) c h w"), weight, padding=(kh // 2, kw // 2))
    taps = rearrange(taps, "(b f) (k o) h w -> b k o f h w", b=b, k=k)
    taps = F.pad(taps, (0, 0, 0, 0, k // 2, k // 2))  # zero frames beyond both ends
    out = sum(taps[:, j, :, j:j + f] for j in range(k))  # frame f gets tap j of frame f + j - k//2
    return out if conv.bias is None else out + conv.bias[:, None, None, None]


def _zero(module: nn.Module) -> None:
    for p in module.parameters():
        nn.init.zeros_(p)


class TemporalConv1d(nn.Module):
    """Norm, SiLU, conv with a (k, 1, 1) kernel: mixes each pixel with itself in nearby frames.

    Zero padding along F, so the first and last frames see zeros beyond the clip.
    """

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 3,
        norm_groups: int = 8,
        embed_dim: int | None = None,
        zero_init: bool = True,
    ):
        super().__init__()
        _check_kernel(kernel_size)
        self.channels = channels
        self.norm = _Norm(channels, norm_groups, embed_dim)
        self.act = nn.SiLU()
        self.conv = nn.Conv3d(channels, channels, (kernel_size, 1, 1), padding=(kernel_size // 2, 0, 0))
        if zero_init:
            _zero(self.conv)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        check_video(x, self.channels, type(self).__name__)
        h = self.act(self.norm(x, emb))  # (B, C, F, H, W)
        if h.device.type != "cpu":
            return self.conv(h)  # the paper's (k, 1, 1) Conv3d
        return conv_over_frames(self.conv, h)  # on the CPU the same convolution as a 2-D one: faster, equal


def conv3d_hidden_channels(channels: int, kernel_size: int = 3) -> int:
    """Hidden width h for which TemporalConv3d has about as many weights as TemporalConv1d.

    Matches C*h + h*h*k^3 + h*C (shrink, k x k x k conv, restore) to C*C*k (the 1-D conv):
    for k = 3, h is about 0.3 C.
    """
    target = channels * channels * kernel_size + channels
    cost = lambda h: channels * h + h + h * h * kernel_size**3 + h + h * channels + channels  # noqa: E731
    return min(range(1, channels + 1), key=lambda h: abs(cost(h) - target))


class TemporalConv3d(nn.Module):
    """Norm, SiLU, 1x1x1 shrink to ``hidden_channels``, k x k x k conv, SiLU, 1x1x1 restore.

    The linear shrink/restore keep the parameter count near TemporalConv1d's at the same width
    (``hidden_channels`` defaults to ``conv3d_hidden_channels(channels)``); FusionFrames'
    Conv3dAttn1dBlocks variant.
    """

    def __init__(
        self,
        channels: int,
        *,
        hidden_channels: int | None = None,
        kernel_size: int = 3,
        norm_groups: int = 8,
        embed_dim: int | None = None,
        zero_init: bool = True,
    ):
        super().__init__()
        _check_kernel(kernel_size)
        hidden = conv3d_hidden_channels(channels, kernel_size) if hidden_channels is None else hidden_channels
        positive_int("hidden_channels", hidden)
        self.channels = channels
        self.norm = _Norm(channels, norm_groups, embed_dim)
        self.act = nn.SiLU()
        self.shrink = nn.Conv3d(channels, hidden, 1)
        self.conv = nn.Conv3d(hidden, hidden, kernel_size, padding=kernel_size // 2)
        self.restore = nn.Conv3d(hidden, channels, 1)
        if zero_init:
            _zero(self.restore)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        check_video(x, self.channels, type(self).__name__)
        h = self.act(self.norm(x, emb))  # (B, C, F, H, W)
        if h.device.type != "cpu":  # the paper's k x k x k Conv3d between 1x1x1 shrink and restore
            return self.restore(self.act(self.conv(self.shrink(h))))
        # on the CPU the same convolutions as 2-D ones: faster, equal (conv_over_frames)
        h = conv_over_frames(self.shrink, h)
        return conv_over_frames(self.restore, self.act(conv_over_frames(self.conv, h)))


def _heads(channels: int, num_heads: int | None, head_dim: int | None) -> tuple[int, int]:
    if num_heads is None and head_dim is None:
        head_dim = 32
    if num_heads is None:
        if channels % head_dim:
            raise ValueError(f"channels {channels} are not divisible by head_dim {head_dim}")
        return channels // head_dim, head_dim
    if head_dim is None:
        if channels % num_heads:
            raise ValueError(f"channels {channels} are not divisible by num_heads {num_heads}")
        return num_heads, channels // num_heads
    return num_heads, head_dim


def frame_code(num_frames: int, channels: int, like: torch.Tensor) -> torch.Tensor:
    """(F, channels): fixed sinusoidal code of the frame index, so attention knows frame order."""
    code = sinusoidal_embedding(torch.arange(num_frames, device=like.device), channels + channels % 2)
    return code[:, :channels].to(like.dtype)


class _TokenAttention(nn.Module):
    """Norm, then multi-head self-attention over token groups, zero-initialised output."""

    def __init__(self, channels, num_heads, head_dim, norm_groups, embed_dim, zero_init):
        super().__init__()
        self.channels = channels
        self.heads, self.head_dim = _heads(channels, num_heads, head_dim)
        inner = self.heads * self.head_dim
        self.norm = _Norm(channels, norm_groups, embed_dim)
        self.to_qkv = nn.Linear(channels, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, channels)
        if zero_init:
            _zero(self.to_out)

    def attend(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L, C) -> (N, L, C)."""
        q, k, v = rearrange(self.to_qkv(tokens), "n l (three h d) -> three n h l d", three=3, h=self.heads)
        out = scaled_dot_product_attention(q, k, v)  # (N, heads, L, d)
        return self.to_out(rearrange(out, "n h l d -> n l (h d)"))

    def frame_code(self, num_frames: int, x: torch.Tensor) -> torch.Tensor:
        """Fixed sinusoidal code of the frame index (F, C), so attention knows frame order."""
        return frame_code(num_frames, self.channels, x)


class TemporalAttention(_TokenAttention):
    """Per-pixel self-attention over frames: every pixel is a sequence of F tokens.

    A fixed sinusoidal code of the frame index is added to the tokens (as AnimateDiff's
    temporal transformer), so the layer knows frame order.
    """

    def __init__(
        self,
        channels: int,
        *,
        num_heads: int | None = None,
        head_dim: int | None = None,
        norm_groups: int = 8,
        embed_dim: int | None = None,
        zero_init: bool = True,
    ):
        super().__init__(channels, num_heads, head_dim, norm_groups, embed_dim, zero_init)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        check_video(x, self.channels, type(self).__name__)
        b, _, f, h, w = x.shape
        tokens = rearrange(self.norm(x, emb), "b c f h w -> (b h w) f c")
        tokens = tokens + self.frame_code(f, x)  # (b h w, F, C)
        out = self.attend(tokens)
        return rearrange(out, "(b h w) f c -> b c f h w", b=b, h=h, w=w)


class WindowedTemporalAttention(_TokenAttention):
    """Self-attention inside windows of ``window`` x ``window`` pixels and all F frames.

    Tokens per window = window^2 * F (MaxViT-style block attention, FusionFrames'
    Conv1dAttn3dBlocks). Tokens carry the frame-index code plus a learned code of their pixel
    within the window. H and W must be divisible by ``window``.
    """

    def __init__(
        self,
        channels: int,
        *,
        window: int = 2,
        num_heads: int | None = None,
        head_dim: int | None = None,
        norm_groups: int = 8,
        embed_dim: int | None = None,
        zero_init: bool = True,
    ):
        super().__init__(channels, num_heads, head_dim, norm_groups, embed_dim, zero_init)
        positive_int("window", window)
        self.window = window
        self.pixel_code = nn.Parameter(torch.randn(window * window, channels) * 0.02)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        check_video(x, self.channels, type(self).__name__)
        b, _, f, h, w = x.shape
        p = self.window
        if h % p or w % p:
            raise ValueError(
                f"{type(self).__name__}: height and width must be divisible by the window {p}, "
                f"got shape {tuple(x.shape)}"
            )
        tokens = rearrange(self.norm(x, emb), "b c f (h p1) (w p2) -> (b h w) f (p1 p2) c", p1=p, p2=p)
        tokens = tokens + self.frame_code(f, x)[:, None, :] + self.pixel_code  # (N, F, p*p, C)
        out = self.attend(rearrange(tokens, "n f q c -> n (f q) c"))  # (N, F*p*p, C)
        return rearrange(
            out, "(b h w) (f p1 p2) c -> b c f (h p1) (w p2)", b=b, h=h // p, w=w // p, f=f, p1=p, p2=p
        )


def pixel_code(h: int, w: int, channels: int, like: torch.Tensor) -> torch.Tensor:
    """(H * W, channels): sinusoidal code of the row in the first half of the channels, of the column in the rest."""
    half = channels // 2
    rows = sinusoidal_embedding(torch.arange(h, device=like.device), half + half % 2)[:, :half]  # (H, C/2)
    cols = sinusoidal_embedding(torch.arange(w, device=like.device), channels - half + (channels - half) % 2)
    cols = cols[:, : channels - half]  # (W, C - C/2)
    code = torch.cat([repeat(rows, "h c -> h w c", w=w), repeat(cols, "w c -> h w c", h=h)], dim=-1)
    return rearrange(code, "h w c -> (h w) c").to(like.dtype)


class SpatioTemporalAttention(TemporalAttention):
    """Full attention over a video: every pixel of every frame attends to all F * H * W tokens.

    Tokens carry the frame-index code and a fixed 2-D sinusoidal code of their pixel (row and
    column, each in half of the channels), so the layer knows *where* a token is, not only when:
    what placing an object along a path needs. The per-pixel ``TemporalAttention`` sees one pixel
    over time and the conditional norm's scale and shift are the same at every pixel, so the
    temporal parts built from them cannot move an object the frozen spatial layers drew.
    Cost grows with (F H W)^2: meant for the low-resolution levels (8 x 8 x 8 frames = 512 tokens).
    Same constructor and parameters as ``TemporalAttention``; only the tokens differ.
    """

    def pixel_code(self, h: int, w: int, x: torch.Tensor) -> torch.Tensor:
        """(H * W, C): sinusoidal code of the row in the first half of the channels, of the column in the rest."""
        return pixel_code(h, w, self.channels, x)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        check_video(x, self.channels, type(self).__name__)
        b, _, f, h, w = x.shape
        tokens = rearrange(self.norm(x, emb), "b c f h w -> b f (h w) c")
        tokens = tokens + self.frame_code(f, x)[:, None, :] + self.pixel_code(h, w, x)  # (B, F, H*W, C)
        out = self.attend(rearrange(tokens, "b f q c -> b (f q) c"))  # (B, F*H*W, C)
        return rearrange(out, "b (f h w) c -> b c f h w", f=f, h=h, w=w)


class AlphaMerge(nn.Module):
    """``(1 - alpha) * spatial + alpha * temporal`` with a learned scalar ``alpha`` starting at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        if spatial.shape != temporal.shape:
            raise ValueError(f"spatial {tuple(spatial.shape)} and temporal {tuple(temporal.shape)} shapes differ")
        return (1 - self.alpha) * spatial + self.alpha * temporal


class TemporalResidual(nn.Module):
    """``x + branch(x, emb)``: a temporal branch as an identity-at-init layer."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch

    @property
    def takes_text(self) -> bool:
        return getattr(self.branch, "takes_text", False)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, *text: torch.Tensor | None) -> torch.Tensor:
        return x + self.branch(x, emb, *text)  # text: (context, context_mask) for a TemporalTextAttention


class AlphaMergedTemporal(nn.Module):
    """``merge(x, x + branch(x, emb))`` = x + alpha * branch(x): build the branch with zero_init=False."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch
        self.merge = AlphaMerge()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        # merge(x, x + b) = (1 - alpha) x + alpha (x + b) = x + alpha b: one fused op instead of five
        return torch.addcmul(x, self.merge.alpha, self.branch(x, emb))


def apply_to_frames(
    layer: nn.Module, h: torch.Tensor, num_frames: int, emb: torch.Tensor | None = None, *text: torch.Tensor | None
) -> torch.Tensor:
    """Run a video layer on frames folded into the batch: (B*F, C, H, W) -> (B*F, C, H, W).

    ``text``: (context (B, L, D), context_mask (B, L) or None) for a layer that ``takes_text``.
    """
    if h.shape[0] % num_frames:
        raise ValueError(f"batch of folded frames {tuple(h.shape)} is not a multiple of num_frames {num_frames}")
    video = rearrange(h, "(b f) c h w -> b c f h w", f=num_frames)
    return rearrange(layer(video, emb, *text), "b c f h w -> (b f) c h w")
