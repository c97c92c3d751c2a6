"""DPM-Solver++ and Euler on problems with known answers: the exact Gaussian denoiser, convergence
order, the sampler trap at alpha_bar near 0, and every bad argument.

For data N(mu, s^2 I) the probability-flow ODE in VE units (x = x_t / alpha_t, noise level sigma)
is dx/dsigma = (x - mu) sigma / (s^2 + sigma^2), so from (sigma_0, x_0) it reaches

    x(sigma) = mu + (x_0 - mu) * sqrt((s^2 + sigma^2) / (s^2 + sigma_0^2))

exactly; the samplers are compared with that.
"""

from __future__ import annotations

import math

import pytest
import torch

import minifusion.diffusion.scheduling_utils as scheduling_utils
from minifusion.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    GaussianDenoiser,
    PointSetDenoiser,
    karras_sigmas,
    sample_loop,
)

MU, STD = 0.5, 1.0
NOISE = torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def exact_ve(x0_ve: torch.Tensor, sigma_0: float, sigma: float) -> torch.Tensor:
    return MU + (x0_ve - MU) * math.sqrt((STD**2 + sigma**2) / (STD**2 + sigma_0**2))


def solve(scheduler, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sampled, exact) final samples from NOISE, in the scheduler's units; the oracle is asked at the
    scheduler's own sigmas, so Karras schedules are exact too."""
    oracle = GaussianDenoiser(MU, STD, scheduler.alphas_cumprod, prediction_type=scheduler.config["prediction_type"])
    scheduler.set_timesteps(steps)
    sigmas = scheduler._sigma_list  # float64 values (the public ``sigmas`` are float32)
    x = NOISE * scheduler.init_noise_sigma
    start_ve = x if isinstance(scheduler, EulerDiscreteScheduler) else x * math.sqrt(1 + sigmas[0] ** 2)
    for i, t in enumerate(scheduler.timesteps):
        out = oracle.output_at(scheduler.scale_model_input(x, t), 1 / (1 + sigmas[i] ** 2))
        x = scheduler.step(out, t, x).prev_sample
    end = exact_ve(start_ve, sigmas[0], sigmas[-1])
    if not isinstance(scheduler, EulerDiscreteScheduler):
        end = end / math.sqrt(1 + sigmas[-1] ** 2)  # VP units
    return x, end


def _error(scheduler, steps: int) -> float:
    x, exact = solve(scheduler, steps)
    return (x - exact).abs().max().item()


SOLVERS = {  # name -> (constructor, expected order)
    "euler": (lambda **kw: EulerDiscreteScheduler(**kw), 1),
    "dpm++1": (lambda **kw: DPMSolverMultistepScheduler(solver_order=1, lower_order_final=False, **kw), 1),
    "dpm++2M": (lambda **kw: DPMSolverMultistepScheduler(solver_order=2, lower_order_final=False, **kw), 2),
    "dpm++3M": (lambda **kw: DPMSolverMultistepScheduler(solver_order=3, lower_order_final=False, **kw), 3),
}


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_convergence_order_shows_as_the_steps_double(name, prediction_type):
    make, order = SOLVERS[name]
    errors = [_error(make(beta_schedule="linear", prediction_type=prediction_type, final_sigmas_type="sigma_min"), n)
              for n in (20, 40, 80, 160)]
    rates = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    # measured: Euler and DPM-Solver++1 0.97-1.00, 2M 1.93-2.09, 3M 2.14-2.94 (pre-asymptotic at 20)
    assert abs(sum(rates[-2:]) / 2 - order) < 0.35, (errors, rates)


COSINE_V = dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


