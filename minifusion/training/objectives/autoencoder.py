"""The latent autoencoder's objective: reconstruct the frame through a small latent.

loss = w_mse * ||D(E(x)) - x||^2 + w_latent * ||E(x)||^2 (+ w_l1 * |D(E(x)) - x| + w_grad * edge term),
on single frames x (B, C, H, W) in [-1, 1]. A plain autoencoder stands in for the MoVQ-GAN of
FusionFrames (arXiv 2311.13073, section 3.3): no codebook, KL or GAN term; the small L2 penalty
keeps the latents in a range the diffusion models can work with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minifusion.models.autoencoder import Autoencoder


def image_gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean |dx(x) - dx(y)| + mean |dy(x) - dy(y)| of images (B, C, H, W): an edge-sharpness loss."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731  (B, C, H, W-1)
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731  (B, C, H-1, W)
    return (dx(x) - dx(y)).abs().mean() + (dy(x) - dy(y)).abs().mean()


class AutoencoderTask:
    """Reconstruction loss of a batch ``{"video": (B, C, H, W)}``; draws no randomness."""

    def __init__(self, *, mse_weight: float = 1.0, l1_weight: float = 0.0, gradient_weight: float = 0.0,
                 latent_weight: float = 1e-4) -> None:
        self.mse_weight, self.l1_weight = mse_weight, l1_weight
        self.gradient_weight, self.latent_weight = gradient_weight, latent_weight

    def loss(self, model: Autoencoder, batch: dict, sample_indices: list[int],
             generators: list[torch.Generator]) -> torch.Tensor:
        x = batch["video"]  # (B, C, H, W)
        out = model.compute_loss(x, latent_weight=self.latent_weight)
        recon = out["reconstruction"].float()
        loss = self.mse_weight * out["mse"] + self.latent_weight * out["latent_l2"]
        if self.l1_weight:
            loss = loss + self.l1_weight * F.l1_loss(recon, x.float())
        if self.gradient_weight:
            loss = loss + self.gradient_weight * image_gradient_l1(recon, x.float())
        return loss
