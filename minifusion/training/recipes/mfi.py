"""Stage ``mfi``: the masked-frame-interpolation baseline, trained with the interpolation stage's budget.

FusionFrames (arXiv 2311.13073, Table 2) compares its pair-wise interpolator with masked frame
interpolation (MFI) in the style of Video LDM (Blattmann et al. 2023, section 3.1.1): a video
U-Net runs on *every* frame of the up-sampled sequence, with the known frames and a mask as
extra input channels (``MaskedInterpolationUNet``, initialised from the T2I U-Net).

Same data, samples, randomness and budget as the ``interpolation`` stage (``InterpolationRecipe``
defaults, ``draw_sample_randomness`` in the same order, so both see the same windows, timesteps,
noise, t_p and dropouts): a window of (n + 1)(K - 1) + 1 = 29 latents (pass 1: whole frames,
pass 2: quarter frames); per frame the input is [noisy latent (4) | known latent or zeros (4) |
mask (1)], the known frames at every (n + 1)-th position, perturbed to t_p and zeroed for the 10%
dropout like the interpolator's keyframes. Frame positions are source times relative to the first
frame (0, 1, 2, ... in pass 1; 0, 0.25, 0.5, ... in pass 2), which is how the baseline (it has no
frame-skip embedding) tells the passes apart. The loss is the v-prediction MSE over *all* frames
(the model denoises the whole sequence; the known frames are replaced by the given ones at the end
of sampling, ``mfi_interpolate_pass``).

Writes ``OUT/mfi_unet/`` and ``OUT/mfi_scheduler/`` (the default pipeline does not use them) and
``OUT/runs/mfi/metrics.json`` with the same ``evaluate_interpolation`` as the interpolation stage.

Taught in notebook 09 (notebooks/09_interpolation.ipynb).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from minifusion.diffusion.guidance import classifier_free_guidance
from minifusion.models.keyframe_unet import TEMPORAL_VARIANTS
from minifusion.models.masked_interpolation_unet import MaskedInterpolationUNet
from minifusion.pipelines.denoising import autocast_context, denoise, randn
from minifusion.training.config import TrainingConfig
from minifusion.training.distributed import finish_stage
from minifusion.training.recipes.interpolation import (
    InterpolationRecipe,
    InterpolationTask,
    run_interpolation_stage,
    task_from_recipe,
    window_length,
)
from minifusion.training.recipes.interpolation import _default_training as _interpolation_training

STAGE = "mfi"


def _default_training() -> TrainingConfig:
    """The interpolation stage's training settings, saved under this recipe's name."""
    return dataclasses.replace(_interpolation_training(), extra={"recipe": STAGE})


@dataclass
class MFIRecipe(InterpolationRecipe):
    training: TrainingConfig = field(default_factory=_default_training)  # the interpolation stage's budget
    temporal: str = "conv1d_attn1d_blocks"  # temporal layers of the baseline's video U-Net (keyframe variants)

    def validate(self) -> None:
        super().validate()
        if self.temporal not in TEMPORAL_VARIANTS:
            raise ValueError(f"temporal {self.temporal!r} is not one of {', '.join(map(repr, TEMPORAL_VARIANTS))}")


def masked_inputs(known: torch.Tensor, frames_per_pair: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Known frames (B, C, K, h, w) -> known channels (B, C, F, h, w) with them at every (n + 1)-th frame
    and zeros elsewhere, and the mask (B, 1, F, h, w), F = (n + 1)(K - 1) + 1."""
    b, c, k, h, w = known.shape
    m = frames_per_pair + 1
    f = m * (k - 1) + 1
    out = known.new_zeros(b, c, f, h, w)
    out[:, :, ::m] = known
    mask = known.new_zeros(b, 1, f, h, w)
    mask[:, :, ::m] = 1
    return out, mask


def frame_positions(frame_skip: torch.Tensor | float, num_frames: int, frames_per_pair: int,
                    batch: int, device: torch.device) -> torch.Tensor:
    """(B, F) source times relative to the first frame: j * frame_skip / (n + 1)."""
    skip = torch.as_tensor(frame_skip, dtype=torch.float32, device=device).reshape(-1).expand(batch)  # (B,)
    return skip[:, None] * torch.arange(num_frames, device=device, dtype=torch.float32) / (frames_per_pair + 1)


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