@pytest.mark.parametrize("make,steps,bound", [  # bound: 1.5x the max error measured over the 64 samples
    (lambda: DPMSolverMultistepScheduler(**COSINE_V), 10, 0.11),  # 0.073
    (lambda: DPMSolverMultistepScheduler(**COSINE_V), 25, 0.012),  # 0.0077
    (lambda: DPMSolverMultistepScheduler(**COSINE_V, solver_order=3), 25, 0.04),  # 0.026
    (lambda: DPMSolverMultistepScheduler(beta_schedule="scaled_linear", use_karras_sigmas=True), 15, 0.22),  # 0.143
    (lambda: DPMSolverMultistepScheduler(beta_schedule="scaled_linear", use_karras_sigmas=True), 30, 0.046),  # 0.030
    (lambda: EulerDiscreteScheduler(**COSINE_V), 25, 0.24),  # 0.157
    (lambda: EulerDiscreteScheduler(beta_schedule="scaled_linear", use_karras_sigmas=True), 25, 0.39),  # 0.257
])
def test_defaults_land_near_the_closed_form_on_the_clean_sample(make, steps, bound):
    s = make()
    x, exact = solve(s, steps)
    assert s.sigmas[-1].item() == 0.0  # final_sigmas_type="zero": the loop ends on the clean estimate
    assert (x - exact).abs().max().item() < bound


