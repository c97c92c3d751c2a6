"""Interpolation U-Nets: FusionFrames' pair-wise interpolator and the masked-frame (MFI) baseline."""

from __future__ import annotations

import pytest
import torch

from minifusion.models import InterpolationUNet, MaskedInterpolationUNet, UNet, UNetConfig
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


def randomize_new(model):
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.temporal_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def pairs(b=2, p=3, size=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 20, p, size, size, generator=g), torch.tensor([10.0, 900.0])[:b]


# -- FusionFrames interpolation ----------------------------------------------------------------
def test_interpolator_slots_init_gives_the_t2i_prediction_when_every_slot_holds_the_same_latent():
    unet = t2i()
    model = InterpolationUNet.from_t2i(unet).eval()
    assert model.config.in_channels == 20 and model.config.out_channels == 12 and model.config.slot_skip
    x, t = pairs()
    x[:, 8:12] = x[:, 4:8]
    x[:, 12:16] = x[:, 4:8]  # the three noisy slots carry one latent; the keyframes (0..3, 16..19) differ
    out = model(x, t, frame_skip=4, perturbation_level=torch.tensor([0.0, 200.0]))
    null = model.null_encoder_hidden_states.expand(2, -1, -1)
    for p in range(x.shape[2]):
        ref = unet(x[:, 4:8, p], t, null)
        for k in range(3):
            torch.testing.assert_close(out[:, 4 * k : 4 * k + 4, p], ref, atol=1e-5, rtol=0)


def test_interpolator_slots_init_each_output_answers_its_own_noisy_slot_most():
    model = InterpolationUNet.from_t2i(t2i()).eval()
    x, t = pairs()
    out = model(x, t, frame_skip=4)
    for k in range(3):
        x2 = x.clone()
        x2[:, 4 + 4 * k : 8 + 4 * k] += torch.randn_like(x2[:, :4])  # perturb noisy slot k only
        change = (model(x2, t, frame_skip=4) - out).square().mean((0, 2, 3, 4)).view(3, 4).mean(1)  # per output
        assert change.argmax() == k and (change > 0).all(), (k, change)
        others = torch.cat([change[:k], change[k + 1 :]])
        assert change[k] > 2 * others.max(), (k, change)


def test_interpolator_blend_path_is_silent_at_init_and_adds_each_frames_place_between_the_keyframes():
    unet = t2i()
    plain = InterpolationUNet.from_t2i(unet, blend_path=False).eval()
    model = InterpolationUNet.from_t2i(unet).eval()  # "slots" has the blend path by default
    assert model.config.blend_path and not InterpolationUNet.from_t2i(unet, init="middle").config.blend_path
    x, t = pairs()
    assert torch.equal(model(x, t, frame_skip=4), plain(x, t, frame_skip=4))
    with torch.no_grad():
        model.blend_path.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    diff = model(x, t, frame_skip=4) - plain(x, t, frame_skip=4)
    shift = x[:, 16:20] - x[:, 0:4]  # right keyframe - left keyframe
    for k, (e, a) in enumerate(zip((1.0, 2.0, 3.0), (-0.25, 0.0, 0.25))):  # a_k - mean a, a_k = k / 4
        torch.testing.assert_close(diff[:, 4 * k : 4 * k + 4], e * a * shift, atol=1e-5, rtol=0)
    assert any(n.startswith("blend_path.") for n, _ in model.named_parameters() if model.is_new_parameter(n))


def test_interpolator_middle_init_starts_as_t2i_on_the_middle_noisy_latent():
    unet = t2i()
    model = InterpolationUNet.from_t2i(unet, init="middle").eval()
    assert model.config.in_channels == 20 and model.config.out_channels == 12
    assert model.inherited_input_channels == (8, 12)
    x, t = pairs()
    out = model(x, t, frame_skip=4, perturbation_level=torch.tensor([0.0, 200.0]))
    null = model.null_encoder_hidden_states.expand(2, -1, -1)
    for p in range(x.shape[2]):
        ref = unet(x[:, 8:12, p], t, null)
        for k in range(3):
            torch.testing.assert_close(out[:, 4 * k : 4 * k + 4, p], ref, atol=1e-5, rtol=0)


