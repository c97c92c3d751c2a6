"""Temporal layers: identity at init, where information flows, parameter parity, alpha merge."""

from __future__ import annotations

import pytest
import torch

from minifusion.nn import (
    AlphaMerge,
    AlphaMergedTemporal,
    SpatioTemporalAttention,
    TemporalAttention,
    TemporalConv1d,
    TemporalConv3d,
    TemporalResidual,
    WindowedTemporalAttention,
    conv_over_frames,
)
from minifusion.nn.temporal import frame_code, pixel_code
from minifusion.nn.temporal_text import TemporalTextAttention


def _randomize(module):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def _make(kind, **kw):
    return {
        "conv1d": lambda: TemporalConv1d(8, norm_groups=2, **kw),
        "conv3d": lambda: TemporalConv3d(8, norm_groups=2, **kw),
        "attn": lambda: TemporalAttention(8, head_dim=4, norm_groups=2, **kw),
        "window": lambda: WindowedTemporalAttention(8, head_dim=4, norm_groups=2, **kw),
        "full": lambda: SpatioTemporalAttention(8, head_dim=4, norm_groups=2, **kw),
    }[kind]()


KINDS = ["conv1d", "conv3d", "attn", "window", "full"]


@pytest.mark.parametrize("kind", KINDS)
def test_branch_is_zero_at_init_and_keeps_shape(kind):
    x = torch.randn(2, 8, 5, 4, 6)
    out = _make(kind)(x)
    assert out.shape == x.shape and torch.count_nonzero(out) == 0
    assert torch.equal(TemporalResidual(_make(kind))(x), x)
    assert _make(kind, zero_init=False)(x).abs().sum() > 0


# (frames reached, pixels reached) when frame 1 at pixel (1, 1) changes
REACH = {
    "conv1d": ({0, 1, 2}, {(1, 1)}),
    "conv3d": ({0, 1, 2}, {(i, j) for i in range(3) for j in range(3)}),
    "attn": ({0, 1, 2, 3, 4}, {(1, 1)}),
    "window": ({0, 1, 2, 3, 4}, {(0, 0), (0, 1), (1, 0), (1, 1)}),
    "full": ({0, 1, 2, 3, 4}, {(i, j) for i in range(4) for j in range(6)}),
}


@pytest.mark.parametrize("kind", KINDS)
def test_information_flow_along_frames_and_pixels(kind):
    layer = _randomize(_make(kind)).eval()
    layer.norm.norm = torch.nn.Identity()  # GroupNorm statistics couple everything; remove them
    x = torch.randn(2, 8, 5, 4, 6)
    x2 = x.clone()
    x2[0, :, 1, 1, 1] += 1.0
    diff = (layer(x2) - layer(x)).abs().sum(1)  # (B, F, H, W)
    assert torch.count_nonzero(diff[1]) == 0  # the other video is untouched
    frames, pixels = REACH[kind]
    changed = {(f, i, j) for f, i, j in (diff[0] > 0).nonzero().tolist()}
    assert changed == {(f, i, j) for f in frames for (i, j) in pixels}


def test_conv3d_parameter_count_matches_conv1d_within_25_percent():
    for c in (16, 32, 64, 128):
        n1 = sum(p.numel() for p in TemporalConv1d(c, norm_groups=8).parameters())
        n3 = sum(p.numel() for p in TemporalConv3d(c, norm_groups=8).parameters())
        assert abs(n3 / n1 - 1) < 0.25, (c, n1, n3)


def test_temporal_attention_knows_frame_order():
    layer = _randomize(_make("attn"))
    x = torch.randn(1, 8, 4, 2, 2)
    perm = torch.tensor([2, 0, 3, 1])
    assert not torch.allclose(layer(x[:, :, perm]), layer(x)[:, :, perm], atol=1e-4)


def test_windowed_attention_needs_divisible_size():
    with pytest.raises(ValueError, match=r"window 2, got shape \(1, 8, 3, 5, 4\)"):
        _make("window")(torch.randn(1, 8, 3, 5, 4))


def test_conditioning_embedding_per_frame_and_errors():
    layer = _randomize(TemporalConv1d(8, norm_groups=2, embed_dim=3))
    x = torch.randn(2, 8, 4, 3, 3)
    e = torch.randn(2, 4, 3)
    assert layer(x, e).shape == x.shape
    assert not torch.allclose(layer(x, e), layer(x, e.flip(1)))
    with pytest.raises(ValueError, match="conditional"):
        layer(x)
    with pytest.raises(ValueError, match="takes no emb"):
        TemporalConv1d(8, norm_groups=2)(x, e)
    with pytest.raises(ValueError, match=r"\(B, 8, F, H, W\), got shape \(2, 8, 3, 3\)"):
        layer(x[:, :, 0], e)


