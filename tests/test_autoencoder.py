"""Tests for the latent autoencoder: shapes, scaling, MoVQ SpatialNorm, temporal decoders, chunking, I/O."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from minifusion.models.autoencoder import Autoencoder, AutoencoderConfig, chunk_windows
from minifusion.models.autoencoder_blocks import SpatialNorm, TemporalStage
from minifusion.nn.temporal import AlphaMerge

TINY = AutoencoderConfig(block_out_channels=(8, 16, 16), norm_groups=4, temporal_attention_head_dim=8, sample_size=16)
VARIANTS = [("conv1d", False), ("conv1d", True), ("conv3d", False), ("conv3d", True)]


def tiny(**kwargs) -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(dataclasses.replace(TINY, **kwargs)).eval()


def frames(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def randomize_temporal(ae: Autoencoder) -> None:
    """Non-zero alphas (and random branches, already so): temporal layers now act."""
    with torch.no_grad():
        for m in ae.modules():
            if isinstance(m, AlphaMerge):
                m.alpha.fill_(0.5)


# -- shapes and input checks ----------------------------------------------------------------------
def test_default_model_maps_64x64_frames_to_4x16x16_latents():
    ae = Autoencoder().eval()
    x = frames(1, 3, 64, 64)
    with torch.no_grad():
        z = ae.encode(x)
        assert z.shape == (1, 4, 16, 16)
        assert ae.decode(z).shape == x.shape
    assert ae.num_parameters() < 1_000_000


def test_image_and_video_shapes():
    ae = tiny()
    with torch.no_grad():
        assert ae.encode(frames(2, 3, 16, 16)).shape == (2, 4, 4, 4)
        z = ae.encode(frames(2, 3, 5, 16, 32))
        assert z.shape == (2, 4, 5, 4, 8)
        assert ae.decode(z).shape == (2, 3, 5, 16, 32)
        assert ae(frames(2, 3, 5, 16, 16)).shape == (2, 3, 5, 16, 16)


@pytest.mark.parametrize("shape", [(3, 16, 16), (1, 1, 3, 16, 16, 1), (1, 1, 16, 16), (1, 3, 18, 16), (1, 3, 2, 16, 14)])
def test_bad_frames_raise_with_shape(shape):
    ae = tiny()
    with pytest.raises(ValueError, match=r"shape \(" + ", ".join(map(str, shape))):
        ae.encode(torch.zeros(shape))


def test_bad_latents_raise_with_shape():
    ae = tiny()
    with pytest.raises(ValueError, match=r"latents .*got shape \(1, 3, 4, 4\)"):
        ae.decode(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="got shape"):
        ae.decode(torch.zeros(4, 4, 4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"decoder_temporal": "lstm"}, "'lstm' is not one of 'none', 'conv1d', 'conv3d'"),
        ({"decoder_temporal_attention": True}, "needs decoder_temporal"),
        ({"norm_groups": 3}, "norm_groups 3 does not divide"),
        ({"block_out_channels": [8, 16]}, "non-empty tuple"),
        ({"scaling_factor": 0.0}, "scaling_factor"),
        ({"decoder_temporal": "conv1d", "decoder_temporal_attention": True, "temporal_attention_head_dim": 5},
         "head_dim 5 does not divide"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Autoencoder(dataclasses.replace(TINY, **kwargs))


def test_video_is_frames_folded_into_batch():
    ae = tiny()
    x = frames(2, 3, 3, 16, 16)
    with torch.no_grad():
        z = ae.encode(x)
        for f in range(3):
            torch.testing.assert_close(z[:, :, f], ae.encode(x[:, :, f]), rtol=0, atol=1e-5)
            torch.testing.assert_close(ae.decode(z)[:, :, f], ae.decode(z[:, :, f]), rtol=0, atol=1e-5)


# -- MoVQ spatial norm -----------------------------------------------------------------------------
def test_spatial_norm_starts_as_group_norm_and_modulates_per_pixel():
    torch.manual_seed(0)
    norm = SpatialNorm(8, latent_channels=4, norm_groups=2)
    x, z = torch.randn(2, 8, 8, 8), torch.randn(2, 4, 4, 4)
    torch.testing.assert_close(norm(x, z), F.group_norm(x, 2, eps=1e-6))
    for conv in (norm.conv_scale, norm.conv_shift):
        torch.nn.init.normal_(conv.weight)
        torch.nn.init.normal_(conv.bias)
    z_up = z.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest resize to 8x8
    expected = F.group_norm(x, 2, eps=1e-6) * (1 + norm.conv_scale(z_up)) + norm.conv_shift(z_up)
    torch.testing.assert_close(norm(x, z), expected)


# -- latent scaling --------------------------------------------------------------------------------
def test_scaling_factor_gives_unit_variance_and_cancels_in_decode():
    ae = tiny()
    x = frames(4, 3, 2, 16, 16)
    with torch.no_grad():
        before = ae.decode(ae.encode(x))
        factor = ae.estimate_scaling_factor(x, chunk_size=1)
        torch.testing.assert_close(factor, 1 / ae.encode_unscaled(x).double().std().item())
        ae.set_scaling_factor(factor)
        z = ae.encode(x)
        assert abs(z.double().std().item() - 1.0) < 1e-5
        torch.testing.assert_close(z, factor * ae.encode_unscaled(x))
        torch.testing.assert_close(ae.decode(z), before, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="scaling_factor"):
        ae.set_scaling_factor(float("nan"))


# -- chunking --------------------------------------------------------------------------------------
def test_chunk_windows_plan():
    assert chunk_windows(6, 8, 2) == [(0, 0, 6)]
    assert chunk_windows(6, 4, 2) == [(0, 0, 3), (2, 3, 6)]
    assert chunk_windows(6, 2, 0) == [(0, 0, 2), (2, 2, 4), (4, 4, 6)]
    plan = chunk_windows(29, 8, 2)
    covered = [t for _, a, b in plan for t in range(a, b)]
    assert covered == list(range(29))
    assert all(s <= a and b <= s + 8 for s, a, b in plan)
    with pytest.raises(ValueError, match=r"chunk_overlap 4 is not allowed; it must be an integer in 0\.\.3"):
        chunk_windows(6, 4, 4)
    with pytest.raises(ValueError, match="chunk_size 0 is not allowed; it must be an integer >= 1"):
        chunk_windows(6, 0, 0)


@pytest.mark.parametrize("chunk_size", [1, 2, 3])
def test_image_decoder_chunks_equal_one_call(chunk_size):
    ae = tiny()
    x = frames(2, 3, 5, 16, 16)
    with torch.no_grad():
        z = ae.encode(x)
        torch.testing.assert_close(ae.encode(x, chunk_size=chunk_size), z, rtol=0, atol=1e-5)
        torch.testing.assert_close(ae.decode(z, chunk_size=chunk_size), ae.decode(z), rtol=0, atol=1e-5)
        zi = ae.encode(x[:, :, 0])
        torch.testing.assert_close(ae.decode(zi, chunk_size=1), ae.decode(zi), rtol=0, atol=1e-5)


def test_temporal_decoder_chunks_follow_the_window_contract():
    ae = tiny(decoder_temporal="conv3d", decoder_temporal_attention=True)
    randomize_temporal(ae)
    z = torch.randn(2, 4, 6, 4, 4)
    with torch.no_grad():
        full = ae.decode(z)
        torch.testing.assert_close(ae.decode(z, chunk_size=6), full, rtol=0, atol=0)
        chunked = ae.decode(z, chunk_size=4, chunk_overlap=2)
        first, second = ae.decode(z[:, :, 0:4]), ae.decode(z[:, :, 2:6])  # windows (0, 0, 3), (2, 3, 6)
    torch.testing.assert_close(chunked, torch.cat([first[:, :, :3], second[:, :, 1:]], dim=2), rtol=0, atol=1e-5)
    assert not torch.allclose(chunked, full, atol=1e-4)  # the layers really see the whole clip


# -- temporal decoder ------------------------------------------------------------------------------
@pytest.mark.parametrize("temporal, attention", VARIANTS)
def test_temporal_decoder_equals_image_decoder_at_init(temporal, attention):
    image = tiny()
    video = Autoencoder.from_image_autoencoder(image, decoder_temporal=temporal, decoder_temporal_attention=attention)
    assert video.config.decoder_temporal == temporal and len(video.temporal_stages()) == 4
    z = torch.randn(2, 4, 3, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(video.decode(z), image.decode(z), rtol=0, atol=1e-5)
        torch.testing.assert_close(video.encode(frames(1, 3, 2, 16, 16)), image.encode(frames(1, 3, 2, 16, 16)))
    for name, p in image.state_dict().items():
        torch.testing.assert_close(video.state_dict()[name], p, rtol=0, atol=0)
    assert set(video.state_dict()) - set(image.state_dict()) == set(video.temporal_parameter_names())


@pytest.mark.parametrize("temporal, attention", VARIANTS)
def test_temporal_layers_mix_frames_of_one_video_only(temporal, attention):
    ae = tiny(decoder_temporal=temporal, decoder_temporal_attention=attention)
    randomize_temporal(ae)
    z = torch.randn(2, 4, 5, 4, 4)
    z2 = z.clone()
    z2[0, :, 2] += 1.0  # change frame 2 of video 0
    with torch.no_grad():
        diff = (ae.decode(z2) - ae.decode(z)).abs().amax(dim=(1, 3, 4))  # (B, F)
    assert diff[0, 1] > 1e-4 and diff[0, 3] > 1e-4  # neighbours change
    assert diff[1].max() == 0  # another video never does


def test_image_decoder_keeps_frames_independent():
    ae = tiny()
    z = torch.randn(1, 4, 5, 4, 4)
    z2 = z.clone()
    z2[0, :, 2] += 1.0
    with torch.no_grad():
        diff = (ae.decode(z2) - ae.decode(z)).abs().amax(dim=(1, 3, 4))[0]
    assert diff[2] > 1e-4 and diff[[0, 1, 3, 4]].max() == 0


def test_freezing_and_temporal_parameters_get_gradients():
    ae = tiny(decoder_temporal="conv1d", decoder_temporal_attention=True).train()
    temporal = ae.trainable_temporal_parameters()
    assert temporal and all(isinstance(m, TemporalStage) for m in ae.temporal_stages())
    ae.freeze_encoder()
    assert not any(p.requires_grad for p in ae.encoder.parameters())
    assert all(p.requires_grad for p in ae.decoder.parameters())
    ae.freeze_spatial()
    assert {id(p) for p in ae.parameters() if p.requires_grad} == {id(p) for p in temporal}
    ae.compute_loss(frames(1, 3, 3, 16, 16))["loss"].backward()
    alphas = [m.alpha for m in ae.modules() if isinstance(m, AlphaMerge)]
    assert all(a.grad is not None and a.grad.abs() > 0 for a in alphas)  # alpha = 0 still learns


def test_a_few_training_steps_reduce_the_loss():
    ae = tiny().train()
    x = frames(4, 3, 16, 16)
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        out = ae.compute_loss(x)
        assert set(out) == {"loss", "mse", "latent_l2", "reconstruction"}
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0]


# -- persistence and summary -----------------------------------------------------------------------
def test_save_load_round_trip_keeps_weights_scaling_and_temporal_config(tmp_path):
    ae = tiny(decoder_temporal="conv3d", decoder_temporal_attention=True)
    randomize_temporal(ae)
    ae.set_scaling_factor(1.7)
    ae.save_pretrained(tmp_path / "ae")
    loaded = Autoencoder.from_pretrained(tmp_path / "ae").eval()
    assert loaded.config == ae.config
    x = frames(1, 3, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), ae.encode(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded(x), ae(x), rtol=0, atol=0)


def test_image_checkpoint_does_not_load_as_temporal(tmp_path):
    tiny().save_pretrained(tmp_path / "image")
    import json

    cfg = json.loads((tmp_path / "image" / "config.json").read_text())
    cfg["decoder_temporal"] = "conv1d"
    (tmp_path / "image" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="missing"):
        Autoencoder.from_pretrained(tmp_path / "image")


def test_summary_mentions_params_and_flops():
    assert "MFLOPs/frame" in tiny().summary()
    assert "MFLOPs/frame" in tiny(decoder_temporal="conv1d").summary()
