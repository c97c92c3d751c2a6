"""Stage 2 of FusionFrames (arXiv 2311.13073, section 3.2): one interpolation pass, T -> 4T - 3 frames.

For K frames there are P = K - 1 neighbouring pairs. Per pair the InterpolationUNet reads

    [left frame latent (4) | three noisy latents (12) | right frame latent (4)] = 20 channels

with the pairs of one video along the time axis, (B, 20, P, h, w), and predicts v for the three
middle latents, (B, 12, P, h, w). It is told the frame skip s (source frames between the two
conditioning frames: 4 in pass 1 when keyframes are 4 apart, 1 in pass 2) and the perturbation
level t_p of the conditioning frames (0 at inference).

Context guidance: ``(1 + w) * cond - w * uncond`` with s = 1 + w = ``guidance_scale`` (the paper's
w = 0.25 is s = 1.25), where uncond is the same call with the conditioning frames zeroed (as in
training, where 10% of the pairs have them zeroed). Both go through the network in one call.

``strength < 1`` (not the paper's: an SDEdit start, ``denoising.py``) starts from the two keyframe
latents' linear blend at each middle position, noised part-way: the blend places the object
(nearly right at this data's speeds), the network sharpens it.

After sampling the frames are interleaved: K frames + 3 (K - 1) new ones = 4K - 3, the given
frames kept exactly at positions 0, 4, 8, ...

Taught in notebooks 09 and 11 (notebooks/09_interpolation.ipynb, notebooks/11_full_pipeline.ipynb).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from einops import rearrange

from minifusion.diffusion.guidance import classifier_free_guidance
from minifusion.models.interpolation_unet import InterpolationUNet
from minifusion.pipelines.denoising import autocast_context, denoise, randn


def pair_conditioning(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Video latents (B, C, K, h, w) -> left and right frame of every pair, each (B, C, K - 1, h, w)."""
    return latents[:, :, :-1], latents[:, :, 1:]


def interleave(latents: torch.Tensor, middle: torch.Tensor, frames_per_pair: int) -> torch.Tensor:
    """K given latents (B, C, K, h, w) + middle latents (B, n * C, K - 1, h, w) -> (B, C, (n + 1)(K - 1) + 1, h, w).

    Frame j of pair p lands at index (n + 1) p + 1 + j; the given frame k at (n + 1) k.
    """
    n = frames_per_pair
    mids = rearrange(middle, "b (n c) p h w -> b c p n h w", n=n)  # (B, C, P, n, h, w)
    left = latents[:, :, :-1, None]  # (B, C, P, 1, h, w)
    body = rearrange(torch.cat([left, mids], dim=3), "b c p n h w -> b c (p n) h w")  # (B, C, P (n + 1), h, w)
    return torch.cat([body, latents[:, :, -1:]], dim=2)


def pair_blend(latents: torch.Tensor, frames_per_pair: int) -> torch.Tensor:
    """The linear blend of each pair at its middle positions, in the interpolator's layout:
    (B, C, K, h, w) -> (B, n * C, K - 1, h, w); slot j of n holds (1 - w) left + w right, w = (j + 1) / (n + 1)."""
    left, right = pair_conditioning(latents)  # (B, C, P, h, w) each
    weights = [(j + 1) / (frames_per_pair + 1) for j in range(frames_per_pair)]
    return torch.cat([(1 - w) * left + w * right for w in weights], dim=1)


def interpolation_frame_skips(keyframe_frame_skip: int, passes: int, frames_per_pair: int = 3) -> list[float]:
    """The frame skip s the interpolator is told in each pass: 4, 1 for keyframes 4 apart (4, 1, 0.25, ...)."""
    return [keyframe_frame_skip / (frames_per_pair + 1) ** k for k in range(passes)]


def context_guided(call: Callable, guidance_scale: float, device: torch.device, use_autocast: bool) -> Callable:
    """The sampler's ``model_fn(x, t)`` for an interpolator: ``call`` on [x; x] when guided (rows with the given
    frames, then the same rows with them zeroed), then context guidance ``uncond + s (cond - uncond)``."""
    guided = guidance_scale != 1.0

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with autocast_context(device, use_autocast):
            out = call(torch.cat([x, x]) if guided else x, t).float()
        if not guided:
            return out
        out_cond, out_uncond = out.chunk(2)
        return classifier_free_guidance(out_uncond, out_cond, guidance_scale)

    return model_fn


def interpolate_pass(
    interpolation_unet: InterpolationUNet,
    scheduler,
    latents: torch.Tensor,
    *,
    frame_skip: float,
    num_inference_steps: int,
    guidance_scale: float,
    generator: torch.Generator | None,
    stage: str = "interpolation",
    use_autocast: bool = True,
    strength: float = 1.0,
    **loop_kwargs: Any,
) -> torch.Tensor:
    """One pass: latents (B, C, K, h, w) -> (B, C, 4K - 3, h, w) (for 3 frames per pair); see module docstring."""
    if latents.ndim != 5 or latents.shape[2] < 2:
        raise ValueError(f"interpolation needs video latents (B, C, K, h, w) with K >= 2, got shape "
                         f"{tuple(latents.shape)}")
    n = interpolation_unet.config.frames_per_pair
    b, c, k, h, w = latents.shape
    if c != interpolation_unet.latent_channels:
        raise ValueError(f"latents have {c} channels, the interpolation U-Net takes "
                         f"{interpolation_unet.latent_channels}: got shape {tuple(latents.shape)}")
    left, right = pair_conditioning(latents)
    guided = guidance_scale != 1.0
    if guided:  # cond rows first, then the same pairs with the conditioning frames zeroed
        left = torch.cat([left, torch.zeros_like(left)])
        right = torch.cat([right, torch.zeros_like(right)])
    noise = randn((b, n * c, k - 1, h, w), generator, latents.device)  # (B, 12, P, h, w)

    def call(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sample = torch.cat([left, x, right], dim=1)  # (B or 2B, 20, P, h, w)
        return interpolation_unet(sample, t, frame_skip=frame_skip, perturbation_level=0)

    model_fn = context_guided(call, guidance_scale, latents.device, use_autocast)

    init = None if strength == 1.0 else pair_blend(latents, n)
    middle = denoise(model_fn, scheduler, noise, num_inference_steps=num_inference_steps, generator=generator,
                     stage=stage, init_latents=init, strength=strength, **loop_kwargs)
    return interleave(latents, middle, n)
