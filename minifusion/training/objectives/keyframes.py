"""The keyframe objective: the T2I diffusion loss on clips of K keyframes, optionally weighted toward high noise.

x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps on (B, C, K, h, w) keyframe latents, one t per clip;
loss = ||eps_theta(x_t, t, text, frame positions) - eps||^2 (FusionFrames, arXiv 2311.13073, section
3.1: the T2I U-Net frozen, the temporal parts trained). With ``loss_weighting="v"`` each clip's
noise MSE is weighted by min(1 / ab_t, cap) / mean: the MSE of the v the prediction implies, which
weighs up the noise levels where the layout - and so the motion - is decided (docs/motion.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minifusion.models.keyframe_unet import KeyframeUNet
from minifusion.models.text_encoder import TextEncoder
from minifusion.training.randomness import per_sample_bernoulli, per_sample_noise, per_sample_randint

LOSS_WEIGHTINGS = ("epsilon", "v")


class KeyframesTask:
    """Diffusion loss of the keyframe U-Net on text from the frozen text encoder.

    Per sample, in this order: timestep, noise (B, C, K, h, w), caption-dropout decision (a
    dropped caption's mask row is cleared, which the text encoder answers with its null embedding).

    ``loss_weighting``: "epsilon" is the T2I objective, the plain MSE of the predicted noise.
    "v" weighs each sample's noise MSE by 1 / alpha_bar_t (capped at ``loss_weight_cap``), which
    is the MSE of the v = sqrt(ab) eps - sqrt(1 - ab) x0 the prediction implies: the model still
    predicts noise (its frozen output layer was trained for that), but high-noise samples, where
    the layout of the clip - where the shape is in each frame, so its motion - is decided, weigh
    up to ``cap`` times more. An eps error at alpha_bar 0.02 (t = 900) is a 7x larger error in the
    clean clip than at alpha_bar 0.5; the plain MSE treats them alike (Salimans & Ho 2022, sec. 4;
    Hang et al. 2023 on loss weights). The weights are divided by their mean over t, so the loss
    keeps its scale.
    """

    def __init__(self, scheduler, text_encoder: TextEncoder, *, frame_positions: torch.Tensor,
                 caption_dropout: float = 0.1, loss_weighting: str = "epsilon",
                 loss_weight_cap: float = 20.0) -> None:
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting {loss_weighting!r} is not one of " + ", ".join(map(repr, LOSS_WEIGHTINGS)))
        if loss_weighting == "v" and scheduler.config["prediction_type"] != "epsilon":
            raise ValueError(f"loss_weighting 'v' reweights a noise prediction; this scheduler trains "
                             f"{scheduler.config['prediction_type']!r}")
        self.scheduler, self.text_encoder = scheduler, text_encoder.eval().requires_grad_(False)
        self.frame_positions, self.caption_dropout = frame_positions, float(caption_dropout)
        self.loss_weighting = loss_weighting
        weights = (1 / scheduler.alphas_cumprod.double()).clamp(max=float(loss_weight_cap))  # (T,)
        self.loss_weights = (weights / weights.mean()).float()  # mean 1 over uniform t

    def loss(self, model: KeyframeUNet, batch: dict, sample_indices: list[int],
             generators: list[torch.Generator]) -> torch.Tensor:
        x0 = batch["latents"]  # (B, C, K, h, w)
        device = x0.device
        t = per_sample_randint(generators, 0, self.scheduler.num_train_timesteps, device=device)  # (B,)
        noise = per_sample_noise(generators, x0.shape[1:], device=device, dtype=x0.dtype)  # (B, C, K, h, w)
        drop = per_sample_bernoulli(generators, self.caption_dropout, device=device)  # (B,) bool
        mask = batch["attention_mask"] & ~drop[:, None]  # (B, L); empty rows -> null embedding
        with torch.no_grad():
            hidden, hidden_mask = self.text_encoder(batch["input_ids"], mask)  # (B, L, D), (B, L)
        x_t = self.scheduler.add_noise(x0, noise, t)
        target = self.scheduler.training_target(x0, noise, t)
        prediction = model(x_t, t, hidden, hidden_mask, frame_positions=self.frame_positions.to(device))
        if self.loss_weighting == "epsilon":
            return F.mse_loss(prediction.float(), target.float())
        per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(1)  # (B,)
        return (per_sample * self.loss_weights.to(device)[t]).mean()
