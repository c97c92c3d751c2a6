"""Attention: SDPA vs explicit softmax, key padding masks, attention pooling, attention block."""

from __future__ import annotations

import pytest
import torch

from minifusion.nn import (
    Attention,
    AttentionBlock,
    AttentionPooling,
    attention_reference,
    scaled_dot_product_attention,
)


def _qkv(b=2, h=2, n=5, l=7, d=4):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, h, n, d, generator=g), torch.randn(b, h, l, d, generator=g),
            torch.randn(b, h, l, d, generator=g))


def test_sdpa_equals_explicit_softmax_without_and_with_mask():
    q, k, v = _qkv()
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v), attention_reference(q, k, v))
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [1, 0, 1, 1, 1, 1, 0]], dtype=torch.bool)
    fast, ref = scaled_dot_product_attention(q, k, v, mask), attention_reference(q, k, v, mask)
    torch.testing.assert_close(fast, ref)
    # a masked key is as good as a removed key
    torch.testing.assert_close(ref[:1], attention_reference(q[:1], k[:1, :, :3], v[:1, :, :3]))


def test_attention_module_fast_and_reference_agree_and_ignore_padding():
    torch.manual_seed(0)
    attn = Attention(8, cross_attention_dim=6, heads=2, dim_head=4)
    x, ctx = torch.randn(2, 5, 8), torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    fast = attn(x, ctx, mask)
    attn.use_reference = True
    torch.testing.assert_close(attn(x, ctx, mask), fast)
    attn.use_reference = False
    ctx2 = ctx.clone()
    ctx2[0, 2:] = 100.0  # padding changes nothing
    torch.testing.assert_close(attn(x, ctx2, mask), fast)


def test_mask_validation():
    attn = Attention(8, cross_attention_dim=6, heads=2, dim_head=4)
    x, ctx = torch.randn(2, 5, 8), torch.randn(2, 4, 6)
    with pytest.raises(ValueError, match="every token of batch items \\[1\\]"):
        attn(x, ctx, torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="only 0 and 1"):
        attn(x, ctx, torch.tensor([[1, 2, 0, 0], [1, 1, 1, 1]]))
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3\)"):
        attn(x, ctx, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs a context"):
        attn(x)


def test_attention_pooling_uses_masked_mean_query_and_ignores_padding():
    torch.manual_seed(0)
    pool = AttentionPooling(12, 8, head_dim=4)
    temb, ctx = torch.randn(2, 12), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = pool(temb, ctx, mask)
    # manual: query = mean of the 3 real tokens, attention over them only
    expected0 = temb[0] + pool.attention(ctx[:1, :3].mean(1, keepdim=True), ctx[:1, :3])[0, 0]
    torch.testing.assert_close(out[0], expected0)
    ctx2 = ctx.clone()
    ctx2[0, 3:] = -50.0
    torch.testing.assert_close(pool(temb, ctx2, mask), out)


def test_self_attention_block_is_equivariant_to_pixel_permutation():
    torch.manual_seed(0)
    block = AttentionBlock(8, embed_dim=6, head_dim=4, norm_groups=2)
    x, e = torch.randn(2, 8, 4, 4), torch.randn(2, 6)
    perm = torch.randperm(16)
    xp = x.flatten(2)[:, :, perm].reshape_as(x)
    torch.testing.assert_close(block(xp, e).flatten(2), block(x, e).flatten(2)[:, :, perm])


def test_feed_forward_on_tokens_equals_the_1x1_convolutions():
    # the block runs its feed-forward as matrix products on the pixels (faster on the CPU); the
    # nn.Sequential of 1x1 convs holds the weights and is the definition it must agree with
    torch.manual_seed(0)
    block = AttentionBlock(8, embed_dim=6, head_dim=4, norm_groups=2)
    x = torch.randn(3, 8, 4, 5, requires_grad=True)
    ref, out = block.feed_forward(x), block.feed_forward_tokens(x)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    w = block.feed_forward[0].weight
    for a, b in zip(torch.autograd.grad(out, [x, w], grad), torch.autograd.grad(ref, [x, w], grad)):
        torch.testing.assert_close(a, b)


def test_cross_attention_block_ignores_padded_tokens_and_head_dim_error():
    torch.manual_seed(0)
    block = AttentionBlock(8, embed_dim=6, context_dim=5, head_dim=4, norm_groups=2)
    x, e, ctx = torch.randn(2, 8, 4, 4), torch.randn(2, 6), torch.randn(2, 3, 5)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = block(x, e, ctx, mask)
    ctx2 = ctx.clone()
    ctx2[0, 2] = 9.0
    torch.testing.assert_close(block(x, e, ctx2, mask), out)
    assert not torch.allclose(block(x, e, ctx2), out)
    with pytest.raises(ValueError, match="attention_head_dim 3"):
        AttentionBlock(8, embed_dim=6, head_dim=3, norm_groups=2)


def test_flop_counter_counts_attention_on_cpu_like_the_explicit_softmax():
    from torch.utils.flop_counter import FlopCounterMode

    attn = Attention(16, heads=2, dim_head=8)
    x = torch.randn(1, 10, 16)
    counts = []
    for reference in (False, True):
        attn.use_reference = reference
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            attn(x)
        counts.append(counter.get_total_flops())
    linear = 4 * 2 * 10 * 16 * 16
    assert counts[0] == counts[1] == linear + 2 * (2 * 2 * 10 * 10 * 8)
