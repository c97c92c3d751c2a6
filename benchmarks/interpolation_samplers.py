"""Which sampler makes the interpolator's frames best? A grid of samplers on one checkpoint, pass 1.

FusionFrames (arXiv 2311.13073, section 3.2) samples its interpolation U-Net like the keyframes; at
this project's 5 steps per pass *where* the steps sit matters. Each variant interpolates the true
keyframes of the same held-out clips as ``bench_interpolation_quality.py`` (pass 1 only: keyframes 4
source frames apart) and prints, over all frames between keyframes, PSNR, SSIM and latent MSE, the
middle-frame PSNR, the outer - middle gap and how many of its 9 bars pass (``interpolation_bars``);
the latent blend and the autoencoder round trip close the table.

A variant is ``SCHEDULER-SPACING-STEPS-S`` or ``SCHEDULER-SPACING-STEPS-S@STRENGTH``:

- SCHEDULER: ``dpm-sde`` (SDE-DPM-Solver++ 2M, the pipeline's), ``dpm`` (DPM-Solver++ 2M, the ODE) or
  ``ddim``, each with the pipeline's dynamic thresholding; SPACING: ``leading``, ``trailing`` or
  ``linspace`` (``leading`` starts 5 steps at t = 800, where sqrt(alpha_bar) = 0.31 of the signal
  is assumed present in what is pure noise; ``trailing`` at t = 999; Lin et al. 2024); S is the
  context guidance scale;
- STRENGTH (default 1, pure noise): below 1, an SDEdit start from the keyframe latents' blend noised
  to the first of the last round(STRENGTH * STEPS) timesteps (``interpolate_pass(strength=...)``):
  ``ddim-trailing-5-1.5@0.8`` runs t = 799, 599, 399, 199.

    python benchmarks/interpolation_samplers.py --pipeline DIR --threads 1
    python benchmarks/interpolation_samplers.py --variants dpm-sde-leading-5-1.5,dpm-sde-trailing-5-1.5

Pass 2 is skipped (each variant returns the latent blend there), so a variant costs one pass-1
evaluation: about 4 minutes on one thread for 16 + 4 clips.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from minifusion.eval.interpolation_eval import evaluate_interpolation, linear_blend
from minifusion.eval.interpolation_metrics import interpolation_bars
from minifusion.pipeline import FusionFramesPipeline
from minifusion.pipelines import pretrained
from minifusion.pipelines.denoising import check_strength, kept_steps
from minifusion.pipelines.interpolation import interpolate_pass

SCHEDULERS = ("dpm-sde", "dpm", "ddim")
SPACINGS = ("leading", "trailing", "linspace")
DEFAULT_VARIANTS = ("dpm-sde-leading-5-1.5", "dpm-sde-trailing-5-1.5", "dpm-trailing-5-1.5", "ddim-trailing-5-1.5",
                    "ddim-trailing-10-1.5", "ddim-trailing-5-1.5@0.8", "dpm-sde-trailing-5-1.5@0.8")


def parse_variant(name: str) -> dict:
    """``"dpm-sde-trailing-5-1.5@0.8"`` -> {"scheduler", "spacing", "steps", "guidance", "strength"} (strength 1.0
    without ``@``). ValueError names what is allowed."""
    allowed = (f"SCHEDULER-SPACING-STEPS-S[@STRENGTH] with SCHEDULER in {SCHEDULERS}, SPACING in {SPACINGS} and "
               "0 < STRENGTH <= 1")
    base, _, strength_text = name.partition("@")
    scheduler = next((s for s in SCHEDULERS if base.startswith(s + "-")), None)
    parts = base[len(scheduler) + 1:].split("-") if scheduler else []
    if len(parts) != 3:
        raise ValueError(f"variant {name!r} is not {allowed}")
    try:
        steps, guidance = int(parts[1]), float(parts[2])
        strength = float(strength_text) if strength_text else 1.0
    except ValueError:
        raise ValueError(f"variant {name!r}: steps, S and STRENGTH must be numbers ({allowed})") from None
    if steps < 1 or guidance < 0:
        raise ValueError(f"variant {name!r}: steps must be >= 1 and S >= 0")
    try:
        kept_steps(check_strength(strength), steps)
    except ValueError as e:
        raise ValueError(f"variant {name!r}: STRENGTH must be in (0, 1] and keep a step: {e}") from None
    if parts[0] not in SPACINGS:
        raise ValueError(f"variant {name!r}: spacing {parts[0]!r} is not one of {SPACINGS}")
    return {"scheduler": scheduler, "spacing": parts[0], "steps": steps, "guidance": guidance, "strength": strength}


def interpolate_fn(pipe: FusionFramesPipeline, variant: dict):
    """``evaluate_interpolation``'s ``interpolate_fn`` for one variant (pass 2 answered by the latent blend)."""
    n = pipe.interpolation_unet.config.frames_per_pair
    base = pipe.interpolation_sampler(variant["scheduler"])
    sampler = type(base).from_config(base.config, timestep_spacing=variant["spacing"])

    def fn(latents, *, frame_skip, generator):
        if frame_skip < pipe.settings.keyframe_frame_skip:  # pass 2: not measured here
            return linear_blend(latents, n)
        return interpolate_pass(pipe.interpolation_unet, sampler, latents, frame_skip=frame_skip,
                                num_inference_steps=variant["steps"], guidance_scale=variant["guidance"],
                                generator=generator, use_autocast=False, strength=variant["strength"],
                                progress_bar_config={"disable": True})
    return fn


