"""All four schedulers against diffusers' classes of the same name: timesteps, sigmas, trajectories.

diffusers is pinned in requirements.txt, so ``make test`` always runs this file. Both sides sample
the same smooth toy "model" from the same noise; diffusers computes its schedule in float32 and
this package in float64, so values agree to about 1e-4 (relative), not bit for bit.

Known, deliberate differences, not compared: an epsilon model's first step at alpha_bar < 1e-6
(t = 999 of the cosine schedule: this package uses x0 = 0 there, tests/test_sampling_trap.py),
DDIM with "linspace" spacing (diffusers steps to t - T // n, not to the next scheduled timestep),
DDPM "fixed_large" with "trailing" spacing (its last timestep is 99 for 10 steps, and diffusers adds
noise of variance beta to the final sample there; this package never adds noise on the last step),
and Karras sigmas on the cosine schedule (all steps bunch up at t = 998-999, where diffusers' float32
rounding picks another integer timestep).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from minifusion.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

try:
    import diffusers
except ImportError as e:  # a clear failure, never a skip: the comparison is part of make test
    raise ImportError("diffusers is pinned in requirements.txt for these tests; run make setup "
                      "(or pip install -r requirements.txt)") from e

# diffusers' schedulers hand numpy a tensor (numpy 2 warns); not this package's concern
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SCHEDULES = ["linear", "scaled_linear", "squaredcos_cap_v2"]
PREDICTIONS = ["epsilon", "v_prediction", "sample"]


def toy_model(x: torch.Tensor, t) -> torch.Tensor:
    """A smooth, nonlinear stand-in for a network (any prediction type)."""
    return torch.sin(0.7 * x + float(t) / 300.0) * 0.8 + 0.1 * x


def trajectory(scheduler, noise: torch.Tensor, num_inference_steps: int, seed: int | None = None) -> torch.Tensor:
    """Every x after each step of a diffusers-style loop, stacked: (n, *noise.shape)."""
    scheduler.set_timesteps(num_inference_steps)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    x = noise * scheduler.init_noise_sigma
    xs = []
    for t in scheduler.timesteps:
        out = toy_model(scheduler.scale_model_input(x, t), t)
        kwargs = {"generator": generator} if generator is not None else {}
        x = scheduler.step(out, t, x, **kwargs).prev_sample
        xs.append(x)
    return torch.stack(xs)


def assert_same_trajectory(ours, theirs, noise, steps, seed=None):
    ours.set_timesteps(steps)
    theirs.set_timesteps(steps)
    assert ours.timesteps.tolist() == pytest.approx(theirs.timesteps.tolist(), abs=2e-2)
    a, b = trajectory(ours, noise, steps, seed), trajectory(theirs, noise, steps, seed)  # (n, B, C, H, W)
    scale = b.abs().amax(dim=tuple(range(1, b.ndim)), keepdim=True).clamp(min=1)  # per step
    # 5e-3: Euler starts at x = 2e4 * noise on the cosine schedule, where float32 steps are 2e-3;
    # a wrong coefficient or a step to the wrong sigma shows as 1e-1 or more
    assert ((a - b).abs() / scale).max().item() < 5e-3


NOISE = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))


def _cases(*, spacings, steps):
    for schedule, spacing, n, pred in itertools.product(SCHEDULES, spacings, steps, PREDICTIONS):
        if schedule == "squaredcos_cap_v2" and pred == "epsilon" and spacing != "leading":
            continue  # starts at t = 999: the trap (module docstring)
        yield schedule, spacing, n, pred


DPM_OPTIONS = {"order1": dict(solver_order=1), "order2": dict(solver_order=2), "order3": dict(solver_order=3),
               "order2-heun": dict(solver_order=2, solver_type="heun"),
               "order3-sigma_min": dict(solver_order=3, final_sigmas_type="sigma_min", lower_order_final=False),
               "karras": dict(use_karras_sigmas=True), "threshold": dict(thresholding=True, sample_max_value=1.5),
               "sde-order1": dict(algorithm_type="sde-dpmsolver++", solver_order=1),
               "sde-order2": dict(algorithm_type="sde-dpmsolver++"),
               "sde-order2-heun": dict(algorithm_type="sde-dpmsolver++", solver_type="heun"),
               "sde-order3": dict(algorithm_type="sde-dpmsolver++", solver_order=3)}


@pytest.mark.parametrize("schedule,spacing,steps,prediction_type,options", [
    pytest.param(*case, options, id=f"{'-'.join(map(str, case))}-{name}")
    for case in _cases(spacings=["linspace", "leading", "trailing"], steps=[1, 4, 10, 20])
    for name, options in DPM_OPTIONS.items()
    if not (options.get("use_karras_sigmas") and case[0] == "squaredcos_cap_v2")])  # module docstring
def test_dpm_solver_matches_diffusers(schedule, spacing, steps, prediction_type, options):
    kwargs = dict(beta_schedule=schedule, timestep_spacing=spacing, prediction_type=prediction_type, **options)
    seed = 3 if kwargs.get("algorithm_type") == "sde-dpmsolver++" else None  # the SDE: the same generator
    assert_same_trajectory(DPMSolverMultistepScheduler(**kwargs), diffusers.DPMSolverMultistepScheduler(**kwargs),
                           NOISE, steps, seed)


@pytest.mark.parametrize("schedule,spacing,steps,prediction_type,karras", [
    (*case, karras) for case in _cases(spacings=["linspace", "leading", "trailing"], steps=[1, 4, 10, 25])
    for karras in (False, True)
    if case[3] != "sample"  # diffusers' Euler takes epsilon and v only
    and not (karras and case[0] == "squaredcos_cap_v2")])  # module docstring
def test_euler_matches_diffusers(schedule, spacing, steps, prediction_type, karras):
    kwargs = dict(beta_schedule=schedule, timestep_spacing=spacing, prediction_type=prediction_type,
                  use_karras_sigmas=karras)
    assert_same_trajectory(EulerDiscreteScheduler(**kwargs), diffusers.EulerDiscreteScheduler(**kwargs), NOISE, steps)


@pytest.mark.parametrize("schedule,spacing,steps,prediction_type",
                         list(_cases(spacings=["leading", "trailing"], steps=[1, 4, 10, 20])))
@pytest.mark.parametrize("options", [{}, dict(set_alpha_to_one=False), dict(clip_sample=True)],
                         ids=["plain", "alpha0", "clip"])
def test_ddim_matches_diffusers(schedule, spacing, steps, prediction_type, options):
    kwargs = dict(beta_schedule=schedule, timestep_spacing=spacing, prediction_type=prediction_type,
                  **{"clip_sample": False, **options})  # diffusers' DDPM and DDIM clip by default
    ours = DDIMScheduler(**kwargs)
    ours.step = lambda *a, _step=ours.step, **k: _step(*a, use_clipped_model_output=False, **k)  # diffusers' default
    assert_same_trajectory(ours, diffusers.DDIMScheduler(**kwargs), NOISE, steps)


@pytest.mark.parametrize("schedule,spacing,steps,prediction_type,variance_type", [
    (*case, variance_type) for case in _cases(spacings=["leading", "trailing", "linspace"], steps=[1, 4, 10, 20])
    for variance_type in ("fixed_small", "fixed_large")
    if not (variance_type == "fixed_large" and case[1] == "trailing")])  # module docstring
def test_ddpm_matches_diffusers_with_the_same_generator(schedule, spacing, steps, prediction_type, variance_type):
    kwargs = dict(beta_schedule=schedule, timestep_spacing=spacing, prediction_type=prediction_type,
                  variance_type=variance_type, clip_sample=False)
    assert_same_trajectory(DDPMScheduler(**kwargs), diffusers.DDPMScheduler(**kwargs), NOISE, steps, seed=7)


@pytest.mark.parametrize("cls,name", [(DPMSolverMultistepScheduler, "DPMSolverMultistepScheduler"),
                                      (EulerDiscreteScheduler, "EulerDiscreteScheduler")])
def test_add_noise_and_input_scaling_match_diffusers(cls, name):
    ours, theirs = cls(beta_schedule="scaled_linear"), getattr(diffusers, name)(beta_schedule="scaled_linear")
    ours.set_timesteps(10)
    theirs.set_timesteps(10)
    x0, noise = NOISE, torch.randn(NOISE.shape, generator=torch.Generator().manual_seed(1))
    t = theirs.timesteps[[2, 5]]
    torch.testing.assert_close(ours.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t), rtol=1e-4, atol=1e-4)
    assert ours.init_noise_sigma == pytest.approx(float(theirs.init_noise_sigma), rel=1e-4)
    t0 = theirs.timesteps[0]
    torch.testing.assert_close(ours.scale_model_input(x0, t0), theirs.scale_model_input(x0, t0), rtol=1e-4, atol=0)
