"""Interpolation speed: FusionFrames' pair-wise interpolator against masked frame interpolation (MFI).

    .venv/bin/python benchmarks/bench_interpolation.py [--steps 25] [--keyframes 8]

FusionFrames (arXiv 2311.13073, section 3.2, Table 2) predicts the three frames between two
keyframes in one U-Net call per *pair*, so one pass over K keyframes runs the U-Net on K - 1
pair latents per step; MFI (Video LDM style, ``MaskedInterpolationUNet``) runs a video U-Net on
*every* frame of the 4K - 3 frame result. The paper reports FusionFrames more than 3x faster.

Both at their default widths, with random weights (time does not depend on the weights), the same
8 keyframe latents (1, 4, 8, 16, 16) -> 29 frames, the same DDIM steps and context guidance
(s = 1.25, so both run the U-Net on the guided and the unguided batch). Reported per video:
wall time of the pass, the time spent inside the U-Net (``ModuleTimer``: "U-Net work only",
without scheduler and guidance arithmetic), U-Net FLOPs, and the frames each U-Net call sees.
The ratios MFI / FusionFrames are the speed-up; the frame ratio (4K - 3) / (K - 1) = 29 / 7 is
what the U-Net work would be in proportion to if a pair latent cost what a frame does.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_measure import ModuleTimer, count_flops, synchronize

from minifusion.diffusion import DDIMScheduler
from minifusion.models import InterpolationUNet, MaskedInterpolationUNet
from minifusion.pipelines.interpolation import interpolate_pass
from minifusion.pipelines.mfi import mfi_interpolate_pass

FUSIONFRAMES, MFI = "FusionFrames InterpolationUNet", "MFI MaskedInterpolationUNet"


def _scheduler() -> DDIMScheduler:
    return DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")


def bench_interpolation(
    *,
    num_keyframes: int = 8,
    size: int = 16,
    steps: int = 25,
    guidance_scale: float = 1.25,
    frame_skip: float = 4.0,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict:
    """One pass K -> 4K - 3 frames with each interpolator; times, U-Net times, FLOPs and their ratios."""
    if num_keyframes < 2 or steps < 1:
        raise ValueError(f"num_keyframes must be >= 2 and steps >= 1, got {num_keyframes!r}, {steps!r}")
    torch.manual_seed(seed)
    models = {FUSIONFRAMES: InterpolationUNet(), MFI: MaskedInterpolationUNet()}
    keyframes = torch.randn(1, 4, num_keyframes, size, size, generator=torch.Generator().manual_seed(seed)).to(device)
    passes = {FUSIONFRAMES: interpolate_pass, MFI: mfi_interpolate_pass}
    guided = 2 if guidance_scale != 1.0 else 1
    results = {}
    for name, model in models.items():
        model.to(device).eval()

        def run(n_steps: int, model=model, name=name) -> torch.Tensor:
            return passes[name](model, _scheduler(), keyframes, frame_skip=frame_skip, num_inference_steps=n_steps,
                                guidance_scale=guidance_scale, generator=torch.Generator().manual_seed(seed),
                                progress_bar_config={"disable": True})

        with torch.inference_mode():
            flops_per_step = count_flops(lambda: run(1))  # also the warm-up
            timer = ModuleTimer(model, device)
            synchronize(device)
            start = time.perf_counter()
            video = run(steps)
            synchronize(device)
            seconds = time.perf_counter() - start
            timer.close()
        per_call = num_keyframes - 1 if name == FUSIONFRAMES else video.shape[2]
        results[name] = {
            "params": model.num_parameters(),
            "seconds": seconds,
            "unet_seconds": timer.seconds,
            "unet_calls": timer.calls,
            "flops": flops_per_step * steps,
            "unet_items_per_call": per_call * guided,  # pair latents or frames, guided + unguided
            "frames_out": video.shape[2],
        }
        model.cpu()
    ff, mfi = results[FUSIONFRAMES], results[MFI]
    return {
        "keyframes": [1, 4, num_keyframes, size, size],
        "frames_out": ff["frames_out"],
        "steps": steps,
        "guidance_scale": guidance_scale,
        "models": results,
        "speedup_wall": mfi["seconds"] / ff["seconds"],
        "speedup_unet": mfi["unet_seconds"] / ff["unet_seconds"],
        "flop_ratio": mfi["flops"] / ff["flops"],
        "unet_frame_ratio": mfi["unet_items_per_call"] / ff["unet_items_per_call"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--keyframes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import bench_report as report

    result = bench_interpolation(steps=args.steps, num_keyframes=args.keyframes)
    print(report.interpolation_table(result))
    print(json.dumps({k: v for k, v in result.items() if k != "models"}))


if __name__ == "__main__":
    main()
