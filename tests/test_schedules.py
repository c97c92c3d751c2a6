"""Noise schedules equal their published formulas (Ho et al. 2020; Nichol & Dhariwal 2021; Lin et al. 2024)."""

from __future__ import annotations

import math

import pytest
import torch

from minifusion.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    alphas_cumprod_from_betas,
    make_betas,
    rescale_zero_terminal_snr,
    snr,
)


def test_linear_betas_match_ho_et_al():
    betas = make_betas("linear", 1000, 0.0001, 0.02)
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    # beta_t = start + t (end - start) / (T - 1)
    t = 417
    assert betas[t].item() == pytest.approx(1e-4 + t * (0.02 - 1e-4) / 999, rel=1e-12)


def test_scaled_linear_is_linear_in_sqrt_beta():
    betas = make_betas("scaled_linear", 1000, 0.00085, 0.012)
    root = betas.sqrt()
    step = (0.012**0.5 - 0.00085**0.5) / 999
    assert torch.allclose(root[1:] - root[:-1], torch.full((999,), step, dtype=torch.float64))
    assert betas[0].item() == pytest.approx(0.00085, rel=1e-12)


def _f(t: float, s: float = 0.008) -> float:
    return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def test_cosine_alphas_cumprod_match_nichol_dhariwal():
    T = 1000
    ab = alphas_cumprod_from_betas(make_betas("squaredcos_cap_v2", T))
    # before the 0.999 clip bites, alpha_bar_t = f((t + 1) / T) / f(0) (index t is after step t)
    for t in (0, 1, 10, 250, 500, 900, 990, 998):
        assert ab[t].item() == pytest.approx(_f((t + 1) / T) / _f(0.0), rel=1e-9), t


def test_cosine_last_beta_is_clipped_and_alpha_bar_is_about_2e9():
    betas = make_betas("squaredcos_cap_v2", 1000)
    assert betas.max().item() == pytest.approx(0.999)
    assert betas[-1].item() == pytest.approx(0.999)  # unclipped it would be 1: f(1) = 0
    assert (betas[:-1] < 0.999).all()  # only the last step is clipped at T = 1000
    ab = alphas_cumprod_from_betas(betas)
    assert ab[-1].item() == pytest.approx(_f(0.999) / _f(0.0) * 0.001, rel=1e-9)
    assert 2e-9 < ab[-1].item() < 3e-9  # ~2.4e-9: the section-9 trap
    assert ab[-2].item() / ab[-1].item() == pytest.approx(1000.0, rel=1e-6)


def test_schedulers_store_float32_computed_in_float64():
    s = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    for name in ("betas", "alphas", "alphas_cumprod"):
        assert getattr(s, name).dtype == torch.float32
    exact = torch.cumprod(1 - make_betas("squaredcos_cap_v2", 1000), 0)
    assert torch.equal(s.alphas_cumprod, exact.float())  # rounded once, from float64
    assert torch.allclose(s.alphas, 1 - s.betas)


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_zero_terminal_snr_rescaling(schedule):
    betas = make_betas(schedule, 1000, 0.00085, 0.012)
    ab = alphas_cumprod_from_betas(betas)
    new = alphas_cumprod_from_betas(rescale_zero_terminal_snr(betas))
    assert new[-1].item() == 0.0
    assert new[0].item() == pytest.approx(ab[0].item(), rel=1e-12)
    assert (new[1:] <= new[:-1]).all()  # still decreasing
    # Lin et al. Alg. 1: sqrt(ab) shifted and scaled linearly
    a0, aT = ab[0].sqrt(), ab[-1].sqrt()
    expected = (ab.sqrt() - aT) * a0 / (a0 - aT)
    assert torch.allclose(new.sqrt(), expected, atol=1e-12)
    s = DDIMScheduler(beta_schedule=schedule, beta_start=0.00085, beta_end=0.012, rescale_betas_zero_snr=True)
    assert s.alphas_cumprod[-1].item() == 0.0
    assert snr(new)[-1].item() == 0.0


def test_snr_is_alpha_bar_over_one_minus_alpha_bar():
    ab = torch.tensor([0.5, 0.2], dtype=torch.float64)
    assert torch.allclose(snr(ab), torch.tensor([1.0, 0.25], dtype=torch.float64))


def test_bad_schedule_arguments_raise():
    with pytest.raises(ValueError, match="'cosine' is not one of 'linear', 'scaled_linear', 'squaredcos_cap_v2'"):
        make_betas("cosine", 1000)
    with pytest.raises(ValueError, match="beta_start"):
        make_betas("linear", 1000, 0.02, 0.0001)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        make_betas("linear", 1)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        make_betas("linear", 10.0)
    with pytest.raises(ValueError, match="shape"):
        rescale_zero_terminal_snr(torch.ones(2, 2))
    with pytest.raises(ValueError, match="'cosine'"):
        DDPMScheduler(beta_schedule="cosine")
