"""Masked frame interpolation (MFI), the baseline of FusionFrames' Table 2, as a sampler.

Video LDM (Blattmann et al. 2023, section 3.1.1) interpolates by running a video U-Net on *every*
frame of the up-sampled sequence, with the known frames and a mask as extra input channels
(``MaskedInterpolationUNet``). ``mfi_interpolate_pass`` is one such pass, the counterpart of
FusionFrames' pair-wise ``interpolate_pass`` (``minifusion.pipelines.interpolation``): latents
(B, C, K, h, w) -> (B, C, (n + 1)(K - 1) + 1, h, w) with the given frames kept exactly. The ``mfi``
training stage (``minifusion.training.recipes.mfi``) trains the U-Net it runs.

Taught in notebook 09 (notebooks/09_interpolation.ipynb).
"""

from __future__ import annotations

from typing import Any

import torch

from minifusion.models.masked_interpolation_unet import MaskedInterpolationUNet
from minifusion.pipelines.denoising import denoise, randn
from minifusion.pipelines.interpolation import context_guided


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


def mfi_interpolate_pass(mfi_unet: MaskedInterpolationUNet, scheduler, latents: torch.Tensor, *, frame_skip: float,
                         num_inference_steps: int, guidance_scale: float, generator: torch.Generator | None,
                         frames_per_pair: int = 3, stage: str = "mfi", use_autocast: bool = True,
                         **loop_kwargs: Any) -> torch.Tensor:
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

    def call(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return mfi_unet(torch.cat([x, known, mask], dim=1), t, frame_positions=positions, perturbation_level=0)

    model_fn = context_guided(call, guidance_scale, latents.device, use_autocast)

    video = denoise(model_fn, scheduler, noise, num_inference_steps=num_inference_steps, generator=generator,
                    stage=stage, **loop_kwargs)
    video[:, :, ::m] = latents.to(video.dtype)
    return video
