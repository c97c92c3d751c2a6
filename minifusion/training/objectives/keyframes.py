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
from minifusion.training.objectives.t2i import T2ITask

LOSS_WEIGHTINGS = ("epsilon", "v")


class KeyframesTask(T2ITask):
    """The T2I objective on keyframe clips (B, C, K, h, w), each keyframe told its source position.

    The same draws as ``T2ITask.draw``, per sample: timestep, noise (B, C, K, h, w), caption dropout.

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
        super().__init__(scheduler, text_encoder, caption_dropout=caption_dropout)
        self.frame_positions = frame_positions
        self.loss_weighting = loss_weighting
        weights = (1 / scheduler.alphas_cumprod.double()).clamp(max=float(loss_weight_cap))  # (T,)
        self.loss_weights = (weights / weights.mean()).float()  # mean 1 over uniform t

    def loss(self, model: KeyframeUNet, batch: dict, sample_indices: list[int],
             generators: list[torch.Generator]) -> torch.Tensor:
        d = self.draw(batch, generators)
        positions = self.frame_positions.to(d["x_t"].device)
        prediction = model(d["x_t"], d["t"], d["hidden"], d["hidden_mask"], frame_positions=positions)
        if self.loss_weighting == "epsilon":
            return F.mse_loss(prediction.float(), d["target"].float())
        per_sample = (prediction.float() - d["target"].float()).pow(2).flatten(1).mean(1)  # (B,)
        return (per_sample * self.loss_weights.to(per_sample.device)[d["t"]]).mean()
