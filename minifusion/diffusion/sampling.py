"""The sampling loop: noise -> one model call and one ``scheduler.step`` per timestep -> clean sample.

It is the package's only denoising loop: the pipeline's keyframe and interpolation stages
(``minifusion.pipelines.denoising.denoise``), the T2I recipe's samples, the MFI baseline, the
notebooks and the tests all run it. It takes any ``model_fn(x_t, t) -> prediction`` (guidance and
conditioning live in ``model_fn``) and can record the trajectory for plots and widgets.

``strength < 1`` starts part-way (SDEdit, Meng et al. 2022; diffusers' ``strength``): of the
``num_inference_steps`` scheduled timesteps only the last ``round(strength * n)`` run, from
``init_latents`` noised to the first of them with the given noise.

Taught in notebook 03 (notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from minifusion.diffusion.scheduling_utils import BaseScheduler
from minifusion.viz.progress import progress_bar


@dataclass
class SamplingOutput:
    sample: torch.Tensor  # the final clean sample, shape of the starting noise
    timesteps: list[int] = field(default_factory=list)  # the timesteps visited, in order
    trajectory: list[torch.Tensor] = field(default_factory=list)  # x_t before each step, then the result
    pred_original_samples: list[torch.Tensor] = field(default_factory=list)  # x0 estimate of each step


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


# callback(step_index, t, x, step_output) after each step; it may return new latents of x's shape
StepCallback = Callable[[int, torch.Tensor, torch.Tensor, Any], "torch.Tensor | None"]


@torch.no_grad()
def sample_loop(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: BaseScheduler,
    noise: torch.Tensor,
    *,
    num_inference_steps: int,
    generator: torch.Generator | None = None,
    init_latents: torch.Tensor | None = None,
    strength: float = 1.0,
    callback: StepCallback | None = None,
    return_trajectory: bool = False,
    progress: bool = True,
    progress_bar_config: dict | None = None,
    **step_kwargs: Any,
) -> SamplingOutput:
    """Run ``scheduler`` from ``noise`` (x_T ~ N(0, I), any shape) for ``num_inference_steps``.

    Args:
        generator: passed to ``scheduler.step`` (stochastic samplers draw their step noise from it).
        init_latents, strength: with ``strength < 1`` the run starts from ``init_latents`` (the shape of
            ``noise``) noised with ``noise`` to the first kept timestep (module docstring).
        callback: ``callback(i, t, x, step_output)`` after step i; a tensor it returns replaces x.
        return_trajectory: keep every intermediate x_t and x0 estimate (on the CPU).
        progress, progress_bar_config: the progress bar (``desc``, ``disable``, ... of tqdm).
        step_kwargs: go to ``scheduler.step`` (e.g. ``eta=0.5`` for DDIM).

    A half-precision model output (autocast) is cast to float32, so the scheduler arithmetic stays in
    float32.
    """
    scheduler.set_timesteps(num_inference_steps, device=noise.device)
    timesteps = scheduler.timesteps
    if strength == 1.0:
        x = noise * scheduler.init_noise_sigma
    else:
        if init_latents is None or init_latents.shape != noise.shape:
            got = None if init_latents is None else tuple(init_latents.shape)
            raise ValueError(f"strength {strength} < 1 needs init_latents of the noise's shape "
                             f"{tuple(noise.shape)}, got {got}")
        timesteps = start_timesteps(scheduler, strength)
        x = scheduler.add_noise(init_latents.to(noise.dtype), noise, timesteps[0])  # in the sampler's units
    out = SamplingOutput(sample=x)
    config = {"desc": "sampling", "leave": False, "disable": not progress, **(progress_bar_config or {})}
    for i, t in enumerate(progress_bar(timesteps, **config)):
        model_output = model_fn(scheduler.scale_model_input(x, t), t)
        if model_output.dtype in (torch.float16, torch.bfloat16):
            model_output = model_output.float()
        result = scheduler.step(model_output, t, x, generator=generator, **step_kwargs)
        out.timesteps.append(int(t))
        if return_trajectory:
            out.trajectory.append(x.detach().cpu())
            out.pred_original_samples.append(result.pred_original_sample.detach().cpu())
        x = result.prev_sample
        if callback is not None:
            replaced = callback(i, t, x, result)
            if replaced is not None:
                x = replaced
    if return_trajectory:
        out.trajectory.append(x.detach().cpu())
    out.sample = x
    return out
