"""Stage 1 of FusionFrames (arXiv 2311.13073, section 3.1): text -> keyframe latents.

The keyframe U-Net denoises K keyframe latents (B, 4, K, h, w) together, each told its
source-frame position (0, s, 2s, ... for frame skip s). Classifier-free guidance (Ho & Salimans
2022) in the diffusers form ``uncond + s * (cond - uncond)`` (the paper's w is s - 1): the
conditional and unconditional inputs go through the network in ONE call, stacked along the
batch. The unconditional text is the text encoder's learned null embedding, or the encoding of
a negative prompt. The text is encoded once and reused at every step.

Taught in notebook 11 (notebooks/11_full_pipeline.ipynb).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from minifusion.diffusion.guidance import classifier_free_guidance
from minifusion.models.keyframe_unet import KeyframeUNet
from minifusion.models.text_encoder import TextEncoder
from minifusion.models.tokenizer import check_prompts
from minifusion.pipelines.denoising import autocast_context, denoise, randn


def encode_text(
    text_encoder: TextEncoder, prompts: list[str], negative_prompt: str | list[str] | None, *, with_uncond: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden (B or 2B, L, D), mask (B or 2B, L)): cond rows first, then uncond rows when ``with_uncond``."""
    b = len(prompts)
    with warnings.catch_warnings():  # the pipeline warns about unknown words itself, pointing at its caller
        warnings.simplefilter("ignore", UserWarning)
        cond, cond_mask = text_encoder.encode(prompts)  # (B, L, D), (B, L)
        if not with_uncond:
            return cond, cond_mask
        if negative_prompt is None:
            uncond, uncond_mask = text_encoder.null_embedding(b, length=cond.shape[1])
        else:
            uncond, uncond_mask = text_encoder.encode(check_negative_prompt(negative_prompt, b))
    return torch.cat([cond, uncond.to(cond)]), torch.cat([cond_mask, uncond_mask.to(cond_mask.device)])


def check_negative_prompt(negative_prompt: Any, batch_size: int) -> list[str]:
    """A str (used for every prompt) or a list of ``batch_size`` str."""
    try:
        negatives = check_prompts(negative_prompt)
    except ValueError as e:
        raise ValueError(str(e).replace("prompts", "negative_prompt", 1)) from None
    if isinstance(negative_prompt, str):
        negatives = negatives * batch_size
    if len(negatives) != batch_size:
        raise ValueError(f"negative_prompt has {len(negatives)} entries but there are {batch_size} prompts; "
                         "pass one str or one per prompt")
    return negatives


def sample_keyframes(
    keyframe_unet: KeyframeUNet,
    text_encoder: TextEncoder,
    scheduler,
    prompts: list[str],
    *,
    negative_prompt: str | list[str] | None,
    num_keyframes: int,
    frame_skip: int,
    num_inference_steps: int,
    guidance_scale: float,
    generator: torch.Generator | None,
    latent_size: int,
    device: torch.device,
    use_autocast: bool = True,
    **loop_kwargs: Any,
) -> torch.Tensor:
    """Keyframe latents (B, C, K, h, w) for ``prompts`` (see the module docstring).

    ``loop_kwargs`` go to ``denoise`` (callback, progress bar, pipe, step kwargs).
    """
    b = len(prompts)
    guided = guidance_scale != 1.0  # s = 1 is the conditional prediction: skip the uncond half
    text, text_mask = encode_text(text_encoder, prompts, negative_prompt, with_uncond=guided)
    text, text_mask = text.to(device), text_mask.to(device)
    positions = torch.arange(num_keyframes, device=device, dtype=torch.float32) * frame_skip  # (K,) 0, s, 2s, ...
    c = keyframe_unet.config.in_channels
    noise = randn((b, c, num_keyframes, latent_size, latent_size), generator, device)

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        model_input = torch.cat([x, x]) if guided else x  # (2B or B, C, K, h, w)
        with autocast_context(device, use_autocast):
            out = keyframe_unet(model_input, t, text, text_mask, frame_positions=positions).float()
        if not guided:
            return out
        out_cond, out_uncond = out.chunk(2)
        return classifier_free_guidance(out_uncond, out_cond, guidance_scale)

    return denoise(model_fn, scheduler, noise, num_inference_steps=num_inference_steps, generator=generator,
                   stage="keyframes", **loop_kwargs)
