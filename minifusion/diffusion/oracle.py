"""Exact denoisers for data whose distribution is known: sampling before any network is trained.

If the data are a finite set of points x_1..x_K with equal weights, the noisy sample
x_t = sqrt(ab) x0 + sqrt(1 - ab) eps has the posterior

    p(x0 = x_k | x_t) = softmax_k( -|x_t - sqrt(ab) x_k|^2 / (2 (1 - ab)) )

and the optimal (MSE) denoiser is its mean, E[x0 | x_t] = sum_k p_k x_k: exactly what a
network trained with the usual loss converges to on that data (Karras et al. 2022, appendix
B.3). For Gaussian data N(mu, s^2 I) the posterior mean is linear:
E[x0 | x_t] = mu + sqrt(ab) s^2 / (ab s^2 + 1 - ab) * (x_t - sqrt(ab) mu).

These give tests and notebooks a perfect "model" so samplers can be checked against known
answers. ``eps_error`` makes them slightly wrong, like a trained net: the predicted noise gets a
relative error, eps_hat = eps * (1 + eps_error * r_t) with r_t ~ N(0, I) fixed per timestep
(a systematic error, as a network's is, that grows with its input, as a network's does).

Taught in notebook 03 (notebooks/03_samplers.ipynb).
"""

from __future__ import annotations

import torch

from minifusion.diffusion.prediction import check_prediction_type, model_output_from


class _Oracle:
    def __init__(self, alphas_cumprod: torch.Tensor, prediction_type: str, eps_error: float, seed: int) -> None:
        check_prediction_type(prediction_type)
        if eps_error < 0:
            raise ValueError(f"eps_error must be >= 0, got {eps_error!r}")
        self.alphas_cumprod = alphas_cumprod.to(torch.float64)
        self.prediction_type = prediction_type
        self.eps_error = float(eps_error)
        self.seed = seed

    def alpha_bar(self, timestep: int | float | torch.Tensor) -> float:
        """alpha_bar at ``timestep``; between training steps from sigma interpolated linearly in t, as the
        Euler and DPM-Solver++ schedulers do (``minifusion.diffusion.sigmas``)."""
        t = float(timestep)
        if t.is_integer():
            return float(self.alphas_cumprod[int(t)])
        sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()
        low = min(int(t), len(sigmas) - 2)
        sigma = (1 - (t - low)) * sigmas[low] + (t - low) * sigmas[low + 1]
        return float(1 / (1 + sigma**2))

    def pred_original_sample(self, sample: torch.Tensor, timestep: int | float | torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t = sample] at ``timestep`` (fractional allowed)."""
        return self.posterior_mean(sample, self.alpha_bar(timestep))

    def posterior_mean(self, sample: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """E[x0 | x_t = sample] at the noise level ``alpha_bar``."""
        raise NotImplementedError

    def __call__(self, sample: torch.Tensor, timestep: int | float | torch.Tensor) -> torch.Tensor:
        """The model output of ``prediction_type`` for x_t = ``sample`` at ``timestep`` (fractional allowed)."""
        return self.output_at(sample, self.alpha_bar(timestep), error_seed=int(float(timestep)))

    def output_at(self, sample: torch.Tensor, alpha_bar: float, *, error_seed: int = 0) -> torch.Tensor:
        """The model output for x_t = ``sample`` at noise level ``alpha_bar`` (e.g. 1 / (1 + sigma^2) for a
        sigma of a Karras schedule); ``error_seed`` picks the fixed error pattern when ``eps_error`` > 0."""
        t = error_seed
        ab = torch.tensor(float(alpha_bar), dtype=torch.float64)
        x0 = self.posterior_mean(sample, float(alpha_bar)).to(torch.float64)
        x = sample.to(torch.float64)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        if self.eps_error > 0:
            g = torch.Generator().manual_seed(self.seed * 100003 + t)  # fixed per (seed, t)
            r = torch.randn(sample.shape, generator=g, dtype=torch.float64).to(sample.device)
            eps = eps * (1 + self.eps_error * r)
            x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt() if ab > 0 else x0
        out = model_output_from(x0, eps, float(ab), self.prediction_type)
        return out.to(sample.dtype)


class PointSetDenoiser(_Oracle):
    """The exact denoiser for data uniformly drawn from ``points`` (K, ...) (see module doc).

    Call it like a model: ``denoiser(x_t, t)`` returns the prediction of ``prediction_type``.
    """

    def __init__(
        self,
        points: torch.Tensor,
        alphas_cumprod: torch.Tensor,
        *,
        prediction_type: str = "epsilon",
        eps_error: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(alphas_cumprod, prediction_type, eps_error, seed)
        if points.ndim < 2 or points.shape[0] < 1:
            raise ValueError(f"points must be (K, ...) with K >= 1, got shape {tuple(points.shape)}")
        self.points = points.to(torch.float64)

    def posterior_weights(self, sample: torch.Tensor, timestep: int | float | torch.Tensor) -> torch.Tensor:
        """p(x0 = x_k | x_t), shape (B, K)."""
        return self._weights(sample, self.alpha_bar(timestep))

    def _weights(self, sample: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        if sample.shape[1:] != self.points.shape[1:]:
            need = ", ".join(map(str, self.points.shape[1:]))
            raise ValueError(f"sample has shape {tuple(sample.shape)}; need (B, {need})")
        ab = torch.tensor(float(alpha_bar), dtype=torch.float64)
        x = sample.to(torch.float64).flatten(1)  # (B, D)
        pts = self.points.flatten(1).to(x.device)  # (K, D)
        # elementwise on purpose: cdist/softmax/matmul on tiny tensors are slow when cores are busy
        sq_dist = ((x[:, None, :] - ab.sqrt() * pts[None]) ** 2).sum(-1)  # (B, K)
        logits = -sq_dist / (2 * (1 - ab))
        w = (logits - logits.max(dim=1, keepdim=True).values).exp()
        return w / w.sum(dim=1, keepdim=True)

    def posterior_mean(self, sample: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        w = self._weights(sample, alpha_bar)  # (B, K)
        pts = self.points.flatten(1).to(w.device)  # (K, D)
        x0 = (w[:, :, None] * pts[None]).sum(1)  # (B, D): the posterior mean
        return x0.reshape(sample.shape).to(sample.dtype)


class GaussianDenoiser(_Oracle):
    """The exact denoiser for data ~ N(mean, std^2 I), any sample shape."""

    def __init__(
        self,
        mean: float,
        std: float,
        alphas_cumprod: torch.Tensor,
        *,
        prediction_type: str = "epsilon",
        eps_error: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(alphas_cumprod, prediction_type, eps_error, seed)
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std!r}")
        self.mean, self.std = float(mean), float(std)

    def posterior_mean(self, sample: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        ab = float(alpha_bar)
        var = self.std**2
        gain = ab**0.5 * var / (ab * var + 1 - ab)
        x = sample.to(torch.float64)
        return (self.mean + gain * (x - ab**0.5 * self.mean)).to(sample.dtype)
