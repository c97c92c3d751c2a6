"""What the pipeline stages add to the package's one sampling loop (``minifusion.diffusion.sample_loop``).

One stage = start from Gaussian noise drawn from the caller's ``generator`` (on the CPU, so a seed
gives the same noise on any device), then ``sample_loop``: for each scheduled timestep one model
call that returns the (guided) prediction and one ``scheduler.step``; after each step the
``callback_on_step_end`` hook of diffusers: ``callback(pipe, step_index, timestep, callback_kwargs) -> dict``.
The callback sees ``callback_kwargs = {"latents", "pred_original_sample", "stage", "num_steps"}`` (the
steps this stage runs) and may return ``{"latents": tensor}`` (same shape) to replace the latents the
next step starts from.

``strength < 1`` starts part-way instead (SDEdit; ``sample_loop``): the interpolator uses it to
start from the keyframes' blend: the blend gives the layout, the network the detail.

Taught in notebook 11 (notebooks/11_full_pipeline.ipynb).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from minifusion.checks import check_number
from minifusion.diffusion.sampling import kept_steps, sample_loop
from minifusion.diffusion.scheduling_utils import BaseScheduler


def check_guidance_scale(name: str, value: Any) -> float:
    """A finite number >= 0 (s = 1: no guidance); a one-element tensor is taken for its value."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return float(check_number(name, value, minimum=0, note="(1 = no guidance)"))


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
    return float(check_number(name, value, minimum=0, maximum=1, exclusive_minimum=True,
                              note="(1 = start from pure noise)"))


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
    shape) noised to the first kept timestep. Returns the clean latents, the shape of ``latents``.
    """
    strength = check_strength(strength)
    step_callback = None
    if callback_on_step_end is not None:
        def step_callback(i: int, t: torch.Tensor, x: torch.Tensor, result) -> torch.Tensor | None:
            scheduled = len(scheduler.timesteps)  # the steps this stage runs
            num_steps = scheduled if strength == 1.0 else kept_steps(strength, scheduled)
            kwargs = {"latents": x, "pred_original_sample": result.pred_original_sample, "stage": stage,
                      "num_steps": num_steps}
            returned = callback_on_step_end(pipe, i, t, kwargs)
            if returned is None or "latents" not in _as_dict(returned):
                return None
            new = returned["latents"]
            if not isinstance(new, torch.Tensor) or new.shape != x.shape:
                shape = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                raise ValueError(f"callback_on_step_end returned latents of shape {shape}; "
                                 f"they must keep the shape {tuple(x.shape)}")
            return new.to(device=x.device, dtype=x.dtype)

    return sample_loop(model_fn, scheduler, latents, num_inference_steps=num_inference_steps, generator=generator,
                       init_latents=init_latents, strength=strength, callback=step_callback,
                       progress_bar_config={"desc": stage, **(progress_bar_config or {})},
                       **(step_kwargs or {})).sample


def _as_dict(returned: Any) -> dict:
    if not isinstance(returned, dict):
        raise ValueError(f"callback_on_step_end must return a dict or None, got {type(returned).__name__}")
    return returned
