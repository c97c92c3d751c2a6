"""Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022).

Two ways of writing the same line, and the project's convention between them:

- diffusers / this package: ``uncond + s * (cond - uncond)``; s = 1 is the plain conditional
  prediction (no guidance), s = 0 the unconditional one.
- the FusionFrames paper (and Ho & Salimans): ``(1 + w) * cond - w * uncond``; w = 0 is no
  guidance.

They are equal when s = 1 + w. The paper's keyframe w = 5 is s = 6; its interpolation
"context guidance" w = 0.25 is s = 1.25. Pipelines take s (``guidance_scale``).

Taught in notebooks 03 and 06 (notebooks/03_samplers.ipynb, notebooks/06_text_to_image.ipynb).
"""

from __future__ import annotations

import torch

from minifusion.checks import check_number


def _check_scale(name: str, value: float) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    return float(check_number(name, value, minimum=0))


def _check_pair(uncond: torch.Tensor, cond: torch.Tensor) -> None:
    for name, x in (("noise_pred_uncond", uncond), ("noise_pred_cond", cond)):
        if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
            kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a floating-point tensor, got {kind}")
    if uncond.shape != cond.shape:
        raise ValueError(
            f"unconditional and conditional predictions differ in shape: "
            f"{tuple(uncond.shape)} vs {tuple(cond.shape)}"
        )


def classifier_free_guidance(
    noise_pred_uncond: torch.Tensor, noise_pred_cond: torch.Tensor, guidance_scale: float
) -> torch.Tensor:
    """``uncond + s * (cond - uncond)`` with s = ``guidance_scale`` >= 0 (s = 1: no guidance)."""
    s = _check_scale("guidance_scale", guidance_scale)
    _check_pair(noise_pred_uncond, noise_pred_cond)
    # the same line written from cond, so s = 1 returns the conditional prediction bit for bit
    return noise_pred_cond + (s - 1.0) * (noise_pred_cond - noise_pred_uncond)


def paper_guidance(noise_pred_cond: torch.Tensor, noise_pred_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """The paper's form ``(1 + w) * cond - w * uncond`` with w >= 0 (w = 0: no guidance).

    Note the argument order follows the formula: conditional first.
    """
    w = _check_scale("w", w)
    _check_pair(noise_pred_uncond, noise_pred_cond)
    return (1 + w) * noise_pred_cond - w * noise_pred_uncond


def guidance_scale_from_paper_weight(w: float) -> float:
    """s = 1 + w: the diffusers-style scale equal to the paper's weight w."""
    return 1.0 + _check_scale("w", w)


def paper_weight_from_guidance_scale(guidance_scale: float) -> float:
    """w = s - 1; the paper's form has no equivalent for s < 1 (w would be negative)."""
    s = _check_scale("guidance_scale", guidance_scale)
    if s < 1:
        raise ValueError(f"guidance_scale {s!r} < 1 has no paper weight w >= 0 (w = s - 1)")
    return s - 1.0
