"""Evaluation of an interpolation model: PSNR of interpolated middle frames against the truth.

FusionFrames (arXiv 2311.13073, section 3.2, Table 2) compares interpolators on how close their
frames come to the real ones. Here: ``evaluate_interpolation`` interpolates the encoded keyframes of
held-out Moving Shapes clips (pass 1 and pass 2) and reports the model's PSNR next to a pixel blend
(``linear_blend``), the same blend of the keyframe latents through the decoder, and the autoencoder's
round trip (the ceiling). ``save_interpolation_figure`` draws it. Used by the ``interpolation`` and
``mfi`` stages and by ``benchmarks/bench_quality.py``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import torch
from einops import rearrange
from torch.utils.data import Dataset

from minifusion.diffusion import DDIMScheduler
from minifusion.models.interpolation_unet import InterpolationUNet
from minifusion.pipelines.interpolation import interpolate_pass, pair_conditioning
from minifusion.training.recipes.common import psnr


def linear_blend(keyframes: torch.Tensor, frames_per_pair: int) -> torch.Tensor:
    """Pixel-space blend (1 - a) left + a right, a = j / (n + 1): (B, C, K, H, W) -> (B, C, (n + 1)(K - 1) + 1, H, W)."""
    from minifusion.pipelines.interpolation import interleave

    left, right = pair_conditioning(keyframes)
    a = torch.arange(1, frames_per_pair + 1, dtype=keyframes.dtype) / (frames_per_pair + 1)  # (n,)
    mids = left[:, :, None] * (1 - a)[:, None, None, None] + right[:, :, None] * a[:, None, None, None]
    return interleave(keyframes, rearrange(mids, "b c n p h w -> b (n c) p h w"), frames_per_pair)


@torch.no_grad()
def evaluate_interpolation(model, scheduler, autoencoder, *, clips: Dataset | None = None, split: str = "heldout",
                           num_clips: int = 8, num_keyframes: int = 8, frame_skip: int = 4, frames_per_pair: int = 3,
                           size: int = 64, num_inference_steps: int = 25, guidance_scale: float = 1.25,
                           seed: int = 0, interpolate_fn: Callable | None = None,
                           return_frames: bool = False) -> dict:
    """PSNR (dB) of interpolated middle frames against the true frames, for pass 1 and pass 2.

    Keyframes of ``num_clips`` clips (default: Moving Shapes ``split``) are encoded, interpolated
    (``interpolate_pass`` for an ``InterpolationUNet``, ``mfi_interpolate_pass`` for the MFI
    baseline, or ``interpolate_fn(latents, frame_skip=, generator=)``), decoded and compared on the
    middle frames only, next to a pixel-space linear blend of the true keyframes and the
    autoencoder's round trip of the true middle frames (what no latent interpolator can beat).
    Because of that ceiling (about 35 dB) a pixel blend of keyframes one frame apart (about 46 dB)
    cannot be beaten through the decoder, so the error is also measured where the model works:
    ``latent_mse`` of its latents and ``latent_blend_latent_mse`` of the blended keyframe latents,
    both against the encoded true frames.
    Pass 1: keyframes ``frame_skip`` apart, whole-frame targets; pass 2: 1 apart, quarter frames
    (needs Moving Shapes; None otherwise). Sampling: DDIM on ``scheduler``'s config, no thresholding.
    Returns ``{"pass1": {...}, "pass2": {...} | None, ...}``; with ``return_frames`` each pass also
    holds ``frames`` = {"truth", "model", "blend"} (B, C, F, H, W).
    """
    source = f"Moving Shapes {split!r} split" if clips is None else getattr(clips, "split", type(clips).__name__)
    if clips is None:
        from minifusion.data import MovingShapes

        clips = MovingShapes(split=split, num_frames=num_keyframes, size=size, frame_skip=frame_skip, seed=seed,
                             length=num_clips, backgrounds=("black", "light"))
    if interpolate_fn is None:
        sampler = DDIMScheduler.from_config(scheduler.config)
        run = mfi_or_fusionframes(model, frames_per_pair)

        def interpolate_fn(latents, *, frame_skip, generator):
            return run(model, sampler, latents, frame_skip=frame_skip, num_inference_steps=num_inference_steps,
                       guidance_scale=guidance_scale, generator=generator, use_autocast=False,
                       progress_bar_config={"disable": True})

    from minifusion.training.recipes.interpolation import InterpolationClips  # the stage module imports this one

    device = next(autoencoder.parameters()).device
    n, m = frames_per_pair, frames_per_pair + 1
    indices = list(range(min(num_clips, len(clips))))
    results = {"clips": source, "num_clips": len(indices),
               "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale,
               "model": type(model).__name__}
    for k, skip in ((1, float(frame_skip)), (2, float(frame_skip) / m)):
        try:
            windows = InterpolationClips(clips, frame_skip=skip, num_keyframes=num_keyframes, frames_per_pair=n,
                                         seed=seed)
        except ValueError:
            results[f"pass{k}"] = None  # whole-frame data cannot give the quarter frames
            continue
        truth = torch.stack([windows[i]["video"] for i in indices]).to(device)  # (B, C, F, H, W)
        middle = torch.ones(truth.shape[2], dtype=torch.bool)
        middle[::m] = False
        start, cpu_start = time.perf_counter(), time.process_time()
        keyframe_latents = autoencoder.encode(truth[:, :, ::m])  # (B, C, K, h, w)
        latents = interpolate_fn(keyframe_latents, frame_skip=skip,
                                 generator=torch.Generator().manual_seed(seed))  # (B, C, F, h, w)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        frames = autoencoder.decode(latents.to(device)).clamp(-1, 1)
        true_latents = autoencoder.encode(truth[:, :, middle])  # (B, C, F_mid, h, w)
        roundtrip = autoencoder.decode(true_latents)
        blend = linear_blend(truth[:, :, ::m], n)
        # the same blend of the keyframe *latents*, through the same decoder as the model's frames
        blended_latents = linear_blend(keyframe_latents, n)  # (B, C, F, h, w)
        latent_blend = autoencoder.decode(blended_latents).clamp(-1, 1)
        results[f"pass{k}"] = {
            "frame_skip": skip, "psnr_db": psnr(frames[:, :, middle], truth[:, :, middle]),
            "linear_blend_psnr_db": psnr(blend[:, :, middle], truth[:, :, middle]),
            "latent_blend_psnr_db": psnr(latent_blend[:, :, middle], truth[:, :, middle]),
            "autoencoder_psnr_db": psnr(roundtrip, truth[:, :, middle]), "interpolation_seconds": seconds,
            "interpolation_cpu_seconds": cpu_seconds,
            # in latent space, against the encoded true frames: no decoder ceiling
            "latent_mse": _mse(latents.to(device)[:, :, middle], true_latents),
            "latent_blend_latent_mse": _mse(blended_latents[:, :, middle], true_latents)}
        if return_frames:
            results[f"pass{k}"]["frames"] = {"truth": truth.cpu(), "model": frames.cpu(), "blend": blend.cpu()}
    return results


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).pow(2).mean().item()


def mfi_or_fusionframes(model, frames_per_pair: int = 3) -> Callable:
    """The sampling pass of ``model``: ``interpolate_pass`` or the MFI baseline's ``mfi_interpolate_pass``."""
    if isinstance(model, InterpolationUNet):
        return interpolate_pass
    from minifusion.training.recipes.mfi import mfi_interpolate_pass

    return functools.partial(mfi_interpolate_pass, frames_per_pair=frames_per_pair)


def save_interpolation_figure(evaluation: dict, path: Path, frames_per_pair: int = 3) -> Path:
    """Truth / model / linear blend of the first evaluation clip, per pass (keyframes outlined)."""
    from minifusion.viz import show_frames

    rows = {}
    for key in ("pass1", "pass2"):
        res = evaluation.get(key)
        if res and "frames" in res:
            for name, label in (("truth", "truth"), ("model", f"model {res['psnr_db']:.1f} dB"),
                                ("blend", f"linear blend {res['linear_blend_psnr_db']:.1f} dB")):
                rows[f"{key} (skip {res['frame_skip']:g}): {label}"] = res["frames"][name][0]  # (C, F, H, W)
    length = next(iter(rows.values())).shape[1]
    fig = show_frames(rows, highlight=list(range(0, length, frames_per_pair + 1)), frame_size=0.6)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path
