"""What the denoiser predicts: noise (epsilon), the clean sample (x0), or the velocity (v).

The forward process is x_t = sqrt(ab) * x0 + sqrt(1 - ab) * eps with ab = alpha_bar_t
(Ho et al. 2020, eq. 4). Any one of eps, x0 or v = sqrt(ab) * eps - sqrt(1 - ab) * x0
(Salimans & Ho, "Progressive Distillation", 2022, section 4) determines the other two given x_t:

    epsilon: x0 = (x_t - sqrt(1 - ab) * eps) / sqrt(ab)
    sample:  eps = (x_t - sqrt(ab) * x0) / sqrt(1 - ab)
    v:       x0 = sqrt(ab) * x_t - sqrt(1 - ab) * v,   eps = sqrt(1 - ab) * x_t + sqrt(ab) * v

How well each recovers x0 matters near pure noise: an error d in eps becomes an error
d * sqrt((1 - ab) / ab) in x0 (2e4 * d at the last cosine step), while an error d in v stays
below d. FusionFrames predicts eps for keyframes and v for interpolation.
"""

from __future__ import annotations

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def check_prediction_type(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        allowed = ", ".join(repr(p) for p in PREDICTION_TYPES)
        raise ValueError(f"prediction_type {prediction_type!r} is not one of {allowed}")


def _coefficients(alpha_bar: float | torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(ab) and sqrt(1 - ab) in float64, then in ``like``'s dtype, broadcastable to it.

    ``alpha_bar`` is a number or a (B,) tensor (one value per batch element).
    """
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    if ab.ndim == 1:
        ab = ab.reshape(-1, *([1] * (like.ndim - 1)))  # (B, 1, ..., 1)
    sqrt_ab = ab.sqrt().to(device=like.device, dtype=like.dtype)
    sqrt_one_minus_ab = (1 - ab).sqrt().to(device=like.device, dtype=like.dtype)
    return sqrt_ab, sqrt_one_minus_ab


def convert_model_output(
    model_output: torch.Tensor,
    sample: torch.Tensor,
    alpha_bar: float | torch.Tensor,
    prediction_type: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred_original_sample, pred_epsilon) from a model output of the given type at noise level ab."""
    check_prediction_type(prediction_type)
    sqrt_ab, sqrt_one_minus_ab = _coefficients(alpha_bar, sample)
    if prediction_type == "epsilon":
        eps = model_output
        x0 = (sample - sqrt_one_minus_ab * eps) / sqrt_ab
    elif prediction_type == "sample":
        x0 = model_output
        eps = (sample - sqrt_ab * x0) / sqrt_one_minus_ab
    else:  # v_prediction
        x0 = sqrt_ab * sample - sqrt_one_minus_ab * model_output
        eps = sqrt_one_minus_ab * sample + sqrt_ab * model_output
    return x0, eps


def model_output_from(
    pred_original_sample: torch.Tensor,
    pred_epsilon: torch.Tensor,
    alpha_bar: float | torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """The inverse of ``convert_model_output``: what a model of this type should output."""
    check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return pred_epsilon
    if prediction_type == "sample":
        return pred_original_sample
    sqrt_ab, sqrt_one_minus_ab = _coefficients(alpha_bar, pred_original_sample)
    return sqrt_ab * pred_epsilon - sqrt_one_minus_ab * pred_original_sample
