"""Classifier-free guidance: the diffusers scale s and the paper's weight w are the same line at s = 1 + w."""

from __future__ import annotations

import math

import pytest
import torch

from minifusion.diffusion import (
    classifier_free_guidance,
    guidance_scale_from_paper_weight,
    paper_guidance,
    paper_weight_from_guidance_scale,
)


def _pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, 3, 8, 8, generator=g), torch.randn(2, 4, 3, 8, 8, generator=g)  # video


def test_classifier_free_guidance_formula():
    uncond, cond = _pair()
    for s in (0.0, 1.0, 2.5, 6.0):
        assert torch.allclose(classifier_free_guidance(uncond, cond, s), uncond + s * (cond - uncond), atol=1e-5)
    assert torch.equal(classifier_free_guidance(uncond, cond, 1.0), cond)  # s = 1: no guidance, exactly
    assert torch.allclose(classifier_free_guidance(uncond, cond, 0.0), uncond, atol=1e-6)


@pytest.mark.parametrize("w", [0.0, 0.25, 5.0])
def test_paper_form_equals_scale_one_plus_w(w):
    uncond, cond = _pair()
    paper = paper_guidance(cond, uncond, w)
    assert torch.allclose(paper, (1 + w) * cond - w * uncond)
    assert torch.allclose(paper, classifier_free_guidance(uncond, cond, guidance_scale_from_paper_weight(w)), atol=1e-5)
    assert guidance_scale_from_paper_weight(w) == 1 + w
    assert paper_weight_from_guidance_scale(1 + w) == pytest.approx(w)


@pytest.mark.parametrize("bad", [float("nan"), -0.5, float("inf"), "6", None])
def test_bad_scales_raise(bad):
    uncond, cond = _pair()
    with pytest.raises(ValueError, match="guidance_scale .* is not allowed; it must be a finite number >= 0"):
        classifier_free_guidance(uncond, cond, bad)
    with pytest.raises(ValueError, match="w .* is not allowed; it must be a finite number >= 0"):
        paper_guidance(cond, uncond, bad)


def test_scale_below_one_has_no_paper_weight_and_shapes_must_match():
    with pytest.raises(ValueError, match="guidance_scale 0.5 < 1 has no paper weight"):
        paper_weight_from_guidance_scale(0.5)
    uncond, cond = _pair()
    with pytest.raises(ValueError, match=r"differ in shape: \(2, 4, 3, 8, 8\) vs \(2, 4, 3, 8\)"):
        classifier_free_guidance(uncond, cond[..., 0], 2.0)
    with pytest.raises(ValueError, match="floating-point"):
        classifier_free_guidance(uncond.long(), cond, 2.0)
    assert math.isfinite(classifier_free_guidance(uncond, cond, torch.tensor(3.0)).sum().item())
