"""How good are the interpolator's frames between keyframes, measured from the pixels, against honest baselines?

FusionFrames (arXiv 2311.13073, section 3.2, Table 2). The true keyframes of held-out Moving Shapes
clips are encoded and interpolated with the pipeline's interpolation U-Net, pass 1 (keyframes 4
source frames apart) and pass 2 (1 apart, quarter frames); every generated frame is compared with
the true frame (``minifusion.eval.interpolation_metrics``):

- PSNR (dB) and SSIM;
- centroid error (pixels of the 64x64 frame; for two-shape clips the centroid of all foreground);
- one object %: frames with as many objects as the truth (a blend ghosts: two half-strength copies);
- hit %: right object count and centroid within 1.5 px;
- latent MSE against the encoded true frames (model and latent blend);

for the model, a pixel blend of the true keyframes, the same blend of the keyframe latents through
the decoder (the baseline a latent interpolator must beat) and the autoencoder's round trip of the
true frames (the ceiling), apart for the outer frames (positions 1 and 3 between two keyframes) and
the middle frame (position 2), for all clips and per kind (``--clips`` single-shape translating
clips spread over slow/normal/fast, ``--two-shape-clips`` two-shape clips).

Bars (pass 1, middle frames and all three positions): model above the latent blend on PSNR and
SSIM, below it on latent MSE, hit rate at least the latent blend's; and |PSNR outer - PSNR middle|
of the model <= 0.5 dB. The exit code is 0 whatever the bars say: this is a measurement.

    python benchmarks/bench_interpolation_quality.py --clips 16 --threads 1     # the shipped checkpoint
    python benchmarks/bench_interpolation_quality.py --sampler ddim --steps 25  # DDIM, no thresholding
    python benchmarks/bench_interpolation_quality.py --pipeline runs/shapes --json results/interpolation.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from minifusion.eval.interpolation_eval import evaluate_interpolation
from minifusion.eval.interpolation_metrics import format_interpolation_report, interpolation_bars
from minifusion.pipeline import FusionFramesPipeline
from minifusion.pipelines import pretrained
from minifusion.pipelines.denoising import check_strength


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be an integer >= 1")
    return n


def _count(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be an integer >= 0")
    return n


def _guidance(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} must be a number >= 0") from None
    if not math.isfinite(s) or s < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a number >= 0")
    return s


def pipeline_sampler(pipe: FusionFramesPipeline):
    """A fresh copy of the interpolation scheduler exactly as the pipeline samples with it (its class,
    with the dynamic thresholding of its settings)."""
    return pipe.interpolation_sampler()


def _strength(value: str) -> float:
    try:
        return check_strength(float(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} must be a number in (0, 1]") from None


def run(pipe: FusionFramesPipeline, *, clips: int, two_shape_clips: int | None, steps: int | None, sampler: str,
        seed: int, guidance: float | None = None, strength: float | None = None) -> dict:
    """``evaluate_interpolation`` of ``pipe``'s interpolator with the ``sampler`` ("pipeline" or "ddim");
    guidance, steps and strength default to the pipeline's settings."""
    steps = steps or pipe.settings.interpolation_num_inference_steps
    start = time.perf_counter()
    results = evaluate_interpolation(
        pipe.interpolation_unet, pipe.interpolation_scheduler, pipe.autoencoder, split="heldout", num_clips=clips,
        num_two_shape_clips=two_shape_clips, seed=seed, num_inference_steps=steps,
        guidance_scale=pipe.settings.interpolation_guidance_scale if guidance is None else guidance,
        sampler=pipeline_sampler(pipe) if sampler == "pipeline" else None,
        strength=pipe.settings.interpolation_strength if strength is None else strength)
    results["seconds"] = time.perf_counter() - start
    results["bars"] = interpolation_bars(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, default=None, metavar="DIR",
                        help="pipeline folder (default: the shipped checkpoint data_samples/checkpoints/moving-shapes-motion)")
    parser.add_argument("--clips", type=_positive, default=16, metavar="N",
                        help="single-shape translating held-out clips, spread over the speeds (default 16)")
    parser.add_argument("--two-shape-clips", type=_count, default=None, metavar="N",
                        help="two-shape held-out clips (default: a quarter of --clips)")
    parser.add_argument("--steps", type=_positive, default=None, metavar="N",
                        help="sampling steps per pass (default: the pipeline's interpolation steps)")
    parser.add_argument("--sampler", choices=("pipeline", "ddim"), default="pipeline",
                        help="pipeline: the pipeline's interpolation scheduler with its thresholding (default); "
                             "ddim: DDIM on the same config, no thresholding (evaluate_interpolation's default)")
    parser.add_argument("--guidance", type=_guidance, default=None, metavar="S",
                        help="context guidance scale s over the keyframes (default: the pipeline's, 1.25; 1 = none)")
    parser.add_argument("--strength", type=_strength, default=None, metavar="X",
                        help="in (0, 1]: 1 samples from pure noise, below 1 from the keyframes' latent blend noised "
                             "part-way (default: the pipeline's interpolation_strength)")
    parser.add_argument("--seed", type=int, default=0, help="clip windows and sampling noise seed (default 0)")
    parser.add_argument("--threads", type=_positive, default=None, metavar="N",
                        help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = args.pipeline or pretrained()
    pipe = FusionFramesPipeline.from_pretrained(folder)
    if pipe.interpolation_unet is None:
        print(f"{folder} has no interpolation U-Net; nothing to measure", file=sys.stderr)
        return 0
    results = run(pipe, clips=args.clips, two_shape_clips=args.two_shape_clips, steps=args.steps,
                  sampler=args.sampler, seed=args.seed, guidance=args.guidance, strength=args.strength)
    results.update(checkpoint=str(folder), seed=args.seed, torch_threads=torch.get_num_threads())
    print(format_interpolation_report(results))
    passed = sum(b["passed"] for b in results["bars"])
    print(f"{passed}/{len(results['bars'])} bars passed ({results['seconds']:.0f} s, "
          f"{torch.get_num_threads()} thread(s))")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
