"""Ancestral DDPM sampling (Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", 2020).

Each step samples x_{t'} from the Gaussian posterior q(x_{t'} | x_t, x0) with x0 replaced by the
model's estimate (Ho et al. eq. 6-7). With fewer sampling steps than training steps (t' < t - 1)
the same formulas hold with the effective beta of the jump, 1 - alpha_bar_t / alpha_bar_t'
(Nichol & Dhariwal 2021, section 4): posterior mean

    mu = sqrt(ab_t') * beta / (1 - ab_t) * x0 + sqrt(1 - beta) * (1 - ab_t') / (1 - ab_t) * x_t

and variance (1 - ab_t') / (1 - ab_t) * beta ("fixed_small") or beta ("fixed_large").
The FusionFrames release samples keyframes with 50 such steps on the cosine schedule.

Taught in notebook 03 (notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from minifusion.diffusion.scheduling_utils import BaseScheduler, SchedulerOutput, check_choice

VARIANCE_TYPES = ("fixed_small", "fixed_large")

DDPMSchedulerOutput = SchedulerOutput


class DDPMScheduler(BaseScheduler):
    """Ancestral sampler; arguments follow diffusers.

    Args:
        num_train_timesteps: T, the number of diffusion steps the model was trained with.
        beta_start, beta_end: range of the "linear" and "scaled_linear" schedules.
        beta_schedule: "linear", "scaled_linear" or "squaredcos_cap_v2" (cosine).
        prediction_type: what the model outputs: "epsilon", "v_prediction" or "sample".
        clip_sample: clamp the x0 estimate to [-clip_sample_range, clip_sample_range]. Off by
            default: right for pixels in [-1, 1], wrong for latents (their range is their own).
        clip_sample_range: the data range R (clean data in [-R, R]); also the unit that
            dynamic thresholding is relative to. Measure it from the data for latents.
        thresholding: Imagen dynamic thresholding of x0 (takes precedence over clip_sample).
        dynamic_thresholding_ratio: its quantile (the release uses 0.98).
        sample_max_value: the largest threshold, in data units (>= clip_sample_range).
        timestep_spacing: "leading", "trailing" or "linspace"; see ``set_timesteps``.
        steps_offset: added to "leading" timesteps.
        rescale_betas_zero_snr: rescale to zero terminal SNR (Lin et al. 2024).
        variance_type: "fixed_small" (posterior variance) or "fixed_large" (beta).

    Sampling steps do not trust an epsilon model's x0 estimate where alpha_bar < 1e-6 (t = 999
    of the cosine schedule): they use x0 = 0 there (see ``BaseScheduler._pred_x0_eps``).
    """

    def __init__(self, *, variance_type: str = "fixed_small", **kwargs: Any) -> None:
        check_choice("variance_type", variance_type, VARIANCE_TYPES)
        super().__init__(**kwargs)  # the schedule arguments of BaseScheduler (DDPMScheduler's docstring)
        self._config["variance_type"] = variance_type

    def posterior_coefficients(self, timestep: int | torch.Tensor) -> tuple[float, float, float]:
        """(coef_x0, coef_xt, variance) of q(x_{t'} | x_t, x0) for the step from ``timestep``
        to the next timestep t' of the schedule (t' = -1 means the clean sample, alpha_bar = 1)."""
        t = self._scalar_timestep(timestep)
        prev_t = self.previous_timestep(t)
        ab_t = float(self._alphas_cumprod64[t])
        ab_prev = float(self._alphas_cumprod64[prev_t]) if prev_t >= 0 else 1.0
        alpha = ab_t / ab_prev  # effective alpha of the (possibly multi-step) jump
        beta = 1.0 - alpha
        coef_x0 = math.sqrt(ab_prev) * beta / (1 - ab_t)
        coef_xt = math.sqrt(alpha) * (1 - ab_prev) / (1 - ab_t)
        if self._config["variance_type"] == "fixed_small":
            variance = max((1 - ab_prev) / (1 - ab_t) * beta, 0.0)
        else:
            variance = beta
        return coef_x0, coef_xt, variance

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
        variance_noise: torch.Tensor | None = None,
    ) -> SchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """One ancestral step x_t -> x_{t'}; t' is the next timestep of ``set_timesteps``.

        Args:
            model_output: the model's prediction (of ``prediction_type``), same shape as sample.
            timestep: the current t, an int or 0-d integer tensor from ``self.timesteps``.
            sample: x_t, (B, ...) of any rank.
            generator: for the added noise; ignored when ``variance_noise`` is given.
            return_dict: False returns ``(prev_sample, pred_original_sample)``.
            variance_noise: explicit standard normal noise of sample's shape (for tests).
        No noise is added on the last step (it returns the posterior mean, the clean estimate).
        """
        self._check_pair("model_output", model_output, "sample", sample)
        t = self._timestep_list[self._step_index(timestep)]  # validates set_timesteps and membership
        coef_x0, coef_xt, variance = self.posterior_coefficients(t)
        pred_x0, _ = self._pred_x0_eps(model_output, t, sample)
        prev_sample = coef_x0 * pred_x0 + coef_xt * sample  # posterior mean
        if self.previous_timestep(t) >= 0 and variance > 0:
            noise = self._noise_like(sample, generator, variance_noise)
            prev_sample = prev_sample + math.sqrt(variance) * noise
        if not return_dict:
            return prev_sample, pred_x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_x0)