def _row(name: str, m: dict, bars: str) -> str:
    gap = "" if m["outer"] is None else f"{m['outer']['psnr_db'] - m['middle']['psnr_db']:+.2f}"
    mse = "-" if m["all"]["latent_mse"] is None else f"{m['all']['latent_mse']:.4f}"
    return (f"{name:26s} {m['all']['psnr_db']:8.2f} {m['all']['ssim']:7.4f} {mse:>10s} "
            f"{m['middle']['psnr_db']:10.2f} {gap:>8s} {bars:>5s}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, default=None, metavar="DIR",
                        help="pipeline folder (default: the shipped checkpoint)")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), metavar="LIST",
                        help=f"comma-separated variants (default: {','.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--clips", type=int, default=16, metavar="N",
                        help="single-shape held-out clips (plus a quarter as many two-shape clips; default 16)")
    parser.add_argument("--seed", type=int, default=0, help="clip windows and sampling noise seed (default 0)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        variants = {name: parse_variant(name) for name in args.variants.split(",")}
    except ValueError as e:
        parser.error(str(e))
    if args.clips < 1:
        parser.error(f"--clips must be >= 1, got {args.clips}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = FusionFramesPipeline.from_pretrained(args.pipeline or pretrained())
    if pipe.interpolation_unet is None:
        parser.error(f"{args.pipeline} has no interpolation U-Net")
    print(f"{'pass 1, all frames':26s} {'PSNR dB':>8s} {'SSIM':>7s} {'latent MSE':>10s} {'middle dB':>10s} "
          f"{'out-mid':>8s} {'bars':>5s}")
    report, result = {}, None
    for name, variant in variants.items():
        start = time.perf_counter()
        result = evaluate_interpolation(pipe.interpolation_unet, pipe.interpolation_scheduler, pipe.autoencoder,
                                        split="heldout", num_clips=args.clips, seed=args.seed,
                                        interpolate_fn=interpolate_fn(pipe, variant))
        bars = interpolation_bars(result)
        passed = f"{sum(b['passed'] for b in bars)}/{len(bars)}"
        by_position = result["pass1"]["by_position"]
        print(_row(name, by_position["model"], passed) + f"   ({time.perf_counter() - start:.0f} s)", flush=True)
        report[name] = {"variant": variant, "by_position": by_position["model"], "bars": bars}
    for method, label in (("latent_blend", "latent blend"), ("autoencoder", "autoencoder (ceiling)")):
        print(_row(label, result["pass1"]["by_position"][method], ""))
        report[method] = {"by_position": result["pass1"]["by_position"][method]}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seed": args.seed, "clips": args.clips, "variants": report}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