def mfi_interpolate_pass(
    mfi_unet: MaskedInterpolationUNet,
    scheduler,
    latents: torch.Tensor,
    *,
    frame_skip: float,
    num_inference_steps: int,
    guidance_scale: float,
    generator: torch.Generator | None,
    frames_per_pair: int = 3,
    stage: str = "mfi",
    use_autocast: bool = True,
    **loop_kwargs: Any,
) -> torch.Tensor:
    """One MFI pass: latents (B, C, K, h, w) -> (B, C, (n + 1)(K - 1) + 1, h, w), the given frames kept exactly.

    The U-Net denoises every frame of the up-sampled sequence with [noisy | known or zeros | mask]
    as input; context guidance as in ``interpolate_pass`` (uncond = the known channels zeroed, the
    mask kept). ``frame_skip`` is the source distance of the given frames (4, then 1).
    """
    if latents.ndim != 5 or latents.shape[2] < 2:
        raise ValueError(f"interpolation needs video latents (B, C, K, h, w) with K >= 2, got shape "
                         f"{tuple(latents.shape)}")
    b, c, k, h, w = latents.shape
    if c != mfi_unet.config.out_channels:
        raise ValueError(f"latents have {c} channels, the MFI U-Net takes {mfi_unet.config.out_channels}: "
                         f"got shape {tuple(latents.shape)}")
    m = frames_per_pair + 1
    known, mask = masked_inputs(latents, frames_per_pair)  # (B, C, F, h, w), (B, 1, F, h, w)
    f = known.shape[2]
    guided = guidance_scale != 1.0
    if guided:  # cond rows first, then the same videos with the known frames zeroed
        known, mask = torch.cat([known, torch.zeros_like(known)]), torch.cat([mask, mask])
    positions = frame_positions(frame_skip, f, frames_per_pair, known.shape[0], latents.device)
    noise = randn((b, c, f, h, w), generator, latents.device)

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, x]) if guided else x
        with autocast_context(latents.device, use_autocast):
            out = mfi_unet(torch.cat([x, known, mask], dim=1), t, frame_positions=positions,
                           perturbation_level=0).float()
        if not guided:
            return out
        out_cond, out_uncond = out.chunk(2)
        return classifier_free_guidance(out_uncond, out_cond, guidance_scale)

    video = denoise(model_fn, scheduler, noise, num_inference_steps=num_inference_steps, generator=generator,
                    stage=stage, **loop_kwargs)
    video[:, :, ::m] = latents.to(video.dtype)
    return video


def _build_mfi_unet(recipe: MFIRecipe, unet, text_encoder, latent_size: int) -> MaskedInterpolationUNet:
    model = MaskedInterpolationUNet.from_t2i(unet, recipe.temporal, sample_size=latent_size, null_context_length=1,
                                             num_frames=window_length(recipe.data.num_frames, recipe.frames_per_pair))
    with torch.no_grad():  # the T2I model's unconditional input: the text encoder's null token, alone
        model.null_encoder_hidden_states[0, 0] = text_encoder.null_token
    return model.freeze_spatial() if recipe.freeze_spatial else model


def train_mfi(out_dir: str | Path, *, steps: int | None = None, config: MFIRecipe | dict | str | Path | None = None,
              resume: bool = False, data_dir: str | Path | None = None, seed: int | None = None,
              progress: bool = True) -> Path:
    """Train the MFI baseline into ``out_dir`` (which must hold the autoencoder and t2i stages).

    Arguments as ``train_autoencoder``. Returns ``out_dir / "mfi_unet"``; ``model_index.json`` is not touched.
    """
    final, _ = run_interpolation_stage(STAGE, MFIRecipe, out_dir, build_model=_build_mfi_unet,
                                       make_task=functools.partial(task_from_recipe, task_class=MFITask),
                                       component="mfi_unet", steps=steps, config=config, resume=resume,
                                       data_dir=data_dir, seed=seed, progress=progress)
    return finish_stage(final)  # under torchrun every rank returns once rank 0 has written OUT/mfi_unet
