"""Noise levels sigma: what the Euler and DPM-Solver++ schedulers share.

Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models" (NeurIPS 2022),
write the forward process x_t = sqrt(ab) x0 + sqrt(1 - ab) eps (ab = alpha_bar_t) in "variance
exploding" units: divide by alpha_t = sqrt(ab) and x_t / alpha_t = x0 + sigma_t eps with

    sigma_t = sqrt((1 - ab_t) / ab_t),     ab_t = 1 / (1 + sigma_t^2).

A sampler is then an ODE solver over sigma, and its steps are a list of sigmas. Karras et al.
eq. 5 spaces N of them with more steps at low noise (rho = 7):

    sigma_i = (sigma_max^(1/rho) + i / (N - 1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.

``SigmaScheduler`` keeps the list (``sigmas``, one more than ``timesteps``: the last is 0 or
sigma_min, ``final_sigmas_type``), the step counter of a sampling loop, and the x0 estimate from a
model output at a sigma, with the checks of ``BaseScheduler`` (the trap at alpha_bar near 0,
clipping and thresholding). As in diffusers, timesteps between training steps get their sigma by
linear interpolation in t, and a sigma gets its timestep by linear interpolation in log sigma.

Taught in notebook 03 (notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from minifusion.checks import check_number
from minifusion.diffusion.scheduling_utils import (
    BaseScheduler,
    SchedulerOutput,
    check_choice,
    check_flag,
    check_num_inference_steps,
)

FINAL_SIGMAS_TYPES = ("zero", "sigma_min")
ZERO_SNR_ALPHA_BAR = 2.0**-24  # alpha_bar at the last step of a zero-terminal-SNR schedule (sigma stays finite)


def sigmas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """sigma_t = sqrt((1 - ab_t) / ab_t) for every training timestep (float64)."""
    ab = alphas_cumprod.double()
    return ((1 - ab) / ab).sqrt()


def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022 eq. 5: ``num_steps`` sigmas from sigma_max down to sigma_min (float64)."""
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


def sigma_to_t(sigmas: torch.Tensor, train_sigmas: torch.Tensor) -> torch.Tensor:
    """The (fractional) timestep of each sigma: linear interpolation in log sigma over the training sigmas."""
    log_train = train_sigmas.double().log()  # increasing in t
    log_sigma = sigmas.double().clamp(min=1e-10).log()
    low = (torch.searchsorted(log_train, log_sigma, right=True) - 1).clamp(0, len(log_train) - 2)
    w = ((log_train[low] - log_sigma) / (log_train[low] - log_train[low + 1])).clamp(0, 1)
    return (1 - w) * low + w * (low + 1)


def t_to_sigma(timesteps: torch.Tensor, train_sigmas: torch.Tensor) -> torch.Tensor:
    """The sigma of each (fractional) timestep: linear interpolation in t (numpy's ``interp``)."""
    t = timesteps.double().clamp(0, len(train_sigmas) - 1)
    low = t.floor().long().clamp(max=len(train_sigmas) - 2)
    w = t - low
    return (1 - w) * train_sigmas[low] + w * train_sigmas[low + 1]


def alpha_sigma_t(sigma: float) -> tuple[float, float]:
    """(alpha_t, sigma_t) of the VP process at VE noise level sigma: sqrt(ab) and sqrt(1 - ab)."""
    alpha = 1 / math.sqrt(sigma**2 + 1)
    return alpha, sigma * alpha


