"""Multi-head attention with a key padding mask, its reference implementation, attention pooling.

Attention (Vaswani et al. 2017, eq. 1): softmax(Q K^T / sqrt(d)) V per head. The fast path is
``F.scaled_dot_product_attention``; ``attention_reference`` writes the softmax out explicitly and
the tests assert both agree (with and without a mask), as nanoGPT does.

Key padding mask: (B, L) with True / 1 = a real token, False / 0 = padding, as diffusers'
``encoder_attention_mask``. Padded keys get zero attention weight. A row with no real token is an
error (its softmax would be 0/0).

Attention pooling (Kandinsky 3.0's ``AttentionPooling``): one query, the masked mean of the text
tokens, attends over the tokens; the result is projected to the time-embedding width and added to
the time embedding, so every conditional GroupNorm of the U-Net also sees the prompt.

Taught in notebooks 05 and 06 (notebooks/05_unet_blocks.ipynb, notebooks/06_text_to_image.ipynb).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from minifusion.checks import positive_int


def _register_cpu_sdpa_flops() -> None:
    """Teach ``torch.utils.flop_counter`` the CPU attention kernel.

    The counter knows the CUDA SDPA kernels but not ``_scaled_dot_product_flash_attention_for_cpu``
    (torch 2.13), so on a CPU attention FLOPs were silently left out of ``summary()`` and the
    benchmarks. The CPU kernel does the same two matrix products, so the same formulas apply.
    """
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    formulas = {
        "_scaled_dot_product_flash_attention_for_cpu": getattr(fc, "sdpa_flop", None),
        "_scaled_dot_product_flash_attention_for_cpu_backward": getattr(fc, "sdpa_backward_flop", None),
    }
    for name, formula in formulas.items():
        try:
            op = getattr(aten, name)
        except (AttributeError, RuntimeError):
            continue
        if formula is not None and op not in fc.flop_registry:
            fc.register_flop_formula(op, get_raw=True)(formula)  # formula is already shape-wrapped


_register_cpu_sdpa_flops()


def check_key_padding_mask(mask: torch.Tensor | None, batch: int, length: int) -> torch.Tensor | None:
    """Validate a (B, L) keep-mask (bool or 0/1 numbers) and return it as bool; None passes."""
    if mask is None:
        return None
    if not torch.is_tensor(mask) or mask.shape != (batch, length):
        shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
        raise ValueError(f"attention mask must have shape (B, L) = ({batch}, {length}), got {shape}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("attention mask must be bool or hold only 0 and 1 (1 = real token)")
        mask = mask != 0
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"attention mask hides every token of batch items {empty}; keep at least one")
    return mask


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, heads, Lq, d) x (B, heads, Lk, d) -> (B, heads, Lq, d); mask (B, Lk) bool, True = keep."""
    attn_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]  # (B, 1, 1, Lk)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


def attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The same as ``scaled_dot_product_attention``, softmax written out (float32)."""
    scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, heads, Lq, Lk)
    if key_padding_mask is not None:
        scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
    weights = scores.softmax(dim=-1)
    return (weights @ v.float()).to(q.dtype)


class Attention(nn.Module):
    """Multi-head self- or cross-attention on token sequences (diffusers' ``Attention`` names).

    Args:
        query_dim: width of the query tokens (and of the output unless ``out_dim``).
        cross_attention_dim: width of the context tokens; None = self-attention.
        heads: number of heads.
        dim_head: width of each head.
        out_dim: output width (default ``query_dim``).
        out_bias: bias on the output projection.
        zero_init_out: zero the output projection (the layer outputs 0 at init).
    """

    def __init__(
        self,
        query_dim: int,
        *,
        cross_attention_dim: int | None = None,
        heads: int = 1,
        dim_head: int = 32,
        out_dim: int | None = None,
        out_bias: bool = True,
        zero_init_out: bool = False,
    ):
        super().__init__()
        positive_int("heads", heads)
        positive_int("dim_head", dim_head)
        inner = heads * dim_head
        context_dim = query_dim if cross_attention_dim is None else cross_attention_dim
        self.heads = heads
        self.is_cross_attention = cross_attention_dim is not None
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, out_dim or query_dim, bias=out_bias)
        if zero_init_out:
            nn.init.zeros_(self.to_out.weight)
            if out_bias:
                nn.init.zeros_(self.to_out.bias)
        self.use_reference = False  # True: explicit softmax instead of SDPA (for teaching / checks)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, query_dim), context (B, L, cross_attention_dim) or None, mask (B, L) -> (B, N, out)."""
        if context is None:
            if self.is_cross_attention:
                raise ValueError("this cross-attention layer needs a context (B, L, D), got None")
            context = x
        elif context.shape[0] != x.shape[0]:
            raise ValueError(f"context batch {tuple(context.shape)} does not match queries {tuple(x.shape)}")
        mask = check_key_padding_mask(attention_mask, context.shape[0], context.shape[1])
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k = rearrange(self.to_k(context), "b l (h d) -> b h l d", h=self.heads)
        v = rearrange(self.to_v(context), "b l (h d) -> b h l d", h=self.heads)
        attend = attention_reference if self.use_reference else scaled_dot_product_attention
        out = rearrange(attend(q, k, v, mask), "b h n d -> b n (h d)")
        return self.to_out(out)


class AttentionPooling(nn.Module):
    """Pool text tokens (B, L, D) into one vector and add it to the time embedding (B, E).

    The query is the masked mean of the tokens; it attends over the (masked) tokens; the result
    is projected to width E (Kandinsky 3.0, ``AttentionPooling``).
    """

    def __init__(self, embed_dim: int, context_dim: int, *, head_dim: int = 32):
        super().__init__()
        heads = max(1, context_dim // head_dim)
        if context_dim % heads:
            raise ValueError(f"context_dim {context_dim} is not divisible into heads of width {head_dim}")
        self.attention = Attention(
            context_dim, cross_attention_dim=context_dim, heads=heads, dim_head=context_dim // heads,
            out_dim=embed_dim, out_bias=False,
        )

    def pool(self, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) tokens -> (B, E) pooled summary."""
        mask_bool = check_key_padding_mask(mask, context.shape[0], context.shape[1])
        if mask_bool is None:
            query = context.mean(dim=1, keepdim=True)  # (B, 1, D)
        else:
            w = mask_bool.to(context.dtype)[..., None]  # (B, L, 1)
            query = (context * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True)
        return self.attention(query, context, mask_bool).squeeze(1)

    def forward(self, time_embed: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return time_embed + self.pool(context, mask)
