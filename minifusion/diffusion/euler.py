"""Euler's method on the probability-flow ODE (Karras, Aittala, Aila, Laine, "Elucidating the Design
Space of Diffusion-Based Generative Models", NeurIPS 2022).

In VE units x = x_t / alpha_t (``minifusion.diffusion.sigmas``) the ODE is (Karras et al. eq. 1
with sigma(t) = t, and eq. 3 for the denoiser D)

    dx / dsigma = (x - D(x; sigma)) / sigma,       D(x; sigma) = E[x0 | x] = the model's x0 estimate,

and one Euler step from sigma to sigma' (Algorithm 1 of Karras et al. without its second-order
correction) is

    x' = x + (sigma' - sigma) * (x - D(x; sigma)) / sigma.

The sample lives in VE units: the starting noise has std sigma_max (``init_noise_sigma``), and
``scale_model_input`` divides by sqrt(sigma^2 + 1) = 1 / alpha_t so the network sees x_t as in
training. The method is first order: its error halves when the steps double.

Taught in notebook 03 (notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from minifusion.diffusion.scheduling_utils import SchedulerOutput
from minifusion.diffusion.sigmas import SigmaScheduler, karras_sigmas, sigma_to_t, t_to_sigma

EulerDiscreteSchedulerOutput = SchedulerOutput


class EulerDiscreteScheduler(SigmaScheduler):
    """Euler sampler over sigma; arguments and numbers follow diffusers' class of this name.

    Takes every argument of ``DDPMScheduler`` (except ``variance_type``; ``timestep_spacing``
    defaults to "linspace" as in diffusers) plus ``use_karras_sigmas`` (Karras et al. eq. 5
    between the sigmas of the first and last spaced timestep) and ``final_sigmas_type``.

    Timesteps are float, as in diffusers: "linspace" is linspace(T - 1, 0, n) unrounded (the
    model sees fractional timesteps, their sigma interpolated), "leading" k * (T // n)
    (+ steps_offset), "trailing" round(T - k T / n) - 1. Clipping and thresholding of the x0
    estimate apply as in the other schedulers (diffusers' Euler has neither).
    Sampling steps do not trust an epsilon model's x0 estimate where alpha_bar < 1e-6 (t = 999
    of the cosine schedule): they use x0 = 0 there (see ``BaseScheduler._pred_x0_eps``).
    """

    timestep_dtype = torch.float32
    ve_samples = True  # the loop's sample is x_t / alpha_t

    def __init__(self, *, use_karras_sigmas: bool = False, final_sigmas_type: str = "zero", **kwargs: Any) -> None:
        kwargs.setdefault("timestep_spacing", "linspace")
        super().__init__(use_karras_sigmas=use_karras_sigmas, final_sigmas_type=final_sigmas_type, **kwargs)

    def _timesteps_and_sigmas(self, num_inference_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        n, T, cfg = num_inference_steps, self.num_train_timesteps, self._config
        spacing = cfg["timestep_spacing"]
        if spacing == "linspace":
            ts = torch.linspace(0, T - 1, n, dtype=torch.float32).double().flip(0)  # float32 values, as diffusers
        elif spacing == "leading":
            ts = (torch.arange(n, dtype=torch.float64) * (T // n)).flip(0) + cfg["steps_offset"]
        else:  # trailing
            ts = (T - torch.arange(n, dtype=torch.float64) * (T / n)).round() - 1
        if float(ts.max()) >= T:
            raise ValueError(f"steps_offset {cfg['steps_offset']} pushes the first timestep to {int(ts.max())}, "
                             f"outside 0..{T - 1}; use a smaller steps_offset or fewer steps")
        sigmas = t_to_sigma(ts, self._train_sigmas64)
        if cfg["use_karras_sigmas"]:
            sigmas = karras_sigmas(float(sigmas[-1]), float(sigmas[0]), n)
            ts = sigma_to_t(sigmas, self._train_sigmas64)
        return ts, sigmas

    @property
    def init_noise_sigma(self) -> float:
        """Std of the starting noise in VE units: sigma_max ("linspace", "trailing") or sqrt(sigma_max^2 + 1)."""
        sigma_max = max(self._sigma_list)
        if self._config["timestep_spacing"] in ("linspace", "trailing"):
            return sigma_max
        return math.sqrt(sigma_max**2 + 1)

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        """x / sqrt(sigma^2 + 1): from VE units back to the x_t the model was trained on."""
        if timestep is None:
            raise ValueError("EulerDiscreteScheduler.scale_model_input needs the timestep (its sigma scales the input)")
        sigma = self._sigma_list[self._current_step(timestep)]
        return sample / math.sqrt(sigma**2 + 1)

    def _advance(self, i: int, model_output: torch.Tensor, sample: torch.Tensor,
                 noise: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``i``: x' = x + (sigma' - sigma) (x - D) / sigma, with ``sample`` x in VE units (not scaled)."""
        sigma, sigma_next = self._sigma_list[i], self._sigma_list[i + 1]
        x0 = self._x0_at_sigma(model_output, sample / math.sqrt(sigma**2 + 1), sigma)  # D(x; sigma)
        derivative = (sample - x0) / sigma
        return sample + (sigma_next - sigma) * derivative, x0
