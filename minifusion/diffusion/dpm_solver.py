"""DPM-Solver++ (Lu, Zhou, Bao, Chen, Li, Zhu, "DPM-Solver++: Fast Solver for Guided Sampling of
Diffusion Probabilistic Models", 2022, arXiv 2211.01095), multistep, orders 1-3.

Write the diffusion ODE in lambda_t = log(alpha_t / sigma_t), half the log-SNR (alpha_t = sqrt(ab),
sigma_t = sqrt(1 - ab) here, the VP process). With a data-prediction model x_theta (the x0
estimate), its exact solution from s to t is (DPM-Solver++, Proposition 4.1)

    x_t = (sigma_t / sigma_s) x_s + sigma_t * integral_{lambda_s}^{lambda_t} e^lambda x_theta(x_lambda) d lambda.

The linear part is solved exactly; only x_theta is approximated, by a polynomial in lambda through
the last k estimates (the "multistep" of Adams-Bashforth methods; one model call per step). With
h = lambda_t - lambda_s:

  order 1 (DPM-Solver++1, which *is* DDIM with eta = 0):
      x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) D0,                  D0 = x_theta(x_s)
  order 2 (DPM-Solver++(2M), Algorithm 2; r = h_prev / h, "midpoint" form):
      x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) (D0 + D1 / 2),     D1 = (D0 - x_theta_prev) / r
  order 3 (the third-order multistep update of DPM-Solver's official code and diffusers):
      x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) D0 + alpha_t ((e^-h - 1) / h + 1) D1
            - alpha_t ((e^-h - 1 + h) / h^2 - 1/2) D2   (D1, D2: divided differences of 3 estimates)

``algorithm_type="sde-dpmsolver++"`` solves the reverse SDE instead (Lu et al. 2022, appendix; as
diffusers): the same polynomial in D, with e^-h -> e^-2h where the ODE has e^-h, and fresh noise
sigma_t sqrt(1 - e^-2h) z at each step; order 1:

      x_t = (sigma_t / sigma_s) e^-h x_s + alpha_t (1 - e^-2h) D0 + sigma_t sqrt(1 - e^-2h) z.

Stochastic steps forget part of the error of earlier steps, as ancestral DDPM does.

The first steps have no history and use the lower orders; the final step(s) do too when
``lower_order_final`` (fewer than 15 steps) or when the last sigma is 0 (the last step then
returns the clean estimate itself). Data prediction is what makes large guidance scales stable,
and the x0 estimate is where dynamic thresholding acts (``thresholding=True``).

Taught in notebook 03 (notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from minifusion.diffusion.scheduling_utils import SchedulerOutput, check_choice, check_flag
from minifusion.diffusion.sigmas import SigmaScheduler, alpha_sigma_t, karras_sigmas, sigma_to_t, t_to_sigma

ALGORITHM_TYPES = ("dpmsolver++", "sde-dpmsolver++")
SOLVER_TYPES = ("midpoint", "heun")
SOLVER_ORDERS = (1, 2, 3)

DPMSolverMultistepSchedulerOutput = SchedulerOutput


class DPMSolverMultistepScheduler(SigmaScheduler):
    """DPM-Solver++ multistep sampler; arguments and numbers follow diffusers' class of this name.

    Takes every argument of ``DDPMScheduler`` (except ``variance_type``; ``timestep_spacing``
    defaults to "linspace" as in diffusers) and:

    Args:
        solver_order: 1, 2 (default; the recommended for guided sampling) or 3.
        algorithm_type: "dpmsolver++" (data prediction, the ODE) or "sde-dpmsolver++" (the SDE).
        solver_type: "midpoint" (default) or "heun", two forms of the second-order update.
        lower_order_final: use lower orders for the last steps when there are fewer than 15.
        euler_at_final: always make the very last step first order.
        use_karras_sigmas: Karras et al. eq. 5 sigmas over the whole training range.
        final_sigmas_type: "zero" (default) or "sigma_min": the noise level the last step reaches.

    Timesteps (Lin et al. 2024, Table 2, as diffusers spaces them for this solver): "linspace"
    rounds linspace(0, T - 1, n + 1) and drops the 0; "leading" is k * (T // (n + 1)) for
    k = n..1 (+ steps_offset); "trailing" is round(T - k T / n) - 1. Each step keeps the x0
    estimate for the next ones: call ``set_timesteps`` before every sampling loop.
    Sampling steps do not trust an epsilon model's x0 estimate where alpha_bar < 1e-6 (t = 999
    of the cosine schedule): they use x0 = 0 there (see ``BaseScheduler._pred_x0_eps``).
    """

    def __init__(
        self,
        *,
        solver_order: int = 2,
        algorithm_type: str = "dpmsolver++",
        solver_type: str = "midpoint",
        lower_order_final: bool = True,
        euler_at_final: bool = False,
        use_karras_sigmas: bool = False,
        final_sigmas_type: str = "zero",
        **kwargs: Any,
    ) -> None:
        check_choice("solver_order", solver_order, SOLVER_ORDERS)  # True is not 1
        check_choice("algorithm_type", algorithm_type, ALGORITHM_TYPES)
        check_choice("solver_type", solver_type, SOLVER_TYPES)
        check_flag("lower_order_final", lower_order_final)
        check_flag("euler_at_final", euler_at_final)
        kwargs.setdefault("timestep_spacing", "linspace")
        super().__init__(use_karras_sigmas=use_karras_sigmas, final_sigmas_type=final_sigmas_type, **kwargs)
        self._config.update(solver_order=solver_order, algorithm_type=algorithm_type, solver_type=solver_type,
                            lower_order_final=lower_order_final, euler_at_final=euler_at_final)

    def _reset_history(self) -> None:
        self.model_outputs: list[torch.Tensor] = []  # x0 estimates of the last solver_order steps, oldest first
        self.lower_order_nums = 0  # steps taken so far (capped at solver_order): the order available

    def _timesteps_and_sigmas(self, num_inference_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        n, T, cfg = num_inference_steps, self.num_train_timesteps, self._config
        spacing = cfg["timestep_spacing"]
        if spacing == "linspace":
            ts = torch.linspace(0, T - 1, n + 1, dtype=torch.float64).round().flip(0)[:-1]
        elif spacing == "leading":
            ts = (torch.arange(n + 1, dtype=torch.float64) * (T // (n + 1))).flip(0)[:-1] + cfg["steps_offset"]
        else:  # trailing
            ts = (T - torch.arange(n, dtype=torch.float64) * (T / n)).round() - 1
        if int(ts.max()) >= T:
            raise ValueError(f"steps_offset {cfg['steps_offset']} pushes the first timestep to {int(ts.max())}, "
                             f"outside 0..{T - 1}; use a smaller steps_offset or fewer steps")
        if cfg["use_karras_sigmas"]:
            train = self._train_sigmas64
            sigmas = karras_sigmas(float(train[0]), float(train[-1]), n)
            ts = sigma_to_t(sigmas, train)
            if cfg["beta_schedule"] != "squaredcos_cap_v2":  # diffusers rounds except for the cosine schedule
                ts = ts.round()
            return ts.trunc(), sigmas
        return ts, t_to_sigma(ts, self._train_sigmas64)

    def _advance(self, i: int, model_output: torch.Tensor, sample: torch.Tensor,
                 noise: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``i``: keep the x0 estimate, pick the order, update (module docstring)."""
        cfg, n = self._config, len(self._timestep_list)
        x0 = self._x0_at_sigma(model_output, sample, self._sigma_list[i])
        self.model_outputs = [*self.model_outputs, x0][-cfg["solver_order"]:]
        few_steps = cfg["lower_order_final"] and n < 15
        final_first_order = i == n - 1 and (cfg["euler_at_final"] or few_steps or cfg["final_sigmas_type"] == "zero")
        final_second_order = i == n - 2 and few_steps
        order = min(cfg["solver_order"], self.lower_order_nums + 1)
        if final_first_order:
            order = 1
        elif final_second_order:
            order = min(order, 2)
        z = noise() if cfg["algorithm_type"] == "sde-dpmsolver++" else None  # drawn at every step, as diffusers
        prev_sample = self._update(order, sample, i, z)
        self.lower_order_nums = min(self.lower_order_nums + 1, cfg["solver_order"])
        return prev_sample, x0

    def _lambda(self, sigma: float) -> float:
        """lambda = log(alpha_t / sigma_t) = -log(sigma): half the log-SNR (inf at sigma = 0)."""
        return math.inf if sigma == 0 else -math.log(sigma)

    def _update(self, order: int, sample: torch.Tensor, i: int, z: torch.Tensor | None) -> torch.Tensor:
        """x at sigma_{i+1} from x at sigma_i with the last ``order`` x0 estimates (module docstring);
        ``z``: the standard normal noise of an SDE step (None for the ODE)."""
        s = self._sigma_list
        alpha_t, sigma_t = alpha_sigma_t(s[i + 1])
        _, sigma_s0 = alpha_sigma_t(s[i])
        h = self._lambda(s[i + 1]) - self._lambda(s[i])
        if z is not None:
            return self._sde_update(order, sample, i, z, h, alpha_t, sigma_t / sigma_s0, sigma_t)
        phi_1 = math.expm1(-h)  # e^-h - 1 (-1 when the last sigma is 0)
        m = self.model_outputs[::-1]  # newest first: m[0] = x_theta(x_s0), m[1] = x_theta(x_s1), ...
        x_t = (sigma_t / sigma_s0) * sample - (alpha_t * phi_1) * m[0]
        if order == 1:
            return x_t
        d1, d2 = self._differences(order, i, h)
        if order == 2:
            if self._config["solver_type"] == "midpoint":
                return x_t - 0.5 * (alpha_t * phi_1) * d1
            return x_t + (alpha_t * (phi_1 / h + 1.0)) * d1
        return (x_t + (alpha_t * (phi_1 / h + 1.0)) * d1
                - (alpha_t * ((phi_1 + h) / h**2 - 0.5)) * d2)

    def _differences(self, order: int, i: int, h: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D1 (and D2 for order 3): divided differences in lambda of the last x0 estimates, scaled by h."""
        s, m = self._sigma_list, self.model_outputs[::-1]
        r0 = (self._lambda(s[i]) - self._lambda(s[i - 1])) / h
        d1 = (m[0] - m[1]) / r0
        if order == 2:
            return d1, None
        r1 = (self._lambda(s[i - 1]) - self._lambda(s[i - 2])) / h
        d1_1 = (m[1] - m[2]) / r1
        return d1 + (r0 / (r0 + r1)) * (d1 - d1_1), (d1 - d1_1) / (r0 + r1)

    def _sde_update(self, order: int, sample: torch.Tensor, i: int, z: torch.Tensor, h: float, alpha_t: float,
                    sigma_ratio: float, sigma_t: float) -> torch.Tensor:
        """The SDE step of "sde-dpmsolver++" (module docstring), orders 1-3 as diffusers."""
        m0 = self.model_outputs[-1]
        decay = math.exp(-2.0 * h)  # e^-2h (0 when the last sigma is 0)
        x_t = (sigma_ratio * math.exp(-h)) * sample + (alpha_t * (1.0 - decay)) * m0
        x_t = x_t + (sigma_t * math.sqrt(1.0 - decay)) * z
        if order == 1:
            return x_t
        d1, d2 = self._differences(order, i, h)
        if order == 2 and self._config["solver_type"] == "midpoint":
            return x_t + 0.5 * (alpha_t * (1.0 - decay)) * d1
        x_t = x_t + (alpha_t * ((1.0 - decay) / (-2.0 * h) + 1.0)) * d1
        if order == 2:
            return x_t
        return x_t + (alpha_t * ((1.0 - decay - 2.0 * h) / (2.0 * h) ** 2 - 0.5)) * d2
