"""The guided denoising loop both pipeline stages share, and its checks.

One stage = start from Gaussian noise drawn from the caller's ``generator`` (on the CPU, so a seed
gives the same noise on any device), then for each scheduled timestep: one model call that
returns the (guided) prediction, one ``scheduler.step``, and the ``callback_on_step_end`` hook of
diffusers: ``callback(pipe, step_index, timestep, callback_kwargs) -> dict``. The callback sees
``callback_kwargs = {"latents", "pred_original_sample", "stage", "num_steps"}`` (the steps this stage
runs) after the step and
may return ``{"latents": tensor}`` (same shape) to replace the latents the next step starts from.

``strength < 1`` starts part-way instead (SDEdit, Meng et al. 2022; diffusers' ``strength``): of the
``num_inference_steps`` scheduled timesteps only the last ``round(strength * n)`` run, from
``init_latents`` noised to the first of them with the caller's noise. The interpolator uses it to
start from the keyframes' blend: the blend gives the layout, the network the detail.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch

from minifusion.diffusion.scheduling_utils import BaseScheduler
from minifusion.viz.progress import progress_bar


def check_guidance_scale(name: str, value: Any) -> float:
    """A finite number >= 0 (s = 1: no guidance); NaN, inf, negatives and non-numbers raise ValueError."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number >= 0 (1 = no guidance), got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (1 = no guidance), got {value!r}")
    return float(value)


def check_steps(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """float32 N(0, I) drawn on the generator's device (the CPU by default), then moved to ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32).to(device)


def autocast_context(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA where supported (else fp16); nothing on other devices (CPU bf16 is slow)."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def check_strength(value: Any, name: str = "strength") -> float:
    """A number in (0, 1]: 1 starts from pure noise, smaller values from ``init_latents`` noised part-way."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1] (1 = start from pure noise), got {value!r}")
    return float(value)


def kept_steps(strength: float, num_inference_steps: int) -> int:
    """How many of ``num_inference_steps`` a run with ``strength`` takes: round(strength * n), at least 1
    (ValueError otherwise)."""
    runs = round(strength * num_inference_steps)
    if runs < 1:
        raise ValueError(f"strength {strength} keeps no step of {num_inference_steps} (round(strength * steps) = 0); "
                         f"use strength >= {0.5 / num_inference_steps:.3g} or more steps")
    return runs


def start_timesteps(scheduler: BaseScheduler, strength: float) -> torch.Tensor:
    """The timesteps a run with ``strength`` takes: the last ``kept_steps`` of those ``set_timesteps`` chose."""
    n = len(scheduler.timesteps)
    return scheduler.timesteps[n - kept_steps(strength, n):]


def denoise(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: BaseScheduler,
    latents: torch.Tensor,
    *,
    num_inference_steps: int,
    generator: torch.Generator | None,
    stage: str,
    pipe: Any = None,
    callback_on_step_end: Callable | None = None,
    progress_bar_config: dict | None = None,
    step_kwargs: dict | None = None,
    init_latents: torch.Tensor | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Run ``scheduler`` from ``latents`` (x_T) with ``model_fn(x_t, t) -> guided prediction``.

    With ``strength < 1``, ``latents`` is the noise and the run starts from ``init_latents`` (same
    shape) noised to the first kept timestep (module docstring). The model output is cast to float32
    before the step, so the scheduler arithmetic stays in float32 under autocast. Returns the clean
    latents, the shape of ``latents``.
    """
    strength = check_strength(strength)
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    timesteps = scheduler.timesteps
    if strength == 1.0:
        x = latents * scheduler.init_noise_sigma
    else:
        if init_latents is None or init_latents.shape != latents.shape:
            got = None if init_latents is None else tuple(init_latents.shape)
            raise ValueError(f"strength {strength} < 1 needs init_latents of the noise's shape "
                             f"{tuple(latents.shape)}, got {got}")
        timesteps = start_timesteps(scheduler, strength)
        x = scheduler.add_noise(init_latents.to(latents.dtype), latents, timesteps[0])  # in the sampler's units
    config = {"desc": stage, "leave": False, **(progress_bar_config or {})}
    for i, t in enumerate(progress_bar(timesteps, **config)):
        model_output = model_fn(scheduler.scale_model_input(x, t), t).float()
        result = scheduler.step(model_output, t, x, generator=generator, **(step_kwargs or {}))
        x = result.prev_sample
        if callback_on_step_end is not None:
            kwargs = {"latents": x, "pred_original_sample": result.pred_original_sample, "stage": stage,
                      "num_steps": len(timesteps)}
            returned = callback_on_step_end(pipe, i, t, kwargs)
            if returned is not None:
                if not isinstance(returned, dict):
                    raise ValueError(f"callback_on_step_end must return a dict or None, got {type(returned).__name__}")
                if "latents" in returned:
                    new = returned["latents"]
                    if not isinstance(new, torch.Tensor) or new.shape != x.shape:
                        shape = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                        raise ValueError(f"callback_on_step_end returned latents of shape {shape}; "
                                         f"they must keep the shape {tuple(x.shape)}")
                    x = new.to(device=x.device, dtype=x.dtype)
    return x
