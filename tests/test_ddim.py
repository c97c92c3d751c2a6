"""DDIMScheduler equals Song et al. (2021) eq. 12 / 16 and inverts an exact denoiser."""

from __future__ import annotations

import math

import pytest
import torch

from minifusion.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    PointSetDenoiser,
    alphas_cumprod_from_betas,
    make_betas,
    sample_loop,
)


def _ab64(schedule: str = "squaredcos_cap_v2") -> torch.Tensor:
    return alphas_cumprod_from_betas(make_betas(schedule, 1000))


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_update_matches_song_et_al_eq_12(eta):
    s = DDIMScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="linspace")
    s.set_timesteps(7)  # irregular steps: 999, 832, 666, 500, 333, 166, 0
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 4, 3, 4, 4, dtype=torch.float64, generator=g)  # video (B, C, F, H, W)
    eps = torch.randn(x_t.shape, dtype=torch.float64, generator=g)
    z = torch.randn(x_t.shape, dtype=torch.float64, generator=g)
    ab = _ab64()
    t, prev = 666, 500
    assert s.previous_timestep(t) == prev
    x0 = (x_t - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
    sigma = eta * ((1 - ab[prev]) / (1 - ab[t])).sqrt() * (1 - ab[t] / ab[prev]).sqrt()  # eq. 16
    expected = ab[prev].sqrt() * x0 + (1 - ab[prev] - sigma**2).sqrt() * eps + sigma * z
    out = s.step(eps, t, x_t, eta=eta, variance_noise=z)
    assert s.sigma(t, eta) == pytest.approx(sigma.item(), rel=1e-12, abs=1e-15)
    assert torch.allclose(out.prev_sample, expected, atol=1e-10)
    assert torch.allclose(out.pred_original_sample, x0, atol=1e-10)


def test_eta_one_has_the_ddpm_posterior_variance():
    ddim, ddpm = DDIMScheduler(), DDPMScheduler()
    ddim.set_timesteps(25)
    ddpm.set_timesteps(25)
    for t in ddim.timesteps[:-1].tolist():
        assert ddim.sigma(t, 1.0) ** 2 == pytest.approx(ddpm.posterior_coefficients(t)[2], rel=1e-10)


def test_final_step_goes_to_alpha_bar_one_unless_told_otherwise():
    x = torch.randn(2, 5, dtype=torch.float64)
    eps = torch.randn(2, 5, dtype=torch.float64)
    one = DDIMScheduler()
    one.set_timesteps(10)
    out = one.step(eps, 0, x)
    assert torch.allclose(out.prev_sample, out.pred_original_sample)  # alpha_bar = 1: x0 itself
    first = DDIMScheduler(set_alpha_to_one=False)
    first.set_timesteps(10)
    ab0 = _ab64("linear")[0]
    out = first.step(eps, 0, x)
    assert torch.allclose(out.prev_sample, ab0.sqrt() * out.pred_original_sample + (1 - ab0).sqrt() * eps)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_deterministic_ddim_with_an_oracle_returns_the_data_point(spacing, prediction_type):
    point = torch.tensor([[0.7, -0.3, 0.1, 0.9, -1.0, 0.2]], dtype=torch.float64)  # one data point
    s = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type, timestep_spacing=spacing)
    oracle = PointSetDenoiser(point, s.alphas_cumprod, prediction_type=prediction_type)
    noise = torch.randn(8, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = sample_loop(oracle, s, noise, num_inference_steps=20, progress=False).sample
    assert (x - point).abs().max().item() < 1e-4


def test_eta_zero_is_deterministic_and_eta_positive_uses_the_generator():
    points = torch.tensor([[1.0, 0.0], [-1.0, 0.5]])
    s = DDIMScheduler(beta_schedule="squaredcos_cap_v2")
    oracle = PointSetDenoiser(points, s.alphas_cumprod)
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))

    def run(eta, seed):
        g = torch.Generator().manual_seed(seed)
        return sample_loop(oracle, s, noise, num_inference_steps=10, generator=g, eta=eta, progress=False).sample

    assert torch.equal(run(0.0, 1), run(0.0, 2))
    assert torch.equal(run(1.0, 1), run(1.0, 1))
    assert not torch.allclose(run(1.0, 1), run(1.0, 2))


def test_clipped_model_output_keeps_x0_and_eps_consistent():
    s = DDIMScheduler(clip_sample=True)
    s.set_timesteps(10)
    t = 500
    ab = _ab64("linear")[t].item()
    x_t = torch.full((1, 3), 2.0, dtype=torch.float64)
    eps = torch.full((1, 3), -3.0, dtype=torch.float64)  # x0 estimate far outside [-1, 1]
    default = s.step(eps, t, x_t)
    assert default.pred_original_sample.abs().max().item() == 1.0
    eps_consistent = (x_t - math.sqrt(ab) * default.pred_original_sample) / math.sqrt(1 - ab)
    ab_prev = _ab64("linear")[400].item()
    expected = math.sqrt(ab_prev) * default.pred_original_sample + math.sqrt(1 - ab_prev) * eps_consistent
    assert torch.allclose(default.prev_sample, expected)
    raw = s.step(eps, t, x_t, use_clipped_model_output=False)  # diffusers' default
    assert torch.allclose(raw.prev_sample, math.sqrt(ab_prev) * raw.pred_original_sample + math.sqrt(1 - ab_prev) * eps)
