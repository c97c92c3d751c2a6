"""The masked-frame-interpolation baseline's objective (FusionFrames, Table 2; Video LDM, section 3.1.1).

The same draws as the interpolation objective, but the model denoises *every* frame of the
window, with the known frames (every (n + 1)-th, perturbed to t_p, zeroed for dropout) and a mask as
extra channels: loss = ||v_theta - v||^2 over all frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minifusion.models.masked_interpolation_unet import MaskedInterpolationUNet
from minifusion.pipelines.mfi import frame_positions, masked_inputs
from minifusion.training.objectives.interpolation import InterpolationTask


class MFITask(InterpolationTask):
    """v-prediction loss of the MFI baseline on whole windows (same draws as ``InterpolationTask``)."""

    def loss(self, model: MaskedInterpolationUNet, batch: dict, sample_indices: list[int],
             generators: list[torch.Generator]) -> torch.Tensor:
        r = self.prepare(batch, generators)
        clip, noise, t = r["clip"], r["noise"], r["t"]  # (B, C, F, h, w), same, (B,)
        known, mask = masked_inputs(r["keyframes"], self.frames_per_pair)
        x_t = self.scheduler.add_noise(clip, noise, t)
        target = self.scheduler.training_target(clip, noise, t)
        positions = frame_positions(r["frame_skip"], clip.shape[2], self.frames_per_pair, clip.shape[0], clip.device)
        prediction = model(torch.cat([x_t, known, mask], dim=1), t, frame_positions=positions,
                           perturbation_level=r["t_p"])
        return F.mse_loss(prediction.float(), target.float())
