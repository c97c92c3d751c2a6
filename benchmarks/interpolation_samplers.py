"""Which sampler makes the interpolator's frames best? A grid of samplers on one checkpoint, pass 1.

FusionFrames (arXiv 2311.13073, section 3.2) samples its interpolation U-Net like the keyframes; at
this project's 5 steps per pass *where* the steps sit matters. Each variant interpolates the true
keyframes of the same held-out clips as ``bench_interpolation_quality.py`` (pass 1 only: keyframes 4
source frames apart) and prints, over all frames between keyframes, PSNR, SSIM and latent MSE, the
middle-frame PSNR, the outer - middle gap and how many of its 9 bars pass (``interpolation_bars``);
the latent blend and the autoencoder round trip close the table.

A variant is ``SCHEDULER-SPACING-STEPS-S``:

- SCHEDULER: ``dpm-sde`` (SDE-DPM-Solver++ 2M, the pipeline's), ``dpm`` (DPM-Solver++ 2M, the ODE) or
  ``ddim``, each with the pipeline's dynamic thresholding; SPACING: ``leading``, ``trailing`` or
  ``linspace`` (``leading`` starts 5 steps at t = 800, where sqrt(alpha_bar) = 0.31 of the signal
  is assumed present in what is pure noise; ``trailing`` at t = 999; Lin et al. 2024);
- or ``blend`` with SPACING a start step T: the keyframe latents' linear blend noised to t = T, then
  STEPS deterministic DDIM steps from T to 0 (an SDEdit start: the blend's layout, the network's
  detail); S is the context guidance scale.

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
from einops import rearrange

from minifusion.diffusion import DDIMScheduler
from minifusion.diffusion.guidance import classifier_free_guidance
from minifusion.eval.interpolation_metrics import interpolation_bars
from minifusion.pipeline import FusionFramesPipeline
from minifusion.pipelines import pretrained
from minifusion.pipelines.interpolation import interleave, interpolate_pass, pair_conditioning
from minifusion.training.recipes.interpolation_eval import evaluate_interpolation, linear_blend

SCHEDULERS = ("dpm-sde", "dpm", "ddim")
SPACINGS = ("leading", "trailing", "linspace")
DEFAULT_VARIANTS = ("dpm-sde-leading-5-1.5", "dpm-sde-trailing-5-1.5", "dpm-trailing-5-1.5", "ddim-trailing-5-1.5",
                    "ddim-trailing-10-1.5", "blend-600-3-1.5")


def parse_variant(name: str) -> dict:
    """``"dpm-sde-trailing-5-1.5"`` -> {"scheduler", "spacing", "steps", "guidance"}; ``"blend-600-3-1.5"``
    -> {"scheduler": "blend", "start": 600, ...}. ValueError names what is allowed."""
    allowed = (f"SCHEDULER-SPACING-STEPS-S with SCHEDULER in {SCHEDULERS} and SPACING in {SPACINGS}, or "
               "blend-T-STEPS-S with 1 <= T <= 999")
    scheduler = next((s for s in ("dpm-sde", "dpm", "ddim", "blend") if name.startswith(s + "-")), None)
    parts = name[len(scheduler) + 1:].split("-") if scheduler else []
    if len(parts) != 3:
        raise ValueError(f"variant {name!r} is not {allowed}")
    try:
        steps, guidance = int(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"variant {name!r}: steps and S must be numbers ({allowed})") from None
    if steps < 1 or guidance < 0:
        raise ValueError(f"variant {name!r}: steps must be >= 1 and S >= 0")
    if scheduler == "blend":
        if not parts[0].isdigit() or not 1 <= int(parts[0]) <= 999:
            raise ValueError(f"variant {name!r}: the start step T must be an integer in 1..999")
        return {"scheduler": "blend", "start": int(parts[0]), "steps": steps, "guidance": guidance}
    if parts[0] not in SPACINGS:
        raise ValueError(f"variant {name!r}: spacing {parts[0]!r} is not one of {SPACINGS}")
    return {"scheduler": scheduler, "spacing": parts[0], "steps": steps, "guidance": guidance}


def blend_start_pass(unet, alphas_cumprod: torch.Tensor, latents: torch.Tensor, *, frame_skip: float, start: int,
                     steps: int, guidance_scale: float, generator: torch.Generator | None) -> torch.Tensor:
    """One pass from the keyframe latents' blend noised to ``start``: (B, C, K, h, w) -> (B, C, 4K - 3, h, w).

    x_T = sqrt(ab_T) blend + sqrt(1 - ab_T) noise, then DDIM (eta 0) on ``steps`` evenly spaced
    timesteps T -> 0 with context guidance, the last step returning the x0 prediction (v model)."""
    n = unet.config.frames_per_pair
    b = latents.shape[0]
    left, right = pair_conditioning(latents)  # (B, C, P, h, w) each
    blend = linear_blend(latents, n)  # (B, C, F, h, w)
    mids = torch.stack([blend[:, :, (n + 1) * p + 1:(n + 1) * (p + 1)] for p in range(latents.shape[2] - 1)], 2)
    x0 = rearrange(mids, "b c p n h w -> b (n c) p h w")  # the interpolator's (B, 12, P, h, w) layout
    noise = torch.randn(x0.shape, generator=generator)
    ab = alphas_cumprod.double()
    x = (ab[start].sqrt() * x0 + (1 - ab[start]).sqrt() * noise).float()
    cond_left, cond_right = torch.cat([left, torch.zeros_like(left)]), torch.cat([right, torch.zeros_like(right)])
    timesteps = torch.linspace(start, 0, steps + 1).round().long().tolist()
    for t, t_next in zip(timesteps[:-1], timesteps[1:]):
        out = unet(torch.cat([cond_left, torch.cat([x, x]), cond_right], dim=1), t, frame_skip=frame_skip,
                   perturbation_level=0).float()
        cond, uncond = out[:b], out[b:]
        v = classifier_free_guidance(uncond, cond, guidance_scale)
        a = ab[t].float()
        x0_hat, eps_hat = a.sqrt() * x - (1 - a).sqrt() * v, (1 - a).sqrt() * x + a.sqrt() * v
        a_next = ab[t_next].float()
        x = x0_hat if t_next == 0 else a_next.sqrt() * x0_hat + (1 - a_next).sqrt() * eps_hat
    return interleave(latents, x, n)


def interpolate_fn(pipe: FusionFramesPipeline, variant: dict):
    """``evaluate_interpolation``'s ``interpolate_fn`` for one variant (pass 2 answered by the latent blend)."""
    unet, n = pipe.interpolation_unet, pipe.interpolation_unet.config.frames_per_pair
    if variant["scheduler"] == "blend":
        alphas_cumprod = DDIMScheduler.from_config(pipe.interpolation_scheduler.config).alphas_cumprod
    else:
        base = pipe._schedulers(variant["scheduler"], pipe.settings.dynamic_thresholding)[1]
        sampler = type(base).from_config(base.config, timestep_spacing=variant["spacing"])

    def fn(latents, *, frame_skip, generator):
        if frame_skip < pipe.settings.keyframe_frame_skip:  # pass 2: not measured here
            return linear_blend(latents, n)
        if variant["scheduler"] == "blend":
            return blend_start_pass(unet, alphas_cumprod, latents, frame_skip=frame_skip, start=variant["start"],
                                    steps=variant["steps"], guidance_scale=variant["guidance"], generator=generator)
        return interpolate_pass(unet, sampler, latents, frame_skip=frame_skip, num_inference_steps=variant["steps"],
                                guidance_scale=variant["guidance"], generator=generator, use_autocast=False,
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
