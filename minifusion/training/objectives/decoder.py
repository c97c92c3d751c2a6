"""The temporal video decoder's objective: the frozen encoder's latents, decoded as a clip.

loss = w_mse * ||D_video(E(x)) - x||^2 + w_l1 * |D_video(E(x)) - x| (+ edge and temporal-difference
terms), on clips x (B, C, F, H, W): only the decoder's temporal layers learn (FusionFrames, arXiv
2311.13073, section 3.3 and Table 3), so frame-to-frame flicker is what they can remove.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minifusion.models.autoencoder import Autoencoder
from minifusion.training.objectives.autoencoder import image_gradient_l1


def temporal_gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean |(x_{t+1} - x_t) - (y_{t+1} - y_t)| of videos (B, C, F, H, W)."""
    dt = lambda t: t[:, :, 1:] - t[:, :, :-1]  # noqa: E731  (B, C, F - 1, H, W)
    return (dt(x) - dt(y)).abs().mean()


class DecoderTask:
    """Reconstruction loss of the video decoder on clips ``{"video": (B, C, F, H, W)}``; draws no randomness."""

    def __init__(self, *, mse_weight: float = 1.0, l1_weight: float = 0.1, gradient_weight: float = 0.0,
                 temporal_gradient_weight: float = 0.0) -> None:
        self.mse_weight, self.l1_weight = mse_weight, l1_weight
        self.gradient_weight, self.temporal_gradient_weight = gradient_weight, temporal_gradient_weight

    def loss(self, model: Autoencoder, batch: dict, sample_indices: list[int],
             generators: list[torch.Generator]) -> torch.Tensor:
        x = batch["video"]  # (B, C, F, H, W)
        with torch.no_grad():  # the encoder is frozen
            z = model.encode_unscaled(x)  # (B, 4, F, h, w)
        recon = model.decode_unscaled(z).float()  # (B, C, F, H, W); temporal layers see all F frames
        target = x.float()
        loss = self.mse_weight * F.mse_loss(recon, target)
        if self.l1_weight:
            loss = loss + self.l1_weight * F.l1_loss(recon, target)
        if self.gradient_weight:
            loss = loss + self.gradient_weight * image_gradient_l1(recon, target)  # over frames as extra rows
        if self.temporal_gradient_weight:
            loss = loss + self.temporal_gradient_weight * temporal_gradient_l1(recon, target)
        return loss
