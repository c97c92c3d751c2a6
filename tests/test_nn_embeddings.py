"""Sinusoidal embeddings and conditional GroupNorm."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from minifusion.nn import ConditionalGroupNorm, FramePositionEmbedding, TimestepEmbedding, sinusoidal_embedding


def test_sinusoidal_matches_formula():
    values = torch.tensor([0.0, 1.0, 2.5, 999.0])
    dim, half = 8, 4
    emb = sinusoidal_embedding(values, dim)
    for n, v in enumerate(values.tolist()):
        for i in range(half):
            w = 10000.0 ** (-i / half)
            assert emb[n, i].item() == pytest.approx(math.sin(v * w), abs=1e-4)
            assert emb[n, half + i].item() == pytest.approx(math.cos(v * w), abs=1e-4)


def test_sinusoidal_any_shape_and_fractional_positions_differ():
    pos = torch.tensor([[0.0, 0.25, 0.5], [4.0, 8.0, 12.0]])
    emb = sinusoidal_embedding(pos, 16)
    assert emb.shape == (2, 3, 16)
    assert not torch.allclose(emb[0, 0], emb[0, 1])


@pytest.mark.parametrize("dim", [0, 3, 7, True])
def test_sinusoidal_rejects_odd_dims(dim):
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(torch.zeros(2), dim)


def test_timestep_embedding_zero_init_and_shapes():
    emb = TimestepEmbedding(8, 16, zero_init=True)
    assert torch.equal(emb(torch.tensor([1.0, 500.0])), torch.zeros(2, 16))
    assert TimestepEmbedding(8, 16)(torch.tensor([1.0, 500.0])).abs().sum() > 0


def test_frame_position_embedding_shape_and_error():
    emb = FramePositionEmbedding(8, 12)
    assert emb(torch.tensor([[0.0, 4.0, 8.0]])).shape == (1, 3, 12)
    with pytest.raises(ValueError, match=r"\(B, F\).*\(3,\)"):
        emb(torch.tensor([0.0, 4.0, 8.0]))


def test_conditional_group_norm_is_plain_group_norm_at_init():
    norm = ConditionalGroupNorm(2, 8, embed_dim=5)
    x, e = torch.randn(3, 8, 4, 4), torch.randn(3, 5)
    torch.testing.assert_close(norm(x, e), F.group_norm(x, 2, eps=1e-6))


def test_conditional_group_norm_formula_image_and_per_frame_video():
    torch.manual_seed(0)
    norm = ConditionalGroupNorm(2, 4, embed_dim=3)
    torch.nn.init.normal_(norm.context_mlp[1].weight)
    torch.nn.init.normal_(norm.context_mlp[1].bias)
    lin = norm.context_mlp[1]
    x, e = torch.randn(2, 4, 5, 5), torch.randn(2, 3)
    scale, shift = lin(F.silu(e)).chunk(2, dim=1)
    expected = F.group_norm(x, 2, eps=1e-6) * (1 + scale[..., None, None]) + shift[..., None, None]
    torch.testing.assert_close(norm(x, e), expected)
    # video with one embedding per frame: statistics over the whole clip, scale/shift per frame
    v, ef = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 3, 3)
    out = norm(v, ef)
    base = F.group_norm(v, 2, eps=1e-6)
    for f in range(3):
        s, b = lin(F.silu(ef[:, f])).chunk(2, dim=1)
        torch.testing.assert_close(out[:, :, f], base[:, :, f] * (1 + s[..., None, None]) + b[..., None, None])


def test_conditional_group_norm_errors():
    with pytest.raises(ValueError, match="does not divide"):
        ConditionalGroupNorm(3, 8, embed_dim=4)
    norm = ConditionalGroupNorm(2, 8, embed_dim=4)
    with pytest.raises(ValueError, match=r"\(2, 6, 4, 4\)"):
        norm(torch.randn(2, 6, 4, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="embedding"):
        norm(torch.randn(2, 8, 4, 4), torch.randn(2, 3, 4))
