"""DDIM sampling (Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021).

Song et al. eq. 12, from timestep t to the next scheduled timestep t' (ab = alpha_bar):

    x_{t'} = sqrt(ab_t') * x0_hat                       # "predicted x0"
           + sqrt(1 - ab_t' - sigma_t^2) * eps_hat      # "direction pointing to x_t"
           + sigma_t * z,                               # random noise, z ~ N(0, I)
    sigma_t(eta) = eta * sqrt((1 - ab_t') / (1 - ab_t)) * sqrt(1 - ab_t / ab_t')   (eq. 16)

eta = 0 is the deterministic DDIM sampler (an ODE solver); eta = 1 has DDPM's posterior variance.
After the last scheduled step t' = -1 uses ab = 1 (``set_alpha_to_one=True``), so the output
is the clean estimate itself.

Taught in notebook 03 (notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from minifusion.checks import check_number
from minifusion.diffusion.scheduling_utils import BaseScheduler, SchedulerOutput, check_flag

DDIMSchedulerOutput = SchedulerOutput


class DDIMScheduler(BaseScheduler):
    """Deterministic (eta = 0) or stochastic DDIM sampler; arguments follow diffusers.

    Takes every argument of ``DDPMScheduler`` (except ``variance_type``) plus
    ``set_alpha_to_one``: after the last step use alpha_bar = 1 (True, default) or
    alpha_bar_0 of the training schedule (False).

    Sampling steps do not trust an epsilon model's x0 estimate where alpha_bar < 1e-6 (t = 999
    of the cosine schedule): they use x0 = 0 there (see ``BaseScheduler._pred_x0_eps``).
    """

    def __init__(self, *, set_alpha_to_one: bool = True, **kwargs: Any) -> None:
        check_flag("set_alpha_to_one", set_alpha_to_one)
        super().__init__(**kwargs)  # the schedule arguments of BaseScheduler (DDPMScheduler's docstring)
        self._config["set_alpha_to_one"] = set_alpha_to_one
        self.final_alpha_cumprod = 1.0 if set_alpha_to_one else float(self._alphas_cumprod64[0])

    def sigma(self, timestep: int | torch.Tensor, eta: float) -> float:
        """sigma_t(eta) of eq. 16 for the step from ``timestep`` to the next scheduled one."""
        t = self._scalar_timestep(timestep)
        prev_t = self.previous_timestep(t)
        ab_t = float(self._alphas_cumprod64[t])
        ab_prev = float(self._alphas_cumprod64[prev_t]) if prev_t >= 0 else self.final_alpha_cumprod
        return eta * math.sqrt((1 - ab_prev) / (1 - ab_t)) * math.sqrt(max(1 - ab_t / ab_prev, 0.0))

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool | None = None,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """One DDIM step x_t -> x_{t'} (eq. 12); t' is the next timestep of ``set_timesteps``.

        Args:
            model_output: the model's prediction (of ``prediction_type``), same shape as sample.
            timestep: the current t, an int or 0-d integer tensor from ``self.timesteps``.
            sample: x_t, (B, ...) of any rank.
            eta: 0 (deterministic DDIM) .. 1 (DDPM-like variance).
            use_clipped_model_output: recompute eps from the clipped/thresholded x0 so that the
                pair stays consistent with x_t (diffusers' option). ``None`` (default): True when
                clipping or thresholding is configured, the robust choice (see below); diffusers
                defaults to False.
            generator, variance_noise: source of z when eta > 0.
            return_dict: False returns ``(prev_sample, pred_original_sample)``.

        Why consistent eps by default: clipping x0 but keeping the raw eps breaks
        x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, and the step is then no longer a contraction in
        x_t. With a small trained conv net (no normalisation layers; 8x8 shapes, cosine, 50
        steps, any spacing) keeping the raw eps sent 7% of the samples to inf/NaN and left 28%
        off the data; the consistent update, which only mixes the bounded x0 with x_t, sent
        none to inf and left 15% off.
        """
        self._check_pair("model_output", model_output, "sample", sample)
        if use_clipped_model_output is None:
            use_clipped_model_output = self._config["clip_sample"] or self._config["thresholding"]
        check_number("eta", eta, minimum=0, maximum=1)
        t = self._timestep_list[self._step_index(timestep)]  # validates set_timesteps and membership
        prev_t = self.previous_timestep(t)
        ab_t = float(self._alphas_cumprod64[t])
        ab_prev = float(self._alphas_cumprod64[prev_t]) if prev_t >= 0 else self.final_alpha_cumprod

        pred_x0, pred_eps = self._pred_x0_eps(model_output, t, sample)
        if use_clipped_model_output:
            pred_eps = (sample - math.sqrt(ab_t) * pred_x0) / math.sqrt(1 - ab_t)

        sigma = self.sigma(t, eta)
        direction = math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * pred_eps  # points to x_t
        prev_sample = math.sqrt(ab_prev) * pred_x0 + direction
        if sigma > 0:
            prev_sample = prev_sample + sigma * self._noise_like(sample, generator, variance_noise)
        if not return_dict:
            return prev_sample, pred_x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_x0)