class SigmaScheduler(BaseScheduler):
    """A sampler stepping through a list of sigmas; the base of Euler and DPM-Solver++.

    Takes every argument of ``DDPMScheduler`` (except ``variance_type``) plus
    ``use_karras_sigmas`` (Karras et al. eq. 5 spacing) and ``final_sigmas_type`` ("zero": the
    last step lands on the clean sample; "sigma_min": on the noise level of training step 0).
    Subclasses give ``_timesteps_and_sigmas(n)`` and ``_advance`` (the update of one step).
    """

    timestep_dtype = torch.int64
    ve_samples = False  # the loop's sample: x_t (VP units, as DDIM's) or x_t / alpha_t (VE units, Euler)

    def __init__(self, *, use_karras_sigmas: bool = False, final_sigmas_type: str = "zero", **kwargs: Any) -> None:
        check_flag("use_karras_sigmas", use_karras_sigmas)
        check_choice("final_sigmas_type", final_sigmas_type, FINAL_SIGMAS_TYPES)
        super().__init__(**kwargs)
        self._config.update(use_karras_sigmas=use_karras_sigmas, final_sigmas_type=final_sigmas_type)
        ab = self._alphas_cumprod64.clone()
        if kwargs.get("rescale_betas_zero_snr"):
            ab[-1] = ZERO_SNR_ALPHA_BAR  # as diffusers: keeps the first sigma finite
        self._train_sigmas64 = sigmas_from_alphas_cumprod(ab)  # (T,), increasing in t
        # until set_timesteps: every training step, last first, as in diffusers
        self._set_schedule(torch.arange(self.num_train_timesteps - 1, -1, -1, dtype=torch.float64),
                           torch.cat([self._train_sigmas64.flip(0), torch.zeros(1, dtype=torch.float64)]), None)
        self.num_inference_steps = None

    # ------------------------------------------------------------------ schedule
    def _timesteps_and_sigmas(self, num_inference_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(timesteps, sigmas), both (n,) float64, highest noise first; the final sigma is added later."""
        raise NotImplementedError

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose the timesteps and sigmas of ``num_inference_steps`` steps and reset the step counter."""
        n = check_num_inference_steps(num_inference_steps, self.num_train_timesteps)
        timesteps, sigmas = self._timesteps_and_sigmas(n)
        last = 0.0 if self._config["final_sigmas_type"] == "zero" else float(self._train_sigmas64[0])
        self._set_schedule(timesteps, torch.cat([sigmas, torch.tensor([last], dtype=torch.float64)]), device)
        self.num_inference_steps = n

    def _set_schedule(self, timesteps: torch.Tensor, sigmas: torch.Tensor, device) -> None:
        ts = timesteps.to(self.timestep_dtype)
        self.timesteps = ts.to(device) if device is not None else ts
        self._timestep_list = ts.tolist()
        self._sigma_list = sigmas.tolist()  # float64 values for the step arithmetic
        self.sigmas = sigmas.float()  # (n + 1,) public, float32 as diffusers
        self._step: int | None = None  # index of the next step; found from the first timestep given
        self._reset_history()

    def _reset_history(self) -> None:
        """Subclasses with a memory of earlier steps clear it here."""

    @property
    def init_noise_sigma(self) -> float:
        """Std of the starting noise in this sampler's units (diffusers: sigma_max, or sqrt(sigma_max^2 + 1)
        for "leading" spacing)."""
        return 1.0

    @property
    def step_index(self) -> int | None:
        """Index of the next step in ``timesteps`` (None before the first step)."""
        return self._step

    def _current_step(self, timestep: Any) -> int:
        """The index of ``timestep``: the next step of the loop, checked against the schedule."""
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step()")
        t = self._timestep_value(timestep)
        if self._step is None:
            if t not in self._timestep_list:
                raise ValueError(f"timestep {t} is not in the schedule set by set_timesteps: {self._shown()}")
            self._step = self._timestep_list.index(t)
        if self._step >= len(self._timestep_list):
            raise ValueError(f"all {len(self._timestep_list)} steps are done; call set_timesteps to sample again")
        expected = self._timestep_list[self._step]
        if t != expected:
            raise ValueError(f"timestep {t} is not the next step of the schedule ({expected}, step "
                             f"{self._step} of {self._shown()}); steps go in the order of scheduler.timesteps")
        return self._step

    def _shown(self) -> str:
        ts = self._timestep_list
        return str(ts) if len(ts) <= 12 else f"{ts[:3]} ... {ts[-3:]}"

    def _timestep_value(self, timestep: Any) -> float | int:
        if isinstance(timestep, torch.Tensor):
            if timestep.numel() != 1 or timestep.dtype == torch.bool or timestep.is_complex():
                raise ValueError(f"step takes one timestep for the whole batch (a number or 0-d tensor), got "
                                 f"shape {tuple(timestep.shape)} dtype {timestep.dtype}")
            timestep = timestep.item()
        if isinstance(timestep, bool) or not hasattr(timestep, "__index__"):  # numpy integers have __index__
            check_number("timestep", timestep, finite=False, note="or a 0-d tensor from scheduler.timesteps")
        value = float(timestep)
        return int(value) if self.timestep_dtype == torch.int64 and value.is_integer() else value

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """One step from ``timestep`` to the next scheduled sigma (the subclass's update rule).

        Args:
            model_output: the model's prediction (of ``prediction_type``) for the input of this step.
            timestep: the current t, the next entry of ``self.timesteps`` (steps go in order).
            sample: the current sample, (B, ...) of any rank, in this sampler's units.
            generator, variance_noise: the source of the fresh noise of a stochastic step (the SDE of
                DPM-Solver++); deterministic samplers ignore them.
            return_dict: False returns ``(prev_sample, pred_original_sample)``.
        """
        i = self._current_step(timestep)
        prev_sample, x0 = self._advance(i, model_output, sample, lambda: self._noise_like(sample, generator,
                                                                                        variance_noise))
        self._step = i + 1
        if not return_dict:
            return prev_sample, x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)

    def _advance(self, i: int, model_output: torch.Tensor, sample: torch.Tensor,
                 noise: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(prev_sample, pred_original_sample) of step ``i``; the subclass's update rule. ``noise()`` draws
        standard normal noise of the sample's shape, for stochastic steps."""
        raise NotImplementedError

    # --------------------------------------------------------------- conversions
    def _x0_at_sigma(self, model_output: torch.Tensor, sample_vp: torch.Tensor, sigma: float) -> torch.Tensor:
        """The x0 estimate a step uses at noise level sigma from x_t in VP units (see ``_pred_x0_eps``:
        an epsilon model is not trusted where alpha_bar < 1e-6, i.e. sigma > 1000; clipping/thresholding)."""
        self._check_pair("model_output", model_output, "sample", sample_vp)
        return self._pred_x0_eps_at(model_output, 1 / (1 + sigma**2), sample_vp)[0]

    def _schedule_sigmas(self, timesteps: int | float | torch.Tensor, batch: int) -> torch.Tensor:
        """(B,) float64 sigmas of scheduled timesteps (a number or one per sample), as diffusers' add_noise."""
        values = timesteps.flatten().tolist() if isinstance(timesteps, torch.Tensor) else [timesteps]
        if len(values) not in (1, batch):
            raise ValueError(f"timesteps has {len(values)} entries; need one, or one per sample ({batch})")
        out = []
        for v in values:
            t = self._timestep_value(v)
            if t not in self._timestep_list:
                raise ValueError(f"timestep {t} is not in the schedule: {self._shown()}")
            out.append(self._sigma_list[self._timestep_list.index(t)])
        return torch.tensor(out * (batch if len(out) == 1 else 1), dtype=torch.float64)

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: int | float | torch.Tensor
    ) -> torch.Tensor:
        """A sample of this sampler at the noise level of scheduled ``timesteps`` (a number or (B,)), as
        diffusers: alpha_t x0 + sigma_t noise (VP units), or x0 + sigma noise (VE units, Euler)."""
        self._check_pair("original_samples", original_samples, "noise", noise)
        sigma = self._schedule_sigmas(timesteps, original_samples.shape[0])
        sigma = sigma.reshape(-1, *([1] * (original_samples.ndim - 1)))  # (B, 1, ..., 1)
        scale = torch.ones_like(sigma) if self.ve_samples else (1 / (sigma**2 + 1)).sqrt()  # 1 or alpha_t
        like = dict(device=original_samples.device, dtype=original_samples.dtype)
        return scale.to(**like) * original_samples + (sigma * scale).to(**like) * noise
