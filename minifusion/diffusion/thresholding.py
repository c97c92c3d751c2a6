"""Keeping the predicted clean sample x0 inside the data's range: clipping and dynamic thresholding.

Dynamic thresholding is from Saharia et al., "Photorealistic Text-to-Image Diffusion Models with
Deep Language Understanding" (Imagen, 2022), section 2.3: at each sampling step take
s = quantile(|x0|, p) per sample, s = max(s, 1), clamp x0 to [-s, s] and divide by s. Large
guidance scales push x0 far outside [-1, 1]; this pulls saturated pixels back without flattening
the whole image the way static clipping does. FusionFrames samples with p = 0.98.

The rule above assumes pixel data in [-1, 1]. Latents are not: a scaled latent has unit variance
and values beyond +-3, and clipping or thresholding it to [-1, 1] destroys it.
So here every rule is written relative to a **data range** R: the clean data lies in [-R, R].

    u = x0 / R                                   # data in [-R, R] -> [-1, 1]
    s = clamp(quantile(|u|, p), 1, max_value / R) per sample
    x0 = R * clamp(u, -s, s) / s

With R = 1 this is exactly Imagen's rule (and diffusers' ``_threshold_sample`` with
``sample_max_value = max_value``). For any R, data already inside [-R, R] is returned unchanged
(s = 1 and the clamp does nothing), which is the property a threshold must have. Pick R from the
data, e.g. ``sample_range_from_data(latents)``, not from habit.

Taught in notebook 03 (notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

import math

import torch

from minifusion.checks import check_number


def _check_floating(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor, got {kind}")


def clip_sample(x0: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Static clipping (Ho et al. 2020): clamp x0 to [-data_range, data_range]."""
    _check_floating("x0", x0)
    check_number("data_range", data_range, minimum=0, exclusive_minimum=True)
    return x0.clamp(-data_range, data_range)


def dynamic_threshold(
    x0: torch.Tensor,
    *,
    ratio: float = 0.995,
    data_range: float = 1.0,
    max_value: float | None = None,
) -> torch.Tensor:
    """Imagen dynamic thresholding of x0, relative to the data range (see the module docstring).

    Args:
        x0: predicted clean samples, (B, ...) of any rank; the quantile is taken per sample
            over all non-batch dimensions.
        ratio: the quantile p in (0, 1].
        data_range: R; the clean data lies in [-R, R].
        max_value: the largest threshold s allowed, in data units (>= R). ``None``: no upper
            bound, Imagen's original rule.
    Returns:
        a tensor of the same shape and dtype, inside [-R, R].
    """
    _check_floating("x0", x0)
    check_number("data_range", data_range, minimum=0, exclusive_minimum=True)
    check_number("dynamic_thresholding_ratio", ratio, minimum=0, maximum=1, exclusive_minimum=True)
    if max_value is not None:
        check_number("max_value", max_value, minimum=0, exclusive_minimum=True)
        if max_value < data_range:
            raise ValueError(
                f"sample_max_value ({max_value!r}) must be >= the data range ({data_range!r}): "
                "a threshold below the range would clip in-range data"
            )
    if x0.ndim < 1 or x0.shape[0] == 0:
        raise ValueError(f"x0 must have a batch dimension with at least one sample, got shape {tuple(x0.shape)}")
    dtype = x0.dtype
    # quantile needs float32/64: fp16/bf16 samples are thresholded in float32, float64 stays
    x = x0 if x0.dtype in (torch.float32, torch.float64) else x0.float()
    q = torch.quantile(x.reshape(x.shape[0], -1).abs(), ratio, dim=1)  # (B,) in data units
    upper = math.inf if max_value is None else max_value / data_range
    s = (q / data_range).clamp(min=1.0, max=upper)  # (B,) in units of the range
    s = s.reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)
    # R * clamp(u, -s, s) / s with u = x / R, written so that s = 1 returns x bit for bit
    limit = s * data_range
    out = torch.maximum(torch.minimum(x, limit), -limit) / s
    return out.to(dtype)


def sample_range_from_data(samples: torch.Tensor, quantile: float = 1.0) -> float:
    """The data range R to use for clipping / thresholding: quantile of |samples| (max by default).

    Use a quantile slightly below 1 (e.g. 0.999) to ignore rare outliers in latents.
    """
    _check_floating("samples", samples)
    if samples.numel() == 0:
        raise ValueError("samples is empty; need data to measure its range")
    check_number("quantile", quantile, minimum=0, maximum=1, exclusive_minimum=True)
    flat = samples.detach().abs().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # kthvalue on half is not supported everywhere
    if quantile == 1.0:
        value = flat.max().item()
    else:
        # torch.quantile refuses very large inputs; kthvalue has no such limit.
        k = max(1, min(flat.numel(), math.ceil(quantile * flat.numel())))
        value = flat.kthvalue(k).values.item()
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"samples have range {value!r}; need finite, non-zero data")
    return float(value)
