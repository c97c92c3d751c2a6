"""Clipping and Imagen dynamic thresholding, relative to a data range that may not be [-1, 1]."""

from __future__ import annotations

import pytest
import torch

from minifusion.diffusion import DDIMScheduler, clip_sample, dynamic_threshold, sample_range_from_data


def test_matches_imagen_rule_for_pixel_range():
    g = torch.Generator().manual_seed(0)
    x0 = 3 * torch.randn(4, 3, 8, 8, generator=g)
    ratio = 0.9
    out = dynamic_threshold(x0, ratio=ratio)
    for i in range(4):
        s = max(torch.quantile(x0[i].abs().flatten(), ratio).item(), 1.0)  # Imagen: s >= 1
        assert torch.allclose(out[i], x0[i].clamp(-s, s) / s, atol=1e-6)
    assert out.abs().max() <= 1.0
    # sample_max_value caps s (diffusers' semantics when the range is 1)
    capped = dynamic_threshold(x0, ratio=ratio, max_value=1.5)
    assert torch.allclose(capped, x0.clamp(-1.5, 1.5) / 1.5, atol=1e-6)


def test_is_per_sample_and_any_rank():
    x0 = torch.stack([torch.linspace(-0.5, 0.5, 40), torch.linspace(-4, 4, 40)]).reshape(2, 1, 2, 4, 5)  # video
    out = dynamic_threshold(x0, ratio=0.99)
    assert torch.equal(out[0], x0[0])  # in range: untouched
    assert out[1].abs().max() <= 1.0 and not torch.equal(out[1], x0[1])


def test_range_from_the_data_leaves_in_range_data_untouched():
    g = torch.Generator().manual_seed(1)
    latents = 1.0 * torch.randn(6, 4, 2, 8, 8, generator=g)  # unit-variance latents, |x| reaches ~4
    r = sample_range_from_data(latents)
    assert r == pytest.approx(latents.abs().max().item())
    assert torch.equal(dynamic_threshold(latents, ratio=0.98, data_range=r), latents)
    assert torch.equal(dynamic_threshold(latents, ratio=0.98, data_range=r, max_value=2 * r), latents)
    assert torch.equal(clip_sample(latents, r), latents)
    # the pixel-range habit destroys them: everything squashed into [-1, 1]
    squashed = dynamic_threshold(latents, ratio=0.98)
    assert (squashed - latents).abs().max() > 1.0
    # and out-of-range latents are pulled back into [-r, r], relative to r
    big = 3 * latents
    out = dynamic_threshold(big, ratio=0.98, data_range=r)
    assert out.abs().max() <= r * (1 + 1e-6)
    u = big / r
    for i in range(6):
        s = max(torch.quantile(u[i].abs().flatten(), 0.98).item(), 1.0)
        assert torch.allclose(out[i], r * u[i].clamp(-s, s) / s, atol=1e-5)


def test_scheduler_thresholds_relative_to_clip_sample_range():
    s = DDIMScheduler(thresholding=True, dynamic_thresholding_ratio=0.98, clip_sample_range=4.0, sample_max_value=8.0)
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(s.bound_pred_original_sample(x), x)  # |x| < 4: untouched
    s = DDIMScheduler(clip_sample=True, clip_sample_range=4.0)
    assert torch.equal(s.bound_pred_original_sample(5 * x), (5 * x).clamp(-4, 4))


def test_half_precision_is_thresholded_in_float32_and_returned_in_half():
    x = (3 * torch.randn(2, 64, generator=torch.Generator().manual_seed(3))).half()
    out = dynamic_threshold(x, ratio=0.95)
    assert out.dtype == torch.float16 and out.abs().max() <= 1.0
    x64 = torch.randn(2, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert torch.equal(dynamic_threshold(x64, ratio=0.95, data_range=sample_range_from_data(x64)), x64)


def test_bad_arguments_raise():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"dynamic_thresholding_ratio 0 is not allowed; it must be .* in \(0, 1\]"):
        dynamic_threshold(x, ratio=0)
    with pytest.raises(ValueError, match="data_range -1 is not allowed; it must be a finite number > 0"):
        dynamic_threshold(x, data_range=-1)
    with pytest.raises(ValueError, match="sample_max_value \\(0.5\\) must be >= the data range \\(1.0\\)"):
        dynamic_threshold(x, max_value=0.5)
    with pytest.raises(ValueError, match="floating-point"):
        dynamic_threshold(x.long())
    with pytest.raises(ValueError, match="quantile"):
        sample_range_from_data(x, quantile=0.0)