def test_alpha_merge_formula_and_gradient_flow():
    merge = AlphaMerge()
    s, t = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(merge(s, t), s)
    with torch.no_grad():
        merge.alpha.fill_(0.25)
    torch.testing.assert_close(merge(s, t), 0.75 * s + 0.25 * t)
    # alpha-merged branch: identity at init, alpha gets a gradient at once
    layer = AlphaMergedTemporal(TemporalConv1d(8, norm_groups=2, zero_init=False))
    x = torch.randn(1, 8, 4, 2, 2)
    assert torch.equal(layer(x), x)
    layer(x).square().sum().backward()
    assert layer.merge.alpha.grad.abs() > 0
    with torch.no_grad():  # and it is the merge of x and x + branch(x) (computed as x + alpha * branch)
        layer.merge.alpha.fill_(0.3)
        torch.testing.assert_close(layer(x), layer.merge(x, x + layer.branch(x)))


@pytest.mark.parametrize(
    "kernel, bias",
    [((3, 1, 1), True), ((1, 1, 1), True), ((3, 3, 3), True), ((3, 3, 3), False), ((5, 3, 3), True), ((1, 3, 3), True)],
)
def test_conv_over_frames_equals_the_3d_convolution_values_and_gradients(kernel, bias):
    # the 2-D routes (frames flattened, or the k frame taps stacked) must be exactly a Conv3d:
    # a wrong tap order or shift would swap past and future frames, which a symmetric test misses
    conv = torch.nn.Conv3d(6, 5, kernel, padding=tuple(k // 2 for k in kernel), bias=bias)
    _randomize(conv)
    x = torch.randn(2, 6, 7, 8, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ref = conv(x)
    out = conv_over_frames(conv, x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    ref_grads = torch.autograd.grad(ref, [x, conv.weight], grad)
    out_grads = torch.autograd.grad(out, [x, conv.weight], grad)
    for a, b in zip(out_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_conv_over_frames_falls_back_to_the_module_for_other_layouts():
    conv = torch.nn.Conv3d(2, 2, 3, padding=0)  # "valid" padding: not the same-size case
    x = torch.randn(1, 2, 5, 6, 6)
    torch.testing.assert_close(conv_over_frames(conv, x), conv(x))


def test_spatiotemporal_attention_is_softmax_attention_over_every_token_with_frame_and_pixel_codes():
    layer = _randomize(SpatioTemporalAttention(8, head_dim=4, norm_groups=2)).eval()
    x = torch.randn(2, 8, 3, 2, 4)
    b, c, f, h, w = x.shape
    tokens = layer.norm(x, None).permute(0, 2, 3, 4, 1).reshape(b, f, h * w, c)  # (B, F, HW, C)
    tokens = (tokens + layer.frame_code(f, x)[:, None] + layer.pixel_code(h, w, x)).reshape(b, f * h * w, c)
    q, k, v = layer.to_qkv(tokens).chunk(3, dim=-1)  # heads of 4 channels: (B, L, 8) each
    heads = []
    for i in range(2):
        sl = slice(4 * i, 4 * i + 4)
        weights = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)  # 1 / sqrt(4)
        heads.append(weights @ v[..., sl])
    expected = layer.to_out(torch.cat(heads, -1)).reshape(b, f, h, w, c).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    # the pixel code: rows in the first half of the channels, columns in the second, distinct for every pixel
    code = layer.pixel_code(h, w, x)  # (H*W, C)
    assert code.shape == (h * w, c) and len({tuple(r) for r in code.round(decimals=5).tolist()}) == h * w
    torch.testing.assert_close(code.reshape(h, w, c)[:, 0, :4], code.reshape(h, w, c)[:, 3, :4])


def test_temporal_text_attention_is_softmax_attention_from_placed_tokens_to_the_text():
    layer = _randomize(TemporalTextAttention(8, 6, head_dim=4, norm_groups=2)).eval()
    x, text = torch.randn(2, 8, 3, 2, 4), torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    b, c, f, h, w = x.shape
    tokens = layer.norm(x, None).permute(0, 2, 3, 4, 1).reshape(b, f, h * w, c)
    tokens = (tokens + frame_code(f, c, x)[:, None] + pixel_code(h, w, c, x)).reshape(b, f * h * w, c)
    q, k, v = layer.to_q(tokens), layer.to_k(text), layer.to_v(text)  # (B, L, 8): two heads of 4
    heads = []
    for i in range(2):
        sl = slice(4 * i, 4 * i + 4)
        scores = (q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0).masked_fill(~mask[:, None, :], float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v[..., sl])
    expected = layer.to_out(torch.cat(heads, -1)).reshape(b, f, h, w, c).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(layer(x, None, text, mask), expected, atol=1e-5, rtol=1e-5)
    # padding is ignored: changing a masked-out token changes nothing
    text2 = text.clone()
    text2[0, 4] += 5.0
    torch.testing.assert_close(layer(x, None, text2, mask), layer(x, None, text, mask))
    # the same word is read differently at each place and time (the codes), unlike a plain cross-attention
    out = layer(torch.zeros_like(x), None, text, mask)
    assert (out[:, :, 0] - out[:, :, 1]).abs().max() > 1e-3 and (out[..., 0, 0] - out[..., 1, 3]).abs().max() > 1e-3


def test_temporal_text_attention_reads_the_text_per_keyframe_through_its_embedding():
    layer = _randomize(TemporalTextAttention(8, 6, head_dim=4, norm_groups=2, embed_dim=5, frame_text=True)).eval()
    x, text, emb = torch.randn(2, 8, 3, 2, 4), torch.randn(2, 5, 6), torch.randn(2, 3, 5)  # emb per frame
    scale, shift = layer.frame_text[1](torch.nn.functional.silu(emb)).chunk(2, dim=-1)  # (B, F, D)
    out = layer(x, emb, text)
    plain = TemporalTextAttention(8, 6, head_dim=4, norm_groups=2, embed_dim=5, frame_text=True).eval()
    plain.load_state_dict(layer.state_dict())
    with torch.no_grad():
        plain.frame_text[1].weight.zero_()
        plain.frame_text[1].bias.zero_()
    for k in range(3):  # frame k's output is the plain layer's with the text scaled and shifted by frame k's lens
        text_k = text * (1 + scale[:, k, None]) + shift[:, k, None]
        torch.testing.assert_close(out[:, :, k], plain(x, emb, text_k)[:, :, k], atol=1e-5, rtol=1e-5)
    # at init the lens is the identity, and one (B, E) embedding reads the same for every frame
    fresh = TemporalTextAttention(8, 6, head_dim=4, norm_groups=2, embed_dim=5, frame_text=True)
    torch.testing.assert_close(fresh.frame_context(text, emb, 3), text[:, None].expand(2, 3, 5, 6))
    ctx = layer.frame_context(text, emb[:, 0], 3)
    torch.testing.assert_close(ctx[:, 0], ctx[:, 2])
    same = TemporalTextAttention(8, 6, head_dim=4, norm_groups=2, embed_dim=5)
    assert same.frame_text is None and torch.equal(same.frame_context(text, emb, 3)[:, 1], text)


def test_temporal_text_attention_starts_at_zero_and_names_bad_text():
    layer = TemporalTextAttention(8, 6, head_dim=4, norm_groups=2)
    x, text = torch.randn(2, 8, 3, 2, 4), torch.randn(2, 5, 6)
    assert torch.count_nonzero(layer(x, None, text)) == 0
    assert torch.equal(TemporalResidual(layer)(x, None, text), x) and TemporalResidual(layer).takes_text
    assert not TemporalResidual(TemporalAttention(8, head_dim=4, norm_groups=2)).takes_text
    for bad in (None, torch.randn(2, 5, 7), torch.randn(3, 5, 6), torch.randn(2, 6)):
        with pytest.raises(ValueError, match=r"TemporalTextAttention needs text tokens \(B, L, 6\)"):
            layer(x, None, bad)


def test_motion_biased_attention_adds_the_displaced_path_bias_to_full_attention():
    from minifusion.nn import MotionBiasedAttention

    layer = _randomize(MotionBiasedAttention(8, 6, head_dim=4, norm_groups=2)).eval()
    x, text = torch.randn(2, 8, 3, 2, 4), torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    b, c, f, h, w = x.shape
    vel = layer.velocity(text, mask)  # (B, heads, 2)
    pooled0 = text[0, :3].mean(0)  # the masked mean
    torch.testing.assert_close(vel[0].reshape(-1), layer.to_velocity(pooled0))
    tokens = layer.norm(x, None).permute(0, 2, 3, 4, 1).reshape(b, f, h * w, c)
    tokens = (tokens + layer.frame_code(f, x)[:, None] + layer.pixel_code(h, w, x)).reshape(b, f * h * w, c)
    q, k, v = layer.to_qkv(tokens).chunk(3, dim=-1)
    pos = [(fi, yi, xi) for fi in range(f) for yi in range(h) for xi in range(w)]  # token order: frame, row, column
    heads = []
    for i in range(2):
        sl = slice(4 * i, 4 * i + 4)
        bias = torch.empty(b, len(pos), len(pos))
        for a, (fa, ya, xa) in enumerate(pos):
            for z, (fz, yz, xz) in enumerate(pos):
                dy = (ya - yz) - (fa - fz) * vel[:, i, 0]
                dx = (xa - xz) - (fa - fz) * vel[:, i, 1]
                bias[:, a, z] = -layer.alpha[i] * (dy ** 2 + dx ** 2)
        weights = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0 + bias, dim=-1)
        heads.append(weights @ v[..., sl])
    expected = layer.to_out(torch.cat(heads, -1)).reshape(b, f, h, w, c).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(layer(x, None, text, mask), expected, atol=1e-4, rtol=1e-4)
    # at init: zero output, but a live bias (alpha = locality, a text-dependent velocity), so that
    # gradients reach the velocity head from the first step; without text: a clear error
    fresh = MotionBiasedAttention(8, 6, head_dim=4, norm_groups=2, locality=0.5)
    assert torch.count_nonzero(fresh(x, None, text)) == 0 and TemporalResidual(fresh).takes_text
    torch.testing.assert_close(fresh.alpha, torch.full((2,), 0.5))
    assert fresh.velocity(text, None).abs().sum() > 0
    out = TemporalResidual(fresh)(x, None, text).sum()
    out.backward()
    assert fresh.to_out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"MotionBiasedAttention needs text tokens \(B, L, 6\)"):
        fresh(x, None, None)
    for bad in (0, -1.0, float("inf"), True, "1"):
        with pytest.raises(ValueError, match=f"locality {bad!r} is not allowed; it must be a finite number > 0"):
            MotionBiasedAttention(8, 6, head_dim=4, norm_groups=2, locality=bad)


def test_factored_motion_bias_equals_the_plain_one_with_its_gradients():
    from minifusion.nn import MotionBiasedAttention

    layer = _randomize(MotionBiasedAttention(8, 6, head_dim=4, norm_groups=2))
    velocity = torch.randn(3, 2, 2, requires_grad=True)  # (B, heads, 2)
    plain = layer.motion_bias(velocity, 3, 2, 4)
    fast = layer.motion_bias_factored(velocity, 3, 2, 4)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(plain)
    grads_plain = torch.autograd.grad((plain * g).sum(), (velocity, layer.log_alpha))
    grads_fast = torch.autograd.grad((layer.motion_bias_factored(velocity, 3, 2, 4) * g).sum(), (velocity, layer.log_alpha))
    for a, b in zip(grads_fast, grads_plain):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_motion_bias_favours_the_key_along_the_prompted_path():
    from minifusion.nn import MotionBiasedAttention

    layer = MotionBiasedAttention(8, 6, head_dim=4, norm_groups=2)  # alpha starts at 1
    velocity = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # one column to the right per frame, both heads
    bias = layer.motion_bias(velocity, 3, 2, 4)[0, 0].reshape(3, 2, 4, 3, 2, 4)  # query (f, y, x), key (f, y, x)
    # the query at frame 2, column 3 prefers, in frame 0, column 1: two frames back, two columns left
    assert bias[2, 0, 3, 0].argmax().item() == 1 and bias[2, 0, 3, 0, 0, 1] == 0


def test_motion_biased_attention_under_bf16_autocast_keeps_the_bias_in_float32():
    from minifusion.nn import MotionBiasedAttention

    layer = MotionBiasedAttention(8, 6, head_dim=4, norm_groups=2)
    velocity = torch.tensor([[[1.5, 1.5], [0.3, -0.7]]])  # 8 frames: gaps up to 7, squared terms ~100 that cancel
    full = layer.motion_bias_factored(velocity, 8, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = layer.motion_bias_factored(velocity.bfloat16(), 8, 3, 3)
        out = layer(torch.randn(1, 8, 8, 3, 3), None, torch.randn(1, 5, 6))
    assert half.dtype == torch.float32 and out.shape == (1, 8, 8, 3, 3)
    torch.testing.assert_close(half, full, atol=0.02, rtol=0.01)  # bf16 would be off by up to 0.5


@pytest.mark.parametrize("kind", ["conv1d", "conv3d"])
def test_the_cpu_branch_equals_the_plain_conv3d_path(kind):
    """The forward's CPU branch (conv_over_frames) gives what the plain Conv3d path (other devices) gives."""
    torch.manual_seed(0)
    layer = _randomize(TemporalConv1d(8, norm_groups=2, embed_dim=3) if kind == "conv1d"
                       else TemporalConv3d(8, norm_groups=2, embed_dim=3))
    x, emb = torch.randn(2, 8, 5, 4, 6), torch.randn(2, 3)
    h = layer.act(layer.norm(x, emb))
    plain = layer.conv(h) if kind == "conv1d" else layer.restore(layer.act(layer.conv(layer.shrink(h))))
    torch.testing.assert_close(layer(x, emb), plain, rtol=1e-5, atol=1e-5)
    assert plain.abs().max() > 1e-3  # the weights are random: the comparison is not of zeros
