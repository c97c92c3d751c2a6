"""What every scheduler shares: the schedule, the forward process, timesteps, conversions, checks.

Samples may have any rank with the batch first: images (B, C, H, W), video (B, C, F, H, W),
or toy data (B, D). The forward process (Ho et al. 2020, eq. 4) is
``x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps``.

Names and arguments follow diffusers (``set_timesteps``, ``step(...).prev_sample``,
``add_noise``, ``get_velocity``, ``config`` / ``from_config``) so a learner's skills carry over;
the code is written from the papers. Bad input raises ``ValueError``; nothing is silently fixed.

Taught in notebooks 02 and 03 (notebooks/02_noise_schedules.ipynb, notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch

from minifusion.checks import check_int, check_number, check_one_of
from minifusion.diffusion.prediction import check_prediction_type, convert_model_output, model_output_from
from minifusion.diffusion.schedules import alphas_cumprod_from_betas, make_betas, rescale_zero_terminal_snr
from minifusion.diffusion.thresholding import clip_sample as _clip
from minifusion.diffusion.thresholding import dynamic_threshold

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")

# Below this alpha_bar an epsilon model's x0 estimate is its error amplified > 1000-fold; the
# sampling steps use x0 = 0 there (see BaseScheduler._pred_x0_eps). Only t = 999 of the cosine
# schedule (2.4e-9; t = 998 has 2.4e-6) and the last step of a zero-terminal-SNR schedule.
UNRELIABLE_X0_ALPHA_BAR = 1e-6


@dataclass
class SchedulerOutput:
    """Result of one sampling step."""

    prev_sample: torch.Tensor  # x_{t_prev}, the input of the next step (the clean sample after the last)
    pred_original_sample: torch.Tensor  # the x0 estimate used by this step (after clipping/thresholding)


def _is_int(value: Any) -> bool:
    """A python or numpy integer (not a bool, not a float that happens to be whole)."""
    return hasattr(value, "__index__") and not isinstance(value, (bool, torch.Tensor))


def check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_choice(name: str, value: Any, allowed: tuple) -> None:
    check_one_of(name, value, allowed)


def check_num_inference_steps(num_inference_steps: Any, num_train_timesteps: int) -> int:
    if not _is_int(num_inference_steps) or not 1 <= int(num_inference_steps) <= num_train_timesteps:
        raise ValueError(f"num_inference_steps must be an int in 1..{num_train_timesteps} (num_train_timesteps), "
                         f"got {num_inference_steps!r}")
    return int(num_inference_steps)


def _check_floating(name: str, x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have a batch dimension, got shape {tuple(x.shape)}")


class BaseScheduler:
    """Shared machinery; subclasses implement ``step``. See ``DDPMScheduler`` for the arguments."""

    # every constructor argument of every scheduler: from_config drops another scheduler's own ones
    _all_scheduler_args: set[str] = set()
    init_noise_sigma = 1.0  # std of the starting noise x_T (diffusers name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BaseScheduler._all_scheduler_args |= cls.constructor_args()

    @classmethod
    def constructor_args(cls) -> set[str]:
        """Names the constructor takes, following ``**kwargs`` up to the class that consumes them."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if "__init__" not in klass.__dict__:
                continue
            params = inspect.signature(klass.__dict__["__init__"]).parameters.values()
            names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY}
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        return names

    def __init__(
        self,
        *,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        prediction_type: str = "epsilon",
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        timestep_spacing: str = "leading",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ) -> None:
        check_prediction_type(prediction_type)
        check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        for name, flag in (
            ("clip_sample", clip_sample),
            ("thresholding", thresholding),
            ("rescale_betas_zero_snr", rescale_betas_zero_snr),
        ):
            check_flag(name, flag)
        check_number("clip_sample_range", clip_sample_range, minimum=0, exclusive_minimum=True)
        check_number("sample_max_value", sample_max_value, minimum=0, exclusive_minimum=True)
        if thresholding and sample_max_value < clip_sample_range:
            raise ValueError(
                f"sample_max_value ({sample_max_value!r}) must be >= clip_sample_range ({clip_sample_range!r}), "
                "the data range that thresholding is relative to"
            )
        check_number("dynamic_thresholding_ratio", dynamic_thresholding_ratio, minimum=0, maximum=1,
                     exclusive_minimum=True)
        steps_offset = check_int("steps_offset", steps_offset, minimum=0, numpy=True)

        betas = make_betas(beta_schedule, num_train_timesteps, beta_start, beta_end)  # float64
        if rescale_betas_zero_snr:
            betas = rescale_zero_terminal_snr(betas)
        alphas_cumprod = alphas_cumprod_from_betas(betas)
        # float64 copies for the per-step coefficients; float32 public buffers (project convention)
        self._alphas_cumprod64 = alphas_cumprod
        self.betas = betas.float()
        self.alphas = (1 - betas).float()
        self.alphas_cumprod = alphas_cumprod.float()

        self._config = dict(  # the constructor's arguments, in its order (save_config / from_config)
            num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
            beta_schedule=beta_schedule, prediction_type=prediction_type, clip_sample=clip_sample,
            clip_sample_range=clip_sample_range, thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio, sample_max_value=sample_max_value,
            timestep_spacing=timestep_spacing, steps_offset=steps_offset, rescale_betas_zero_snr=rescale_betas_zero_snr,
        )
        self.num_train_timesteps = num_train_timesteps
        self.num_inference_steps: int | None = None
        # Until set_timesteps: every training step, last first (so sampling works out of the box
        # only after an explicit set_timesteps, as in diffusers; step() checks this).
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1, dtype=torch.int64)
        self._timestep_list: list[int] | None = None

    # ----------------------------------------------------------------- config
    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments; ``type(s)(**s.config)`` builds an identical scheduler."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any], **overrides: Any):
        """Build from a config dict (e.g. another scheduler's ``.config``), with overrides.

        Arguments that belong only to another scheduler (DDPM's ``variance_type``, DDIM's
        ``set_alpha_to_one``, DPM-Solver's ``solver_order``, ...) are dropped, so
        ``DDIMScheduler.from_config(ddpm.config)`` works; any other unknown key raises.
        """
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        accepted = cls.constructor_args()
        merged = {**config, **overrides}
        unknown = sorted(set(merged) - accepted - BaseScheduler._all_scheduler_args)
        if unknown:
            raise ValueError(f"unknown config keys {unknown} for {cls.__name__}; allowed: {sorted(accepted)}")
        return cls(**{k: v for k, v in merged.items() if k in accepted})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    # --------------------------------------------------------------- timesteps
    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose the sampling timesteps (descending) for ``num_inference_steps`` steps.

        Spacing (Lin et al. 2024, Table 2), T = num_train_timesteps, n = num_inference_steps:
          - "leading":  0, T//n, 2*T//n, ... (+ steps_offset); starts below T - 1 (980 for 50 steps);
          - "trailing": round(T - k*T/n) - 1 for k = 0..n-1; starts at T - 1 (999), pure noise;
          - "linspace": round(linspace(0, T - 1, n)); starts at T - 1 and ends at 0.
        ``steps_offset`` shifts "leading" only (as in diffusers).
        """
        T = self.num_train_timesteps
        n = check_num_inference_steps(num_inference_steps, T)
        spacing = self._config["timestep_spacing"]
        if spacing == "leading":
            ts = torch.arange(n, dtype=torch.int64) * (T // n) + self._config["steps_offset"]
        elif spacing == "trailing":
            ts = (T - torch.arange(n, dtype=torch.float64) * (T / n)).round().to(torch.int64) - 1
        else:
            ts = torch.linspace(0, T - 1, n, dtype=torch.float64).round().to(torch.int64)
        ts = ts.sort(descending=True).values
        if int(ts.max()) >= T:
            raise ValueError(
                f"steps_offset {self._config['steps_offset']} pushes the first timestep to {int(ts.max())}, "
                f"outside 0..{T - 1}; use a smaller steps_offset or fewer steps"
            )
        self.num_inference_steps = n
        self.timesteps = ts.to(device) if device is not None else ts
        self._timestep_list = ts.tolist()

    def _step_index(self, timestep: int | torch.Tensor) -> int:
        """Position of ``timestep`` in the schedule; raises if not set or not in it."""
        if self._timestep_list is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step()")
        t = self._scalar_timestep(timestep)
        try:
            return self._timestep_list.index(t)
        except ValueError:
            shown = self._timestep_list if len(self._timestep_list) <= 12 else (
                f"{self._timestep_list[:3]} ... {self._timestep_list[-3:]}"
            )
            raise ValueError(f"timestep {t} is not in the schedule set by set_timesteps: {shown}") from None

    def previous_timestep(self, timestep: int | torch.Tensor) -> int:
        """The next timestep of the schedule after ``timestep`` (-1 after the last: the clean sample)."""
        i = self._step_index(timestep)
        return self._timestep_list[i + 1] if i + 1 < len(self._timestep_list) else -1

    def _scalar_timestep(self, timestep: int | torch.Tensor) -> int:
        if isinstance(timestep, torch.Tensor):
            if timestep.ndim != 0:
                raise ValueError(
                    "step takes one timestep for the whole batch (an int or 0-d tensor), "
                    f"got shape {tuple(timestep.shape)}"
                )
            if timestep.is_floating_point() or timestep.is_complex() or timestep.dtype == torch.bool:
                raise ValueError(f"timestep must be an integer, got a {timestep.dtype} tensor {timestep.item()!r}")
            timestep = int(timestep.item())
        elif hasattr(timestep, "__index__") and not isinstance(timestep, bool):
            timestep = int(timestep)  # python or numpy integer
        else:
            raise ValueError(f"timestep must be an int or an integer tensor, got {timestep!r}")
        if not 0 <= timestep < self.num_train_timesteps:
            raise ValueError(f"timestep {timestep} is outside 0..{self.num_train_timesteps - 1}")
        return timestep

    def _batch_alpha_bar(self, timesteps: int | torch.Tensor, batch: int) -> float | torch.Tensor:
        """alpha_bar (float64) for a scalar timestep, or a (B,) tensor for per-sample timesteps."""
        if isinstance(timesteps, torch.Tensor) and timesteps.ndim == 1:
            if timesteps.is_floating_point() or timesteps.dtype == torch.bool:
                raise ValueError(f"timesteps must be an integer tensor, got dtype {timesteps.dtype}")
            if timesteps.shape[0] != batch:
                raise ValueError(f"timesteps has shape {tuple(timesteps.shape)}; need one per sample, ({batch},)")
            t = timesteps.detach().cpu().long()
            if len(t) and (int(t.min()) < 0 or int(t.max()) >= self.num_train_timesteps):
                raise ValueError(f"timesteps {t.tolist()} must lie in 0..{self.num_train_timesteps - 1}")
            return self._alphas_cumprod64[t]
        if isinstance(timesteps, torch.Tensor) and timesteps.ndim > 1:
            raise ValueError(f"timesteps must be an int, 0-d or 1-d tensor, got shape {tuple(timesteps.shape)}")
        return float(self._alphas_cumprod64[self._scalar_timestep(timesteps)])

    # ---------------------------------------------------------- forward process
    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: int | torch.Tensor
    ) -> torch.Tensor:
        """q(x_t | x0): ``sqrt(ab_t) * x0 + sqrt(1 - ab_t) * noise``; timesteps scalar or (B,)."""
        self._check_pair("original_samples", original_samples, "noise", noise)
        ab = self._batch_alpha_bar(timesteps, original_samples.shape[0])
        x0, eps = original_samples, noise
        # x_t from (x0, eps) is model_output_from(..., "sample") reversed; written out for clarity
        ab = torch.as_tensor(ab, dtype=torch.float64)
        ab = ab.reshape(-1, *([1] * (x0.ndim - 1))) if ab.ndim == 1 else ab  # (B, 1, ..., 1)
        sqrt_ab = ab.sqrt().to(device=x0.device, dtype=x0.dtype)
        sqrt_one_minus_ab = (1 - ab).sqrt().to(device=x0.device, dtype=x0.dtype)
        return sqrt_ab * x0 + sqrt_one_minus_ab * eps

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: int | torch.Tensor) -> torch.Tensor:
        """v = sqrt(ab_t) * noise - sqrt(1 - ab_t) * x0 (Salimans & Ho 2022); ``sample`` is x0."""
        self._check_pair("sample", sample, "noise", noise)
        ab = self._batch_alpha_bar(timesteps, sample.shape[0])
        return model_output_from(sample, noise, ab, "v_prediction")

    def training_target(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: int | torch.Tensor
    ) -> torch.Tensor:
        """What a model of this ``prediction_type`` should output for x_t = add_noise(x0, noise, t)."""
        self._check_pair("original_samples", original_samples, "noise", noise)
        ab = self._batch_alpha_bar(timesteps, original_samples.shape[0])
        return model_output_from(original_samples, noise, ab, self._config["prediction_type"])

    def scale_model_input(self, sample: torch.Tensor, timestep: int | torch.Tensor | None = None) -> torch.Tensor:
        """Identity (DDPM/DDIM need no input scaling); kept so loops written for diffusers run."""
        return sample

    # ------------------------------------------------------------ conversions
    def predict_x0_and_eps(
        self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(pred_original_sample, pred_epsilon) from the raw model output; no clipping."""
        self._check_pair("model_output", model_output, "sample", sample)
        ab = self._batch_alpha_bar(timestep, sample.shape[0])
        return convert_model_output(model_output, sample, ab, self._config["prediction_type"])

    def _pred_x0_eps(
        self, model_output: torch.Tensor, t: int, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The x0 and eps that a sampling step uses: converted, then clipped/thresholded.

        The alpha-bar trap: the cosine schedule's betas are clipped at 0.999, so
        alpha_bar drops 1000-fold in the very last step, to 2.4e-9 at t = 999 (and to 0 with
        zero terminal SNR). An epsilon model's x0 estimate there is ``(x_t - eps_hat) / 4.9e-5``:
        an error d in eps_hat becomes 2e4 * d in x0, and the next DDIM step (999 -> 979) puts
        it back with weight sqrt(ab_979) = 0.03, i.e. injects 670 * d into x_979.

        Measured (an exact denoiser with a 5-10% relative eps error, a small MLP and a small
        conv net trained on toy data, eps rmse 0.05-0.08 at t = 999): unbounded, this throws
        samples far off the data for "trailing" and "linspace" (both start at 999), while
        "leading" (starts at 980) is fine. Clipping x0 to [-1, 1] bounds the damage for pixels,
        contrary to the first guess (before measuring), but latents cannot be clipped that way.
        Since x_t at alpha_bar < 1e-6 is pure noise to within 1e-3, nothing about x0 is
        learnable from it: the step uses x0 = 0 (the mean of centred data) and the matching
        eps = x_t / sqrt(1 - ab), so the first step only rescales the noise. Only the epsilon
        parameterisation needs this; "sample" and "v_prediction" recover x0 with error <= d.
        tests/test_sampling_trap.py compares this with the naive loop.
        """
        return self._pred_x0_eps_at(model_output, float(self._alphas_cumprod64[t]), sample)

    def _pred_x0_eps_at(
        self, model_output: torch.Tensor, ab: float, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``_pred_x0_eps`` at the noise level alpha_bar = ``ab`` (a sample x_t in VP units)."""
        prediction_type = self._config["prediction_type"]
        if prediction_type == "epsilon" and ab < UNRELIABLE_X0_ALPHA_BAR:
            x0 = torch.zeros_like(sample)
            eps = sample / math.sqrt(1 - ab)
        else:
            x0, eps = convert_model_output(model_output, sample, ab, prediction_type)
        return self.bound_pred_original_sample(x0), eps

    def bound_pred_original_sample(self, pred_original_sample: torch.Tensor) -> torch.Tensor:
        """Apply the configured thresholding (takes precedence) or clipping, relative to
        ``clip_sample_range`` (the data range R; see ``minifusion.diffusion.thresholding``)."""
        cfg = self._config
        if cfg["thresholding"]:
            return dynamic_threshold(
                pred_original_sample,
                ratio=cfg["dynamic_thresholding_ratio"],
                data_range=cfg["clip_sample_range"],
                max_value=cfg["sample_max_value"],
            )
        if cfg["clip_sample"]:
            return _clip(pred_original_sample, cfg["clip_sample_range"])
        return pred_original_sample

    # ----------------------------------------------------------------- checks
    @staticmethod
    def _check_pair(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
        _check_floating(name_a, a)
        _check_floating(name_b, b)
        if a.shape != b.shape:
            raise ValueError(
                f"{name_a} has shape {tuple(a.shape)} but {name_b} has shape {tuple(b.shape)}; they must match"
            )

    def _noise_like(
        self, sample: torch.Tensor, generator: torch.Generator | None, variance_noise: torch.Tensor | None
    ) -> torch.Tensor:
        if variance_noise is not None:
            self._check_pair("variance_noise", variance_noise, "sample", sample)
            return variance_noise.to(sample.dtype)
        device = generator.device if generator is not None else sample.device
        noise = torch.randn(sample.shape, generator=generator, device=device, dtype=sample.dtype)
        return noise.to(sample.device)