def test_interpolator_mixes_pairs_of_one_video_only_and_uses_skip_and_perturbation():
    model = randomize_new(InterpolationUNet.from_t2i(t2i())).eval()
    x, t = pairs(p=4)
    out = model(x, t, frame_skip=4)
    x2 = x.clone()
    x2[0, :, 0] += 1.0  # change pair 0 of video 0
    diff = (model(x2, t, frame_skip=4) - out).abs().flatten(3).sum((1, 3))  # (B, P)
    assert torch.count_nonzero(diff[1]) == 0
    assert (diff[0, :2] > 1e-6).all()  # the neighbouring pair sees it through the temporal convs
    assert not torch.allclose(model(x, t, frame_skip=1), out)
    assert not torch.allclose(model(x, t, frame_skip=4, perturbation_level=100), out)


def test_interpolator_new_parameters_all_get_gradients_and_freeze_keeps_spatial():
    model = randomize_new(InterpolationUNet.from_t2i(t2i())).freeze_spatial()
    spatial = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, t = pairs()
    model(x, t, frame_skip=4, perturbation_level=50).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.temporal_parameters())
    opt.step()
    assert all(torch.equal(model.get_parameter(n), v) for n, v in spatial.items())


def test_interpolator_save_load_round_trip(tmp_path):
    model = randomize_new(InterpolationUNet.from_t2i(t2i())).eval()
    model.save_pretrained(tmp_path)
    loaded = InterpolationUNet.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config and loaded.config.prediction_type == "v_prediction"
    x, t = pairs()
    assert torch.equal(loaded(x, t, frame_skip=4), model(x, t, frame_skip=4))


def test_interpolator_errors():
    model = InterpolationUNet.from_t2i(t2i())
    x, t = pairs()
    with pytest.raises(ValueError, match=r"16 channels.*\(2, 16, 3, 8, 8\)"):
        model(x[:, :16], t, frame_skip=4)
    with pytest.raises(ValueError, match=r"\(B, C, F, H, W\), got shape \(2, 20, 8, 8\)"):
        model(x[:, :, 0], t, frame_skip=4)
    with pytest.raises(ValueError, match=r"frame_skip.*\(3,\)"):
        model(x, t, frame_skip=torch.ones(3))
    with pytest.raises(ValueError, match="in_channels 16 must be 20"):
        InterpolationUNet({**TINY, "in_channels": 16})
    with pytest.raises(ValueError, match=r"init 'outer' must be one of \('slots', 'middle'\)"):
        InterpolationUNet.from_t2i(t2i(), init="outer")
    assert "MFLOPs/frame" in model.summary()


# -- masked frame interpolation baseline --------------------------------------------------------
def frames(b=2, f=5, size=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 9, f, size, size, generator=g), torch.tensor([10.0, 900.0])[:b]


def test_masked_baseline_starts_as_t2i_frame_by_frame():
    unet = t2i()
    model = MaskedInterpolationUNet.from_t2i(unet).eval()
    x, t = frames()
    out = model(x, t, perturbation_level=30)
    assert out.shape == (2, 4, 5, 8, 8)
    null = model.null_encoder_hidden_states.expand(2, -1, -1)
    for f in range(5):
        torch.testing.assert_close(out[:, :, f], unet(x[:, :4, f], t, null), atol=1e-5, rtol=0)


def test_masked_baseline_mixes_frames_of_one_video_only_and_round_trips(tmp_path):
    model = randomize_new(MaskedInterpolationUNet.from_t2i(t2i())).eval()
    x, t = frames()
    out = model(x, t)
    x2 = x.clone()
    x2[0, 4:, 2] += 1.0  # a different known frame in the middle of video 0
    diff = (model(x2, t) - out).abs().flatten(3).sum((1, 3))
    assert torch.count_nonzero(diff[1]) == 0 and (diff[0] > 1e-6).all()
    model.save_pretrained(tmp_path)
    loaded = MaskedInterpolationUNet.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded(x, t), out)
    with pytest.raises(ValueError, match=r"8 channels.*\(2, 8, 5, 8, 8\)"):
        model(x[:, :8], t)
