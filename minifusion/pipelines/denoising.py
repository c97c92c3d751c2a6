"""The guided denoising loop both pipeline stages share, and its checks.

One stage = start from Gaussian noise drawn from the caller's ``generator`` (on the CPU, so a seed
gives the same noise on any device), then for each scheduled timestep: one model call that
returns the (guided) prediction, one ``scheduler.step``, and the ``callback_on_step_end`` hook of
diffusers: ``callback(pipe, step_index, timestep, callback_kwargs) -> dict``. The callback sees
``callback_kwargs = {"latents", "pred_original_sample", "stage", "num_steps"}`` after the step and
may return ``{"latents": tensor}`` (same shape) to replace the latents the next step starts from.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from minifusion.diffusion.scheduling_utils import BaseScheduler


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
) -> torch.Tensor:
    """Run ``scheduler`` from ``latents`` (x_T) with ``model_fn(x_t, t) -> guided prediction``.

    The model output is cast to float32 before the step, so the scheduler arithmetic stays in
    float32 under autocast. Returns the clean latents, the shape of ``latents``.
    """
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    x = latents * scheduler.init_noise_sigma
    config = {"desc": stage, "leave": False, **(progress_bar_config or {})}
    for i, t in enumerate(tqdm(scheduler.timesteps, **config)):
        model_output = model_fn(scheduler.scale_model_input(x, t), t).float()
        result = scheduler.step(model_output, t, x, generator=generator, **(step_kwargs or {}))
        x = result.prev_sample
        if callback_on_step_end is not None:
            kwargs = {"latents": x, "pred_original_sample": result.pred_original_sample, "stage": stage,
                      "num_steps": num_inference_steps}
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
