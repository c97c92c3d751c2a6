"""Evaluation of an interpolation model: its generated frames against the true frames.

FusionFrames (arXiv 2311.13073, section 3.2, Table 2) compares interpolators on how close their
frames come to the real ones. Here: ``evaluate_interpolation`` interpolates the encoded keyframes of
held-out Moving Shapes clips (``evaluation_clips``: single-shape translating clips at every speed and
two-shape clips; pass 1 and pass 2) and reports the model next to a pixel blend (``linear_blend``),
the same blend of the keyframe latents through the decoder, and the autoencoder's round trip (the
ceiling): PSNR, SSIM, centroid error, object count and hit rate per position between keyframes and
per clip kind (``minifusion.eval.interpolation_metrics``), and the latent MSE.
``save_interpolation_figure`` draws it. Used by the ``interpolation`` and ``mfi`` stages and by
``benchmarks/bench_quality.py`` and ``benchmarks/bench_interpolation_quality.py``.

Taught in notebook 09 (notebooks/09_interpolation.ipynb).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from minifusion.checks import check_int
from minifusion.data.interpolation_windows import InterpolationClips
from minifusion.diffusion import DDIMScheduler
from minifusion.eval.pixel_metrics import psnr
from minifusion.models.interpolation_unet import InterpolationUNet
from minifusion.pipelines.interpolation import interleave, interpolate_pass, pair_blend
from minifusion.pipelines.mfi import mfi_interpolate_pass


def linear_blend(keyframes: torch.Tensor, frames_per_pair: int) -> torch.Tensor:
    """Pixel-space blend (1 - a) left + a right, a = j / (n + 1): (B, C, K, H, W) -> (B, C, (n + 1)(K - 1) + 1, H, W)."""
    return interleave(keyframes, pair_blend(keyframes, frames_per_pair), frames_per_pair)


SPEEDS = ("normal", "slow", "fast")  # the order single-shape clips are shared out over the speeds


class ClipSelection(Dataset):
    """Items ``indices`` of a Moving Shapes split, as a dataset of their own (``clip_params`` and ``render`` too)."""

    def __init__(self, clips, indices: list[int]) -> None:
        self.clips, self.indices = clips, [int(i) for i in indices]
        for name in ("split", "num_frames", "frame_skip", "size", "seed"):
            if hasattr(clips, name):
                setattr(self, name, getattr(clips, name))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self.clips[self.indices[index]]

    def clip_params(self, index: int):
        return self.clips.clip_params(self.indices[index])

    def render(self, index: int, times) -> torch.Tensor:
        return self.clips.render(self.indices[index], times)

    def __repr__(self) -> str:
        return f"ClipSelection({self.clips!r}, indices={self.indices})"


def evaluation_clips(*, split: str = "heldout", num_clips: int = 8, num_two_shape_clips: int | None = None,
                     num_keyframes: int = 8, frame_skip: int = 4, size: int = 64, seed: int = 0) -> ClipSelection:
    """The evaluation set: ``num_clips`` single-shape translating clips and ``num_two_shape_clips`` two-shape ones.

    From Moving Shapes ``split`` (black and light backgrounds), in index order: the first
    single-shape "moves" clips, shared out over the speeds (normal, slow, fast, normal, ...; a
    speed that runs out is filled with the next clips of any speed), and the first two-shape clips
    (default ``num_clips // 4``). Items keep their split order. Raises ValueError if the split
    holds too few.
    """
    from minifusion.data import MovingShapes

    check_int("num_clips", num_clips, minimum=0)
    if num_two_shape_clips is not None:
        check_int("num_two_shape_clips", num_two_shape_clips, minimum=0, note="or None (num_clips // 4)")
    num_two = num_clips // 4 if num_two_shape_clips is None else num_two_shape_clips
    if num_clips + num_two == 0:
        raise ValueError("num_clips and num_two_shape_clips are both 0; the evaluation needs at least one clip")
    clips = MovingShapes(split=split, num_frames=num_keyframes, size=size, frame_skip=frame_skip, seed=seed,
                         backgrounds=("black", "light"))
    quota = {s: num_clips // len(SPEEDS) + (i < num_clips % len(SPEEDS)) for i, s in enumerate(SPEEDS)}
    single, spare, two = [], [], []
    for i in range(len(clips)):
        if len(single) == num_clips and len(two) == num_two:
            break
        a = clips.clip_params(i).attributes
        if a["motion"] != "moves":
            continue
        if a["num_objects"] == 2:
            if len(two) < num_two:
                two.append(i)
        elif quota.get(a["speed"], 0) > 0:
            quota[a["speed"]] -= 1
            single.append(i)
        else:
            spare.append(i)
    single += spare[:num_clips - len(single)]
    if len(single) < num_clips or len(two) < num_two:
        raise ValueError(f"the {len(clips)} clips of the {split!r} split hold {len(single)} single-shape translating "
                         f"and {len(two)} two-shape clips; asked for num_clips {num_clips} and num_two_shape_clips "
                         f"{num_two}")
    return ClipSelection(clips, sorted(single + two))


def _clip_kind(clips, index: int) -> tuple[str | None, str | None]:
    """("single_shape" | "two_shapes" | None, speed | None) of a clip with Moving Shapes ``clip_params``."""
    if not hasattr(clips, "clip_params"):
        return None, None
    a = clips.clip_params(index).attributes
    kind = {1: "single_shape", 2: "two_shapes"}.get(a.get("num_objects"))
    return kind, a.get("speed")


@torch.no_grad()
def evaluate_interpolation(model, scheduler, autoencoder, *, clips: Dataset | None = None, split: str = "heldout",
                           num_clips: int = 8, num_two_shape_clips: int | None = None, num_keyframes: int = 8,
                           frame_skip: int = 4, frames_per_pair: int = 3, size: int = 64,
                           num_inference_steps: int = 25, guidance_scale: float = 1.25, seed: int = 0,
                           sampler=None, interpolate_fn: Callable | None = None, strength: float = 1.0,
                           return_frames: bool = False) -> dict:
    """Interpolated frames against the true frames, for pass 1 and pass 2 (FusionFrames section 3.2, Table 2).

    Clips: with ``clips`` None, ``evaluation_clips``: ``num_clips`` single-shape translating clips
    of Moving Shapes ``split`` spread over the speeds and ``num_two_shape_clips`` two-shape clips
    (default ``num_clips // 4``); a user's ``clips`` Dataset: its first ``num_clips`` items.
    Keyframes are encoded, interpolated (``interpolate_pass`` for an ``InterpolationUNet``,
    ``mfi_interpolate_pass`` for the MFI baseline, or ``interpolate_fn(latents, frame_skip=,
    generator=)``), decoded and compared with the truth on the generated frames only. Methods:
    ``model``; ``pixel_blend`` (``linear_blend`` of the true keyframes); ``latent_blend`` (the same
    blend of the keyframe latents, through the decoder); ``autoencoder`` (round trip of the true
    frames: the ceiling no latent interpolator can beat, about 35 dB, so a pixel blend of keyframes
    one frame apart (about 46 dB) cannot be beaten through the decoder; hence also the latent MSE).
    Pass 1: keyframes ``frame_skip`` apart, whole-frame targets; pass 2: 1 apart, quarter frames
    (needs Moving Shapes; None otherwise). Sampling: ``sampler`` None = DDIM on ``scheduler``'s config,
    no thresholding; else the scheduler instance ``sampler`` as is (e.g. ``pipe.interpolation_scheduler``);
    ``strength`` < 1 starts each pass from the noised latent blend (``interpolate_pass``; FusionFrames only).

    Returns ``{"clips", "num_clips" (all clips), "clip_kinds": {"single_shape": {speed: n},
    "two_shapes": n, "unknown": n}, "sampler", "num_inference_steps", "guidance_scale", "model",
    "pass1": {...}, "pass2": {...} | None}``. Each pass::

        frame_skip, interpolation_seconds, interpolation_cpu_seconds,
        psnr_db, linear_blend_psnr_db, latent_blend_psnr_db, autoencoder_psnr_db  # all generated frames
        latent_mse, latent_blend_latent_mse        # against the encoded true frames
        by_position[method][position]              # method: model | pixel_blend | latent_blend | autoencoder
        by_kind["single_shape" | "two_shapes"] = {"num_clips", "by_position": ...} or None

    with position ``outer`` (1 and 3 of each triple), ``middle`` (2) or ``all``, each
    ``{"psnr_db", "ssim", "centroid_error_px", "one_object_rate", "hit_rate", "latent_mse" (model
    and latent_blend; else None), "num_frames"}`` (``minifusion.eval.interpolation_metrics``).
    With ``return_frames`` each pass also holds ``frames`` = {"truth", "model", "blend", "latent_blend"}
    (B, C, F, H, W).
    """
    from minifusion.eval.interpolation_metrics import (
        frame_scores,
        latent_frame_mse,
        object_features,
        summarize_interpolation,
    )

    if sampler is not None and interpolate_fn is not None:
        raise ValueError("pass sampler or interpolate_fn, not both: interpolate_fn samples on its own")
    if clips is None:
        clips = evaluation_clips(split=split, num_clips=num_clips, num_two_shape_clips=num_two_shape_clips,
                                 num_keyframes=num_keyframes, frame_skip=frame_skip, size=size, seed=seed)
        source = f"Moving Shapes {split!r} split"
        indices = list(range(len(clips)))
    else:
        source = getattr(clips, "split", type(clips).__name__)
        indices = list(range(min(num_clips, len(clips))))
    sampler_name = "custom interpolate_fn"
    if strength != 1.0 and (interpolate_fn is not None or not isinstance(model, InterpolationUNet)):
        raise ValueError(f"strength {strength!r} applies to an InterpolationUNet sampled here; got "
                         f"{'an interpolate_fn' if interpolate_fn is not None else type(model).__name__}")
    if interpolate_fn is None:
        sampler = DDIMScheduler.from_config(scheduler.config) if sampler is None else sampler
        sampler_name = _sampler_name(sampler) + (f", from the blend at strength {strength}" if strength != 1.0 else "")
        run = mfi_or_fusionframes(model, frames_per_pair)
        options = {"strength": strength} if strength != 1.0 else {}

        def interpolate_fn(latents, *, frame_skip, generator):
            return run(model, sampler, latents, frame_skip=frame_skip, num_inference_steps=num_inference_steps,
                       guidance_scale=guidance_scale, generator=generator, use_autocast=False,
                       progress_bar_config={"disable": True}, **options)

    kinds, speeds = zip(*(_clip_kind(clips, i) for i in indices)) if indices else ((), ())
    clip_kinds = {"single_shape": {}, "two_shapes": kinds.count("two_shapes"), "unknown": kinds.count(None)}
    for kind, speed in zip(kinds, speeds):
        if kind == "single_shape":
            clip_kinds["single_shape"][speed] = clip_kinds["single_shape"].get(speed, 0) + 1
    device = next(autoencoder.parameters()).device
    n, m = frames_per_pair, frames_per_pair + 1
    results = {"clips": source, "num_clips": len(indices), "clip_kinds": clip_kinds, "sampler": sampler_name,
               "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale, "strength": strength,
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
        latents = latents.to(device)
        frames = autoencoder.decode(latents).clamp(-1, 1)
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
            "latent_mse": _mse(latents[:, :, middle], true_latents),
            "latent_blend_latent_mse": _mse(blended_latents[:, :, middle], true_latents)}
        # per frame, from the pixels: the round trip's windows keep the true keyframes (never scored)
        ceiling = truth.clone()
        ceiling[:, :, middle] = roundtrip.clamp(-1, 1)
        truth_features = object_features(truth.cpu())
        scores = {name: frame_scores(video.cpu(), truth.cpu(), truth_features=truth_features)
                  for name, video in (("model", frames), ("pixel_blend", blend), ("latent_blend", latent_blend),
                                      ("autoencoder", ceiling))}
        latent_errors = {}
        for name, lat in (("model", latents), ("latent_blend", blended_latents)):
            per_frame = torch.full(truth.shape[:1] + truth.shape[2:3], math.nan, dtype=torch.float64)  # (B, F)
            per_frame[:, middle] = latent_frame_mse(lat[:, :, middle], true_latents)
            latent_errors[name] = per_frame
        results[f"pass{k}"].update(summarize_interpolation(scores, frames_per_pair=n, kinds=kinds,
                                                           latent_mse=latent_errors))
        if return_frames:
            results[f"pass{k}"]["frames"] = {"truth": truth.cpu(), "model": frames.cpu(), "blend": blend.cpu(),
                                             "latent_blend": latent_blend.cpu()}
    return results


def _sampler_name(sampler) -> str:
    """``DPMSolverMultistepScheduler (sde-dpmsolver++, trailing spacing, thresholding)``-like description of a
    scheduler instance."""
    config = dict(getattr(sampler, "config", None) or {})
    details = [str(config["algorithm_type"])] if "algorithm_type" in config else []
    if "timestep_spacing" in config:
        details.append(f"{config['timestep_spacing']} spacing")
    if config.get("thresholding"):
        details.append("thresholding")
    return type(sampler).__name__ + (f" ({', '.join(details)})" if details else "")


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).pow(2).mean().item()


def mfi_or_fusionframes(model, frames_per_pair: int = 3) -> Callable:
    """The sampling pass of ``model``: ``interpolate_pass`` or the MFI baseline's ``mfi_interpolate_pass``."""
    if isinstance(model, InterpolationUNet):
        return interpolate_pass

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