def test_second_order_beats_first_order_at_few_steps_and_first_order_is_ddim():
    errors = {name: _error(make(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
                                prediction_type="v_prediction"), 10) for name, (make, _) in SOLVERS.items()}
    assert errors["dpm++2M"] < 0.5 * errors["dpm++1"] and errors["dpm++2M"] < 0.5 * errors["euler"]
    # DPM-Solver++1, Euler and DDIM (eta = 0) are the same update in different coordinates
    ddim = DDIMScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing", prediction_type="v_prediction")
    oracle = GaussianDenoiser(MU, STD, ddim.alphas_cumprod, prediction_type="v_prediction")
    ddim_x = sample_loop(oracle, ddim, NOISE, num_inference_steps=10, progress=False).sample
    for make in (SOLVERS["dpm++1"][0], SOLVERS["euler"][0]):
        s = make(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing", prediction_type="v_prediction")
        x = sample_loop(oracle, s, NOISE, num_inference_steps=10, progress=False).sample
        torch.testing.assert_close(x, ddim_x, rtol=1e-7, atol=1e-7)


# -- the sampler trap: an epsilon model at alpha_bar = 2.4e-9 (t = 999 of the cosine schedule) --------
IMAGES = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (K, C, H, W)


def _distance_to_data(x: torch.Tensor) -> torch.Tensor:
    diff = x.flatten(1).double()[:, None] - IMAGES.flatten(1).double()[None]  # (B, K, D)
    return diff.pow(2).mean(-1).sqrt().min(dim=1).values


@pytest.mark.parametrize("cls", [DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_the_trap_is_handled_for_an_epsilon_model_at_alpha_bar_near_zero(cls, monkeypatch):
    s = cls(beta_schedule="squaredcos_cap_v2")  # "linspace": the first step is at t = 999
    s.set_timesteps(10)
    assert float(s.timesteps[0]) == 999 and s.alphas_cumprod[999].item() < 3e-9
    model = PointSetDenoiser(IMAGES, s.alphas_cumprod, eps_error=0.05)  # 5% eps error, like a trained net
    noise = torch.randn(64, *IMAGES.shape[1:], generator=torch.Generator().manual_seed(0))
    ours = sample_loop(model, s, noise, num_inference_steps=10, progress=False).sample
    assert _distance_to_data(ours).max().item() < 0.03  # measured 0.024 (DPM-Solver++), 0.0013 (Euler)
    # trusting the x0 estimate there (diffusers' behaviour) multiplies the eps error by 2e4: measured
    # 3.98 (DPM-Solver++) and 0.32 (Euler) at 10 steps; the fewer the steps, the worse
    monkeypatch.setattr(scheduling_utils, "UNRELIABLE_X0_ALPHA_BAR", 0.0)
    naive = sample_loop(model, cls(beta_schedule="squaredcos_cap_v2"), noise, num_inference_steps=10,
                        progress=False).sample
    assert _distance_to_data(naive).max().item() > 0.3
    assert (_distance_to_data(naive) > 0.03).float().mean().item() > 0.9


@pytest.mark.parametrize("cls", [DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_first_step_from_t999_only_rescales_the_noise(cls):
    s = cls(beta_schedule="squaredcos_cap_v2")
    s.set_timesteps(10)
    x = torch.randn(8, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * s.init_noise_sigma
    for wrong in (torch.zeros_like(x), torch.randn_like(x)):  # whatever the model says at alpha_bar = 2.4e-9
        s.set_timesteps(10)
        out = s.step(wrong, s.timesteps[0], x)
        assert torch.equal(out.pred_original_sample, torch.zeros_like(x))
        scale = (out.prev_sample * x).sum() / (x * x).sum()
        torch.testing.assert_close(out.prev_sample, scale * x)  # a pure rescaling


# -- API: config, state, errors -----------------------------------------------------------------------
ALL = [DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler]


@pytest.mark.parametrize("src", ALL)
@pytest.mark.parametrize("dst", ALL)
def test_from_config_between_all_four(src, dst):
    a = src(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", thresholding=True)
    b = dst.from_config(a.config)
    assert b.config["prediction_type"] == "v_prediction" and b.config["thresholding"] is True
    assert type(b)(**b.config).config == b.config
    with pytest.raises(ValueError, match=r"unknown config keys \['solver_orderr'\]"):
        dst.from_config({**a.config, "solver_orderr": 2})


def test_defaults_and_config_follow_diffusers():
    d, e = DPMSolverMultistepScheduler(), EulerDiscreteScheduler()
    assert d.config["timestep_spacing"] == e.config["timestep_spacing"] == "linspace"
    assert (d.config["solver_order"], d.config["algorithm_type"], d.config["final_sigmas_type"]) == (
        2, "dpmsolver++", "zero")
    d.set_timesteps(10)
    assert d.timesteps.tolist() == [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]
    assert d.timesteps.dtype == torch.int64 and e.timesteps.dtype == torch.float32
    assert len(d.sigmas) == 11 and d.sigmas[-1] == 0
    torch.testing.assert_close(karras_sigmas(0.002, 80.0, 3), torch.tensor([80.0, 2.5152, 0.002],
                                                                        dtype=torch.float64), rtol=1e-3, atol=0)


def test_dpm_solver_keeps_a_history_and_set_timesteps_resets_it():
    s = DPMSolverMultistepScheduler(solver_order=3)
    s.set_timesteps(5)
    x = torch.randn(2, 3)
    for t in s.timesteps[:3]:
        x = s.step(torch.zeros_like(x), t, x).prev_sample
    assert len(s.model_outputs) == 3 and s.lower_order_nums == 3 and s.step_index == 3
    s.set_timesteps(5)
    assert s.model_outputs == [] and s.lower_order_nums == 0 and s.step_index is None


@pytest.mark.parametrize("cls,kwargs,message", [
    (DPMSolverMultistepScheduler, dict(solver_order=4), "solver_order 4 is not one of 1, 2, 3"),
    (DPMSolverMultistepScheduler, dict(solver_order=True), "solver_order True is not one of 1, 2, 3"),
    (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver"), "algorithm_type 'dpmsolver' is not one of "
                                                                   "'dpmsolver\\+\\+', 'sde-dpmsolver\\+\\+'"),
    (DPMSolverMultistepScheduler, dict(solver_type="bh2"), "solver_type 'bh2' is not one of 'midpoint', 'heun'"),
    (DPMSolverMultistepScheduler, dict(lower_order_final=1), "lower_order_final must be True or False, got 1"),
    (DPMSolverMultistepScheduler, dict(euler_at_final="no"), "euler_at_final must be True or False"),
    (DPMSolverMultistepScheduler, dict(final_sigmas_type="min"), "final_sigmas_type 'min' is not one of 'zero', "
                                                                "'sigma_min'"),
    (DPMSolverMultistepScheduler, dict(timestep_spacing="uniform"), "timestep_spacing 'uniform' is not one of"),
    (DPMSolverMultistepScheduler, dict(prediction_type="flow_prediction"), "prediction_type 'flow_prediction'"),
    (DPMSolverMultistepScheduler, dict(variance_type="learned"), "unexpected keyword argument 'variance_type'"),
    (EulerDiscreteScheduler, dict(use_karras_sigmas=None), "use_karras_sigmas must be True or False, got None"),
    (EulerDiscreteScheduler, dict(final_sigmas_type=0), "final_sigmas_type 0 is not one of"),
    (EulerDiscreteScheduler, dict(beta_schedule="cosine"), "beta_schedule"),
    (EulerDiscreteScheduler, dict(steps_offset=-1), "steps_offset -1 is not allowed; it must be an integer >= 0"),
    (EulerDiscreteScheduler, dict(thresholding="yes"), "thresholding must be True or False"),
])
def test_bad_constructor_arguments_name_the_value_and_what_is_allowed(cls, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_step_errors(cls):
    s = cls()
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"call set_timesteps\(num_inference_steps\) before step"):
        s.step(x, 999, x)
    for bad in (0, 1001, 2.5, "10", True):
        with pytest.raises(ValueError, match="num_inference_steps must be an int in 1..1000"):
            s.set_timesteps(bad)
    s.set_timesteps(4)
    with pytest.raises(ValueError, match=r"timestep 998(\.0)? is not in the schedule set by set_timesteps"):
        s.step(x, 998, x)
    with pytest.raises(ValueError, match="model_output has shape \\(2, 4\\) but sample has shape \\(2, 3\\)"):
        s.step(torch.randn(2, 4), s.timesteps[0], x)
    s.set_timesteps(4)
    s.step(x, s.timesteps[0], x)
    with pytest.raises(ValueError, match="is not the next step of the schedule"):
        s.step(x, s.timesteps[2], x)
    with pytest.raises(ValueError, match="one timestep for the whole batch"):
        s.step(x, s.timesteps[1:3], x)
    for t in s.timesteps[1:]:
        s.step(x, t, x)
    with pytest.raises(ValueError, match="all 4 steps are done; call set_timesteps to sample again"):
        s.step(x, s.timesteps[-1], x)
    with pytest.raises(ValueError, match="timestep 5.0 is not in the schedule|timestep 5 is not in the schedule"):
        s.add_noise(x, x, 5)
    with pytest.raises(ValueError, match="steps_offset 1000 pushes the first timestep"):
        cls(timestep_spacing="leading", steps_offset=1000).set_timesteps(1)


def test_euler_scale_model_input_needs_the_timestep():
    s = EulerDiscreteScheduler()
    s.set_timesteps(4)
    with pytest.raises(ValueError, match="needs the timestep"):
        s.scale_model_input(torch.randn(2, 3))


def test_sde_dpm_solver_samples_the_data_distribution_and_follows_the_generator():
    s = DPMSolverMultistepScheduler(beta_schedule="squaredcos_cap_v2", algorithm_type="sde-dpmsolver++",
                                    prediction_type="v_prediction")
    oracle = GaussianDenoiser(0.0, 0.5, s.alphas_cumprod, prediction_type="v_prediction")
    noise = torch.randn(4000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def sample(seed: int) -> torch.Tensor:
        return sample_loop(oracle, s, noise, num_inference_steps=25, generator=torch.Generator().manual_seed(seed),
                           progress=False).sample

    a, b, c = sample(1), sample(1), sample(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(a.std().item() - 0.5) < 0.03 and abs(a.mean().item()) < 0.03  # N(0, 0.5^2), 4000 samples
