"""Keyframe U-Net: the four temporal variants start as the T2I model frame by frame, freezing,
parameter parity, where information flows between frames, save/load without the T2I model."""

from __future__ import annotations

import json

import pytest
import torch

from minifusion.models import TEMPORAL_VARIANTS, KeyframeUNet, UNet, UNetConfig
from minifusion.nn import ConditionalGroupNorm

TINY = dict(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=8, attention_head_dim=8,
            norm_groups=2, sample_size=8, text_length=3)


def t2i(**kw) -> UNet:
    """A tiny T2I U-Net that looks trained: its zero-initialised norm conditioning is non-zero,
    so the time embedding (and everything added to it) reaches the output."""
    torch.manual_seed(0)
    unet = UNet(UNetConfig(**{**TINY, **kw})).eval()
    for m in unet.modules():
        if isinstance(m, ConditionalGroupNorm):
            torch.nn.init.normal_(m.context_mlp[1].weight, std=0.1)
    return unet


def inputs(b=2, f=4, size=8):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(b, 4, f, size, size, generator=g), torch.tensor([10.0, 900.0])[:b],
            torch.randn(b, 3, 8, generator=g))


def randomize_temporal(model):
    """Give every temporal parameter (zero-initialised ones included) a random non-zero value."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.temporal_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


@pytest.mark.parametrize("temporal", TEMPORAL_VARIANTS)
def test_starts_as_t2i_frame_by_frame(temporal):
    unet = t2i()
    model = KeyframeUNet.from_t2i(unet, temporal).eval()
    x, t, text = inputs()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = model(x, t, text, mask, frame_positions=torch.tensor([0.0, 4.0, 8.0, 12.0]))
    for f in range(x.shape[2]):
        torch.testing.assert_close(out[:, :, f], unet(x[:, :, f], t, text, mask), atol=1e-5, rtol=0)


@pytest.mark.parametrize("temporal", TEMPORAL_VARIANTS)
def test_information_flows_between_frames_of_one_video_only(temporal):
    model = randomize_temporal(KeyframeUNet.from_t2i(t2i(), temporal)).eval()
    x, t, text = inputs(f=5)
    x2 = x.clone()
    x2[0, :, 0] += 1.0  # change frame 0 of video 0
    diff = (model(x2, t, text) - model(x, t, text)).abs().flatten(3).sum((1, 3))  # (B, F)
    assert torch.count_nonzero(diff[1]) == 0  # never another video
    assert (diff[0] > 1e-6).all()  # attention (every variant has some) reaches every frame


def test_temporal_conv_blocks_reach_only_neighbouring_frames():
    # no attention anywhere: one level, two residual blocks (down, up) -> two 3x1x1 conv blocks
    unet = t2i(block_out_channels=(8,), attention_levels=(False,))
    model = randomize_temporal(KeyframeUNet.from_t2i(unet, "conv1d_attn1d_blocks")).eval()
    for block in model.temporal_blocks.values():  # GroupNorm statistics couple all frames
        block.branch.norm.norm.norm = torch.nn.Identity()
    x, t, text = inputs(f=6)
    x2 = x.clone()
    x2[0, :, 0] += 1.0
    diff = (model(x2, t, text) - model(x, t, text)).abs().flatten(3).sum((1, 3))
    assert (diff[0, :3] > 0).all() and torch.count_nonzero(diff[0, 3:]) == 0
    assert torch.count_nonzero(diff[1]) == 0


def test_frame_positions_condition_the_temporal_parts_only():
    unet = t2i()
    model = KeyframeUNet.from_t2i(unet).eval()
    x, t, text = inputs()
    torch.testing.assert_close(model(x, t, text, frame_positions=torch.tensor([0.0, 1, 2, 3])),
                               model(x, t, text, frame_positions=torch.tensor([0.0, 5, 10, 15])))
    randomize_temporal(model)
    a = model(x, t, text, frame_positions=torch.tensor([0.0, 1, 2, 3]))
    assert not torch.allclose(a, model(x, t, text, frame_positions=torch.tensor([0.0, 5, 10, 15])))
    torch.testing.assert_close(a, model(x, t, text))  # None = 0, 1, ..., F-1
    with pytest.raises(ValueError, match=r"frame_positions.*\(3,\)"):
        model(x, t, text, frame_positions=torch.tensor([0.0, 1, 2]))


@pytest.mark.parametrize("temporal", ["conv1d_attn1d_layers", "conv1d_attn1d_blocks"])
def test_freeze_spatial_trains_only_temporal_parts(temporal):
    model = randomize_temporal(KeyframeUNet.from_t2i(t2i(), temporal)).freeze_spatial()
    spatial = {n: p.detach().clone() for n, p in model.named_parameters() if not model.is_new_parameter(n)}
    assert all(not model.get_parameter(n).requires_grad for n in spatial)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == len(model.temporal_parameters()) > 0
    opt = torch.optim.SGD(trainable, lr=0.1)
    x, t, text = inputs()
    model(x, t, text).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.temporal_parameters())
    opt.step()
    for n, p in model.named_parameters():
        if n in spatial:
            assert torch.equal(p, spatial[n]), n


def test_conv3d_variant_temporal_parameter_count_is_within_25_percent():
    unet = t2i(block_out_channels=(16, 32))
    counts = {v: sum(p.numel() for p in KeyframeUNet.from_t2i(unet, v).temporal_parameters())
              for v in ("conv1d_attn1d_blocks", "conv3d_attn1d_blocks")}
    assert abs(counts["conv3d_attn1d_blocks"] / counts["conv1d_attn1d_blocks"] - 1) < 0.25, counts


@pytest.mark.parametrize("temporal", TEMPORAL_VARIANTS)
def test_save_load_round_trip_without_the_t2i_model(tmp_path, temporal):
    model = randomize_temporal(KeyframeUNet.from_t2i(t2i(), temporal, num_frames=4)).eval()
    model.save_pretrained(tmp_path)
    loaded = KeyframeUNet.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config and loaded.config.temporal == temporal
    x, t, text = inputs()
    assert torch.equal(loaded(x, t, text), model(x, t, text))


def test_errors():
    with pytest.raises(ValueError, match="'conv2d' is not one of 'conv1d_attn1d_layers', 'conv1d_attn1d_blocks', "
                                         "'conv3d_attn1d_blocks', 'conv1d_attn3d_blocks'"):
        KeyframeUNet.from_t2i(t2i(), "conv2d")
    model = KeyframeUNet.from_t2i(t2i(), "conv1d_attn3d_blocks")
    x, t, text = inputs()
    with pytest.raises(ValueError, match=r"\(B, C, F, H, W\), got shape \(2, 4, 8, 8\)"):
        model(x[:, :, 0], t, text)
    with pytest.raises(ValueError, match=r"window 2 at level 1, got shape \(2, 4, 4, 6, 6\)"):
        model(torch.randn(2, 4, 4, 6, 6), t, text)
    assert "MFLOPs/frame" in model.summary()


def _text_blind_t2i() -> UNet:
    """A T2I U-Net whose spatial layers ignore the text: its pooled summary and cross-attention outputs are zero."""
    from minifusion.nn import AttentionBlock

    unet = t2i()
    with torch.no_grad():
        unet.add_time_condition.attention.to_out.weight.zero_()
        for m in unet.modules():
            if isinstance(m, AttentionBlock) and m.is_cross_attention:
                m.attention.to_out.weight.zero_()
    return unet


def test_text_the_frozen_spatial_layers_ignore_still_reaches_the_temporal_parts():
    # The trained toy text encoder washes out direction words (a still frame shows no direction),
    # so the frozen spatial pooling passes the temporal parts almost nothing about them. The
    # temporal parts' own pooling is what lets them learn to follow the prompt's motion words.
    unet = _text_blind_t2i()
    x, t, text = inputs()
    other = text.clone()
    other[:, 2] += 1.0  # another word in the last token
    assert torch.equal(unet(x[:, :, 0], t, text), unet(x[:, :, 0], t, other)), "the spatial layers must be text-blind"
    for pooling, reaches in ((False, False), (True, True)):
        model = randomize_temporal(KeyframeUNet.from_t2i(unet, temporal_text_pooling=pooling)).eval()
        assert hasattr(model, "temporal_text_embedding") == pooling
        changed = not torch.allclose(model(x, t, text), model(x, t, other), atol=1e-6)
        assert changed == reaches, pooling


def test_checkpoints_saved_before_the_pooling_field_load_without_it(tmp_path):
    model = randomize_temporal(KeyframeUNet.from_t2i(t2i(), temporal_text_pooling=False)).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["temporal_text_pooling"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = KeyframeUNet.from_pretrained(tmp_path).eval()
    assert loaded.config.temporal_text_pooling is False and KeyframeUNet().config.temporal_text_pooling is True
    x, t, text = inputs()
    assert torch.equal(loaded(x, t, text), model(x, t, text))


# -- full spatio-temporal attention (spatiotemporal_attention_size) ------------------------------------
def test_spatiotemporal_attention_starts_as_t2i_and_reaches_other_pixels_of_other_frames():
    unet = t2i()
    model = KeyframeUNet.from_t2i(unet, spatiotemporal_attention_size=4).eval()  # the 4x4 level of an 8x8 input
    kinds = {k: type(b.branch).__name__ for k, b in model.temporal_blocks.items() if "Attention" in type(b.branch).__name__}
    assert kinds and set(kinds.values()) == {"SpatioTemporalAttention"}
    assert set(type(b.branch).__name__ for b in KeyframeUNet.from_t2i(unet).temporal_blocks.values()) == \
        {"TemporalConv1d", "TemporalAttention"}
    x, t, text = inputs()
    out = model(x, t, text)
    for f in range(x.shape[2]):
        torch.testing.assert_close(out[:, :, f], unet(x[:, :, f], t, text), atol=1e-5, rtol=0)
    # with only the attention blocks trained, a change at one pixel of frame 0 reaches the opposite corner of
    # frame 3 through them (per-pixel temporal attention alone would reach it only through spatial layers)
    randomize_temporal(model)
    x2 = x.clone()
    x2[0, :, 0, 0, 0] += 1.0
    diff = (model(x2, t, text) - model(x, t, text)).abs()
    assert diff[0, :, 3, -1, -1].sum() > 1e-6 and diff[1].sum() == 0


def test_temporal_text_attention_starts_as_t2i_and_lets_each_word_place_things():
    unet = t2i()
    model = KeyframeUNet.from_t2i(unet, temporal_text_attention_size=4).eval()  # the 4x4 level of an 8x8 input
    texts = [k for k, b in model.temporal_blocks.items() if b.takes_text]
    assert texts == ["down_1_2", "up_1_2"]  # after the cross-attention layer (res, self, cross) of level 1
    x, t, text = inputs()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = model(x, t, text, mask)
    for f in range(x.shape[2]):
        torch.testing.assert_close(out[:, :, f], unet(x[:, :, f], t, text, mask), atol=1e-5, rtol=0)
    # trained, a change of one token of video 0 moves video 0 differently at each frame, and not video 1;
    # the padded token changes nothing
    randomize_temporal(model)
    for i, expected in ((1, True), (2, False)):
        text2 = text.clone()
        text2[0, i] += 1.0
        diff = (model(x, t, text2, mask) - model(x, t, text, mask)).abs()
        assert (diff[0].sum() > 1e-4) == expected and diff[1].sum() == 0
    # frozen spatial layers: the text attention is trainable, the T2I cross-attention is not
    model.freeze_spatial()
    assert all(p.requires_grad for k in texts for p in model.temporal_blocks[k].parameters())
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("down_blocks."))


def test_motion_bias_starts_as_t2i_and_reads_the_text():
    from minifusion.models import KeyframeUNetConfig

    unet = t2i()
    model = KeyframeUNet.from_t2i(unet, spatiotemporal_attention_size=4, spatiotemporal_motion_bias=True).eval()
    biased = [k for k, b in model.temporal_blocks.items() if type(b.branch).__name__ == "MotionBiasedAttention"]
    assert biased and all(model.temporal_blocks[k].takes_text for k in biased)
    x, t, text = inputs()
    out = model(x, t, text)
    for f in range(x.shape[2]):
        torch.testing.assert_close(out[:, :, f], unet(x[:, :, f], t, text), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="spatiotemporal_motion_bias needs spatiotemporal_attention_size > 0"):
        KeyframeUNet(KeyframeUNetConfig(**TINY, spatiotemporal_motion_bias=True))
    with pytest.raises(ValueError, match="spatiotemporal_motion_bias 1 is not allowed; it must be true or false"):
        KeyframeUNet(KeyframeUNetConfig(**TINY, spatiotemporal_attention_size=4, spatiotemporal_motion_bias=1))


def test_spatiotemporal_attention_size_must_be_a_non_negative_integer():
    from minifusion.models import KeyframeUNetConfig

    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="spatiotemporal_attention_size"):
            KeyframeUNet(KeyframeUNetConfig(**TINY, spatiotemporal_attention_size=bad))
        with pytest.raises(ValueError, match="temporal_text_attention_size"):
            KeyframeUNet(KeyframeUNetConfig(**TINY, temporal_text_attention_size=bad))
