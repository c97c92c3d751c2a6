"""Noise schedules: beta_t for t = 0..T-1 and the quantities derived from it.

References
----------
- linear: Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models" (2020), section 4:
  beta_t rises linearly from 1e-4 to 0.02 over T = 1000 steps.
- scaled_linear: the latent-diffusion schedule (Rombach et al. 2022): linear in sqrt(beta).
- squaredcos_cap_v2: Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models"
  (2021), eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos(((t / T + s) / (1 + s)) * pi / 2)^2 with
  s = 0.008, and beta_t = 1 - alpha_bar(t + 1) / alpha_bar(t) clipped at 0.999. FusionFrames
  (Kandinsky Video 1.0) samples with this schedule.
- zero terminal SNR: Lin, Liu, Li, Yang, "Common Diffusion Noise Schedules and Sample Steps are
  Flawed" (WACV 2024), Algorithm 1: shift and scale sqrt(alpha_bar) so that its last value is 0
  and its first value is unchanged.

Everything is computed in float64; callers store float32 copies.

Taught in notebook 02 (notebooks/02_noise_schedules.ipynb).
"""

from __future__ import annotations

import math

import torch

from minifusion.checks import check_int, check_one_of

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")

COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s: keeps beta_0 from being vanishingly small
MAX_BETA = 0.999  # Nichol & Dhariwal clip beta_t here to avoid the singularity at t = T


def cosine_alpha_bar(t: torch.Tensor, offset: float = COSINE_OFFSET) -> torch.Tensor:
    """f(t) = cos(((t + s) / (1 + s)) * pi / 2)^2 for t in [0, 1] (unnormalised alpha_bar)."""
    return torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2


def betas_for_alpha_bar(num_train_timesteps: int, max_beta: float = MAX_BETA) -> torch.Tensor:
    """Cosine betas, beta_i = min(1 - f((i + 1) / T) / f(i / T), max_beta), float64."""
    check_int("num_train_timesteps", num_train_timesteps, minimum=2)
    t = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
    f = cosine_alpha_bar(t)
    return torch.clamp(1 - f[1:] / f[:-1], max=max_beta)


def make_betas(
    beta_schedule: str = "linear",
    num_train_timesteps: int = 1000,
    beta_start: float = 0.0001,
    beta_end: float = 0.02,
) -> torch.Tensor:
    """The betas of a named schedule as a float64 tensor of shape (num_train_timesteps,).

    ``beta_start`` and ``beta_end`` are used by "linear" and "scaled_linear"; the cosine schedule
    ("squaredcos_cap_v2") is defined by its offset s = 0.008 and clip 0.999 alone.
    """
    check_int("num_train_timesteps", num_train_timesteps, minimum=2)
    check_one_of("beta_schedule", beta_schedule, BETA_SCHEDULES)
    if beta_schedule in ("linear", "scaled_linear"):
        if not (0.0 < beta_start <= beta_end < 1.0):
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start!r}, beta_end={beta_end!r}"
            )
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return betas_for_alpha_bar(num_train_timesteps)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Rescale betas so that alpha_bar at the last step is exactly 0 (Lin et al. 2024, Alg. 1).

    sqrt(alpha_bar) is shifted so its last value becomes 0, then scaled so its first value is
    unchanged; betas are recovered from the ratios of consecutive alpha_bars. The last beta
    becomes 1: x_T is pure noise, which is what sampling starts from. Epsilon prediction cannot
    recover x0 there (it divides by sqrt(alpha_bar) = 0); use v-prediction with this option.
    """
    if betas.ndim != 1 or betas.numel() < 2:
        raise ValueError(f"betas must be a 1-d tensor with at least 2 entries, got shape {tuple(betas.shape)}")
    betas = betas.to(torch.float64)
    sqrt_ab = torch.cumprod(1 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    alpha_bar = sqrt_ab**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1 - alphas


def alphas_cumprod_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), in float64."""
    return torch.cumprod(1 - betas.to(torch.float64), dim=0)


def snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) of each step (Kingma et al. 2021)."""
    ab = alphas_cumprod.to(torch.float64)
    return ab / (1 - ab)
