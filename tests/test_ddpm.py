"""DDPMScheduler equals Ho et al. (2020) and samples a known distribution."""

from __future__ import annotations

import math

import pytest
import torch

from minifusion.diffusion import DDPMScheduler, GaussianDenoiser, alphas_cumprod_from_betas, make_betas, sample_loop


def _ab64(schedule: str = "linear") -> torch.Tensor:
    return alphas_cumprod_from_betas(make_betas(schedule, 1000))


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_posterior_matches_ho_et_al_for_single_steps(variance_type):
    s = DDPMScheduler(variance_type=variance_type)
    s.set_timesteps(1000)
    betas = make_betas("linear", 1000)
    ab = _ab64()
    for t in (1, 10, 500, 999):
        coef_x0, coef_xt, var = s.posterior_coefficients(t)
        # eq. 7: mu = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t
        assert coef_x0 == pytest.approx((ab[t - 1].sqrt() * betas[t] / (1 - ab[t])).item(), rel=1e-10)
        assert coef_xt == pytest.approx(((1 - betas[t]).sqrt() * (1 - ab[t - 1]) / (1 - ab[t])).item(), rel=1e-10)
        tilde_beta = ((1 - ab[t - 1]) / (1 - ab[t]) * betas[t]).item()
        assert var == pytest.approx(tilde_beta if variance_type == "fixed_small" else betas[t].item(), rel=1e-10)
    # last step t = 0 -> the clean sample: the mean is x0 itself
    coef_x0, coef_xt, var = s.posterior_coefficients(0)
    assert coef_x0 == pytest.approx(1.0) and coef_xt == pytest.approx(0.0, abs=1e-12)


def test_step_is_posterior_mean_plus_scaled_noise_for_strided_steps():
    s = DDPMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False)
    s.set_timesteps(10)  # leading: 900, 800, ...
    ab = _ab64("squaredcos_cap_v2")
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 3, 2, 4, 4, dtype=torch.float64, generator=g)  # video (B, C, F, H, W)
    eps = torch.randn(x_t.shape, dtype=torch.float64, generator=g)
    z = torch.randn(x_t.shape, dtype=torch.float64, generator=g)
    t, prev = 800, 700
    x0 = (x_t - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
    beta = 1 - ab[t] / ab[prev]  # effective beta of the 100-step jump
    mean = ab[prev].sqrt() * beta / (1 - ab[t]) * x0 + (1 - beta).sqrt() * (1 - ab[prev]) / (1 - ab[t]) * x_t
    var = (1 - ab[prev]) / (1 - ab[t]) * beta
    out = s.step(eps, t, x_t, variance_noise=z)
    assert torch.allclose(out.pred_original_sample, x0, atol=1e-10)
    assert torch.allclose(out.prev_sample, mean + var.sqrt() * z, atol=1e-10)


def test_last_step_adds_no_noise():
    s = DDPMScheduler(variance_type="fixed_large", timestep_spacing="trailing")
    s.set_timesteps(5)
    x = torch.randn(3, 4)
    t = s.timesteps[-1]
    a = s.step(torch.zeros_like(x), t, x, generator=torch.Generator().manual_seed(0)).prev_sample
    b = s.step(torch.zeros_like(x), t, x, generator=torch.Generator().manual_seed(1)).prev_sample
    assert torch.equal(a, b)
    assert torch.allclose(a, s.step(torch.zeros_like(x), t, x).pred_original_sample, atol=1e-6)


@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
def test_ancestral_sampling_reproduces_a_gaussian(schedule):
    mu, sigma, n = 1.5, 0.5, 4000
    s = DDPMScheduler(beta_schedule=schedule, timestep_spacing="trailing")
    exact = GaussianDenoiser(mu, sigma, s.alphas_cumprod)  # exact eps for N(mu, sigma^2) data
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(n, 1, generator=g)
    x = sample_loop(exact, s, noise, num_inference_steps=1000, generator=g, progress=False).sample
    se_mean, se_std = sigma / math.sqrt(n), sigma / math.sqrt(2 * n)
    assert abs(x.mean().item() - mu) < 4 * se_mean
    assert abs(x.std().item() - sigma) < 4 * se_std


def test_few_step_ancestral_sampling_underestimates_the_spread():
    # With 50 steps the posterior ignores the uncertainty of x0_hat: the known, documented bias.
    s = DDPMScheduler(beta_schedule="linear")
    exact = GaussianDenoiser(0.0, 0.5, s.alphas_cumprod)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(4000, 1, generator=g)
    x = sample_loop(exact, s, noise, num_inference_steps=50, generator=g, progress=False).sample
    assert 0.40 < x.std().item() < 0.48


def test_epsilon_at_near_zero_alpha_bar_does_not_trust_x0():
    # alpha_bar(999) = 2.4e-9: the x0 estimate would be model error * 2e4; the step uses x0 = 0.
    s = DDPMScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing")
    s.set_timesteps(50)
    x = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    wrong_eps = 1.05 * x  # 5% off
    out = s.step(wrong_eps, 999, x, variance_noise=torch.zeros_like(x))
    assert torch.equal(out.pred_original_sample, torch.zeros_like(x))
    assert out.prev_sample.abs().max() < 0.01  # posterior mean ~ 1.5e-3 * x_t, not 0.03 * 1e3
    # with zero terminal SNR (alpha_bar = 0) an epsilon model gives finite steps too
    z = DDPMScheduler(beta_schedule="squaredcos_cap_v2", rescale_betas_zero_snr=True, timestep_spacing="trailing")
    z.set_timesteps(10)
    assert torch.isfinite(z.step(x, 999, x, generator=torch.Generator().manual_seed(0)).prev_sample).all()


def test_v_prediction_step_equals_epsilon_step():
    g = torch.Generator().manual_seed(4)
    x_t = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=g)
    eps = torch.randn(x_t.shape, dtype=torch.float64, generator=g)
    z = torch.randn(x_t.shape, dtype=torch.float64, generator=g)
    e = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    v = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    for s in (e, v):
        s.set_timesteps(20)
    t = 650
    ab = _ab64("squaredcos_cap_v2")[t]
    x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
    v_out = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    a = e.step(eps, t, x_t, variance_noise=z)
    b = v.step(v_out, t, x_t, variance_noise=z)
    assert torch.allclose(a.prev_sample, b.prev_sample, atol=1e-10)
    assert torch.allclose(a.pred_original_sample, b.pred_original_sample, atol=1e-10)
