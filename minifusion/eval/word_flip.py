"""Does the keyframe model use the direction word? Flip it and watch the predicted clean latents.

A sample of the keyframe model only shows motion after the model has learned it, and the noise
MSE hardly sees the layout: at alpha-bar ``ab`` the error of the predicted clean latents is
``sqrt((1 - ab) / ab)`` times the error of the predicted noise, so where the layout of a clip is decided
(t > 900, ab < 0.02) a large change in the clean prediction is a tiny change in the loss. This probe
measures the word where it acts: for a fixed batch of clips, fixed noise and a few noise levels, it
predicts the clean latents ``x0_hat = (x_t - sqrt(1 - ab) eps_hat) / sqrt(ab)`` once with each clip's
own caption and once with the direction word replaced by its opposite ("right" <-> "left", "up-left"
<-> "down-right", ...), and reports per level

- ``error_ratio``: MSE(x0_hat(flipped), x0) / MSE(x0_hat(own), x0). 1.0 = the word is ignored; above 1
  the right word gives a better clean prediction than the wrong one;
- ``change``: RMS(x0_hat(own) - x0_hat(flipped)) / RMS(x0): how far the word moves the prediction.

It rises long before samples move (docs/motion.md). Works for epsilon and v prediction.
"""

from __future__ import annotations

import re

import torch

OPPOSITE = {"right": "left", "left": "right", "up": "down", "down": "up", "up-left": "down-right",
            "down-right": "up-left", "up-right": "down-left", "down-left": "up-right"}
DEFAULT_TIMESTEPS = (999, 950, 850, 700, 500, 250)
_WORD = re.compile(r"\b(up-left|up-right|down-left|down-right|right|left|up|down)\b")


def flip_direction(caption: str) -> str:
    """The caption with every direction word replaced by its opposite ("moves up-left" -> "moves down-right")."""
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a string, got {type(caption).__name__}")
    flipped, n = _WORD.subn(lambda m: OPPOSITE[m.group(1)], caption)
    if n == 0:
        raise ValueError(f"caption {caption!r} has no direction word to flip (one of {', '.join(OPPOSITE)})")
    return flipped


def predicted_x0(scheduler, x_t: torch.Tensor, t: torch.Tensor, model_output: torch.Tensor) -> torch.Tensor:
    """Clean latents implied by the model output at timesteps ``t`` (B,), for the scheduler's prediction type."""
    ab = scheduler.alphas_cumprod.to(x_t.device, torch.float64)[t].to(x_t.dtype)
    ab = ab.reshape(-1, *([1] * (x_t.ndim - 1)))
    kind = scheduler.config["prediction_type"]
    if kind == "epsilon":
        return (x_t - (1 - ab).sqrt() * model_output) / ab.sqrt()
    if kind == "v_prediction":
        return ab.sqrt() * x_t - (1 - ab).sqrt() * model_output
    if kind == "sample":
        return model_output
    raise ValueError(f"prediction_type {kind!r} is not one of 'epsilon', 'v_prediction', 'sample'")


@torch.no_grad()
def word_flip_effect(keyframe_unet, text_encoder, scheduler, latents: torch.Tensor, captions: list[str], *,
                     frame_positions: torch.Tensor, timesteps=DEFAULT_TIMESTEPS, seed: int = 0) -> list[dict]:
    """Per timestep: ``{"t", "error_ratio", "change", "error_own", "error_flipped"}`` (module docstring).

    latents: (B, C, K, h, w) clean keyframe latents of the clips whose ``captions`` are given.
    """
    if latents.ndim != 5 or latents.shape[0] != len(captions):
        raise ValueError(f"need latents (B, C, K, h, w) and one caption per clip, got shape {tuple(latents.shape)} "
                         f"and {len(captions)} captions")
    flipped = [flip_direction(c) for c in captions]
    device = latents.device
    ids, mask = text_encoder.tokenizer(list(captions) + flipped)
    hidden, hidden_mask = text_encoder(ids.to(device), mask.to(device))  # (2B, L, D)
    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed)).to(device, latents.dtype)
    was_training = keyframe_unet.training
    keyframe_unet.eval()
    rows = []
    try:
        for step in timesteps:
            t = torch.full((b,), int(step), device=device, dtype=torch.long)
            x_t = scheduler.add_noise(latents, noise, t)
            out = keyframe_unet(torch.cat([x_t, x_t]), torch.cat([t, t]), hidden, hidden_mask,
                                frame_positions=frame_positions)
            own, other = predicted_x0(scheduler, torch.cat([x_t, x_t]), torch.cat([t, t]), out.float()).chunk(2)
            error_own = (own - latents).pow(2).mean().item()
            error_flipped = (other - latents).pow(2).mean().item()
            change = ((own - other).pow(2).mean() / latents.pow(2).mean()).sqrt().item()
            rows.append({"t": int(step), "error_ratio": error_flipped / max(error_own, 1e-12), "change": change,
                         "error_own": error_own, "error_flipped": error_flipped})
    finally:
        keyframe_unet.train(was_training)
    return rows


__all__ = ["DEFAULT_TIMESTEPS", "OPPOSITE", "flip_direction", "predicted_x0", "word_flip_effect"]
