"""Frechet distance between Gaussian fits of features: the toy FVD.

FVD (Unterthiner et al. 2018, "Towards accurate generative models of video") is the Frechet
(2-Wasserstein) distance between Gaussians fitted to I3D features of real and generated videos,
as FID (Heusel et al. 2017) is for Inception features of images:

    d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)

FusionFrames (arXiv 2311.13073, Tables 1-2) reports it on UCF-101. Here the features are the
``AttributeClassifier``'s penultimate layer (``toy_metrics``). The matrix square root is taken
of the symmetric PSD matrix ``S_a^1/2 S_b S_a^1/2`` (same trace of the square root as ``S_a S_b``)
through ``torch.linalg.eigh`` in float64, with eigenvalues rounding below 0 set to 0, so it is real
and stable even when the covariances are singular (fewer videos than feature dimensions).

Like FID, the estimate is biased upwards for small sets: compare distances only between sets of
the same size, next to the distance between two sets of real clips of that size (the floor).

Taught in notebook 12 (notebooks/12_evaluation.ipynb).
"""

from __future__ import annotations

import torch


def gaussian_fit(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D), float64, of features (N, D) with N >= 2."""
    if not torch.is_tensor(features) or features.ndim != 2:
        raise ValueError(f"features must be a (N, D) tensor, got {getattr(features, 'shape', type(features))}")
    if features.shape[0] < 2:
        raise ValueError(f"a Gaussian fit needs at least 2 feature vectors, got shape {tuple(features.shape)}")
    x = features.detach().double().cpu()
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / (x.shape[0] - 1)


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition (float64)."""
    m = matrix.double()
    values, vectors = torch.linalg.eigh(0.5 * (m + m.T))  # symmetrise away rounding
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """Squared Frechet distance d^2 between N(mean_a, cov_a) and N(mean_b, cov_b) (see module docstring)."""
    mean_a, mean_b, cov_a, cov_b = (t.double() for t in (mean_a, mean_b, cov_a, cov_b))
    d = mean_a.shape[0]
    if mean_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ValueError(f"means (D,) and covariances (D, D) must agree, got {tuple(mean_a.shape)}, "
                         f"{tuple(cov_a.shape)}, {tuple(mean_b.shape)}, {tuple(cov_b.shape)}")
    root_a = sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a  # symmetric PSD, eigenvalues = those of cov_a @ cov_b
    values = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp(min=0)
    trace_root = values.sqrt().sum()
    value = (mean_a - mean_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_root
    return float(value.clamp(min=0))


def feature_frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussian fits of two feature sets (N_a, D) and (N_b, D): the toy FVD."""
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) with the same D, got {tuple(features_a.shape)} and "
                         f"{tuple(features_b.shape)}")
    return frechet_distance(*gaussian_fit(features_a), *gaussian_fit(features_b))


__all__ = ["feature_frechet_distance", "frechet_distance", "gaussian_fit", "sqrtm_psd"]
