"""The sampling loop shared by notebooks and tests: noise -> scheduler steps -> clean sample.

Pipelines write their own loop (guidance, conditioning, callbacks); this one takes any
``model_fn(x_t, t) -> prediction`` and records the trajectory for plots and widgets.
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


@torch.no_grad()
def sample_loop(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: BaseScheduler,
    noise: torch.Tensor,
    *,
    num_inference_steps: int,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    progress: bool = True,
    **step_kwargs: Any,
) -> SamplingOutput:
    """Run ``scheduler`` from ``noise`` (x_T ~ N(0, I), any shape) for ``num_inference_steps``.

    ``step_kwargs`` go to ``scheduler.step`` (e.g. ``eta=0.5`` for DDIM). With
    ``return_trajectory`` every intermediate x_t and x0 estimate is kept (on the CPU).
    """
    scheduler.set_timesteps(num_inference_steps, device=noise.device)
    x = noise * scheduler.init_noise_sigma
    out = SamplingOutput(sample=x)
    for t in progress_bar(scheduler.timesteps, desc="sampling", disable=not progress, leave=False):
        model_output = model_fn(scheduler.scale_model_input(x, t), t)
        result = scheduler.step(model_output, t, x, generator=generator, **step_kwargs)
        out.timesteps.append(int(t))
        if return_trajectory:
            out.trajectory.append(x.detach().cpu())
            out.pred_original_samples.append(result.pred_original_sample.detach().cpu())
        x = result.prev_sample
    if return_trajectory:
        out.trajectory.append(x.detach().cpu())
    out.sample = x
    return out
