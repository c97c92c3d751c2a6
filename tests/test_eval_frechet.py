"""Frechet distance (toy FVD) and inception score (toy IS) against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from minifusion.eval.frechet import feature_frechet_distance, frechet_distance, gaussian_fit, sqrtm_psd
from minifusion.eval.inception_score import inception_score

D = torch.float64


def random_spd(d: int, seed: int, rank: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, rank or d, generator=g, dtype=torch.float64)
    return a @ a.T / d + (0 if rank else 0.1) * torch.eye(d, dtype=torch.float64)


def test_one_dimension_is_mean_gap_squared_plus_std_gap_squared():
    # d^2 = (m1 - m2)^2 + (s1 - s2)^2 for N(m1, s1^2) and N(m2, s2^2)
    got = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[0.25]]))
    assert got == pytest.approx(3.0**2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_diagonal_covariances_match_the_closed_form():
    a, b = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=D), torch.tensor([0.2, 2.0, 4.0, 1.0], dtype=D)
    mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=D), torch.tensor([1.0, 1.0, 0.0, 3.5], dtype=D)
    want = float((mu_a - mu_b).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    assert frechet_distance(mu_a, torch.diag(a), mu_b, torch.diag(b)) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_non_commuting_2x2_covariances_match_the_closed_form(seed):
    # for 2x2 PSD matrices: Tr sqrt(A^1/2 B A^1/2) = sqrt(Tr(AB) + 2 sqrt(det A det B))
    a, b = random_spd(2, seed), random_spd(2, seed + 10)
    assert not torch.allclose(a @ b, b @ a)
    mu_a, mu_b = torch.tensor([0.3, -1.0], dtype=D), torch.tensor([1.0, 0.5], dtype=D)
    trace_root = math.sqrt(float(torch.trace(a @ b)) + 2 * math.sqrt(float(torch.det(a) * torch.det(b))))
    want = float((mu_a - mu_b).pow(2).sum() + torch.trace(a) + torch.trace(b)) - 2 * trace_root
    assert frechet_distance(mu_a, a, mu_b, b) == pytest.approx(want, rel=1e-9)


def test_zero_for_identical_gaussians_also_when_singular_and_symmetric():
    cov = random_spd(16, 3, rank=5)  # rank 5 of 16: fewer samples than dimensions
    mu = torch.randn(16, dtype=torch.float64)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    other = random_spd(16, 4)
    assert frechet_distance(mu, cov, mu + 1, other) == pytest.approx(frechet_distance(mu + 1, other, mu, cov), rel=1e-8)


def test_sqrtm_psd_squares_back():
    m = random_spd(8, 5)
    root = sqrtm_psd(m)
    assert torch.allclose(root @ root, m, atol=1e-10) and torch.allclose(root, root.T)


def test_sample_estimate_approaches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    cov_a, cov_b = torch.diag(torch.tensor([1.0, 4.0, 0.25])), torch.diag(torch.tensor([2.0, 1.0, 1.0]))
    mu_b = torch.tensor([1.0, 0.0, -1.0])
    x = torch.randn(20000, 3, generator=g) @ cov_a.sqrt()
    y = torch.randn(20000, 3, generator=g) @ cov_b.sqrt() + mu_b
    assert feature_frechet_distance(x, y) == pytest.approx(frechet_distance(torch.zeros(3), cov_a, mu_b, cov_b),
                                                           rel=0.05)
    mean, cov = gaussian_fit(x)
    assert torch.allclose(cov, cov_a.double(), atol=0.1) and mean.abs().max() < 0.05


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_fit(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="same D"):
        feature_frechet_distance(torch.zeros(5, 4), torch.zeros(5, 3))


def test_inception_score_limits():
    k = 7
    one_hot = torch.eye(k).repeat(3, 1)  # confident and spread evenly over k classes: IS = k
    assert inception_score(one_hot) == pytest.approx(k, rel=1e-6)
    same = torch.zeros(10, k)
    same[:, 2] = 1  # confident, one class: IS = 1
    assert inception_score(same) == pytest.approx(1.0, abs=1e-6)
    assert inception_score(torch.full((10, k), 1 / k)) == pytest.approx(1.0, abs=1e-6)  # unsure: IS = 1
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])  # two of four classes each: IS = 2
    assert inception_score(half) == pytest.approx(2.0, rel=1e-6)
    with pytest.raises(ValueError, match="sum"):
        inception_score(torch.ones(3, 4))
