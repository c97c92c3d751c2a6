"""Does the pipeline draw what it is asked, moving the prompted way, steadily? And does interpolation beat a blend?

Measured from the pixels of generated videos (``minifusion.eval.motion_benchmark``) and, for the
shape, the shipped attribute classifier:

1. 29-frame videos (keyframes + one interpolation pass) of ``a {color} {shape} moves {direction}``
   over every (colour, shape) pair and the 8 directions (``--videos N``, default 112: a balanced
   prefix of the 224 prompts, every pair on 2 axis and 2 diagonal directions): colour, shape, direction on the 4 axis directions and on the 4 diagonals
   apart (balanced, so a constant drift scores at most 25% and random directions 12.5%), steady
   motion (exactly one object in every frame, no jump larger than the motion explains, no step
   back against the net direction, moving), and the share with colour, direction and steadiness
   all right; seen and held-out (colour, shape) pairs apart;
2. interpolation of ground-truth keyframes of held-out clips (FusionFrames, section 3.2): PSNR, SSIM,
   centroid error, object count and hit rate of the generated frames against the true frames (outer
   and middle positions, single- and two-shape clips), next to a pixel blend and a latent blend of
   the two keyframes and the autoencoder's round trip, for the first pass (keyframes 4 frames apart)
   and the second (1 apart, quarter frames); the same report as ``bench_interpolation_quality.py``, with the pipeline's sampler and settings;
3. the same checks as 1 on 113-frame videos (two passes; ``--long-videos N``, default 16: each
   direction twice).

Bars (the motion targets, docs/motion.md): colour and shape >= 90%, direction >= 80% on the axis directions and
>= 50% on the diagonals, steady >= 70% at 29 frames and >= 60% at 113 frames.

    python benchmarks/bench_quality.py                       # the shipped checkpoint
    python benchmarks/bench_quality.py --checkpoint runs/shapes --json results/quality.json
    python benchmarks/bench_quality.py --videos 16 --long-videos 8 --interpolation-clips 0   # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from minifusion.eval.attribute_classifier import AttributeClassifier
from minifusion.eval.interpolation_eval import evaluate_interpolation
from minifusion.eval.interpolation_metrics import format_interpolation_report, interpolation_bars
from minifusion.eval.motion_benchmark import MAX_PROMPTS, format_summary, motion_prompts, score_videos, summarise
from minifusion.eval.toy_metrics import EVAL_WEIGHTS_DIR
from minifusion.pipeline import SCHEDULERS, FusionFramesPipeline
from minifusion.pipelines import pretrained


def generate(pipe: FusionFramesPipeline, prompts: list[str], *, passes: int, seed: int, batch_size: int,
             steps: int | None, guidance: float | None, progress: bool, scheduler: str | None = None,
             interpolation_steps: int | None = None) -> torch.Tensor:
    """(N, 3, F, H, W) videos in [0, 1]; batch b uses the generator seeded with seed + b."""
    videos = []
    for b, start in enumerate(range(0, len(prompts), batch_size)):
        out = pipe(prompts[start:start + batch_size], interpolation_passes=passes, num_inference_steps=steps,
                   interpolation_num_inference_steps=interpolation_steps, scheduler=scheduler,
                   guidance_scale=guidance, output_type="pt", progress=progress,
                   generator=torch.Generator().manual_seed(seed + b))
        videos.append(out.frames.cpu())
        if progress:
            print(f"  {min(start + batch_size, len(prompts))}/{len(prompts)} videos", file=sys.stderr, flush=True)
    return torch.cat(videos)


def motion_section(pipe, classifier, num_videos: int, *, passes: int, seed: int, args, progress: bool) -> dict:
    """Generate ``num_videos`` balanced prompts with ``passes`` interpolation passes and score them."""
    prompts = motion_prompts(num_videos)
    start = time.perf_counter()
    videos = generate(pipe, [p["prompt"] for p in prompts], passes=passes, seed=seed, batch_size=args.batch_size,
                      steps=args.steps, guidance=args.guidance, progress=progress, scheduler=args.scheduler,
                      interpolation_steps=args.interpolation_steps)
    seconds = time.perf_counter() - start
    rows = score_videos(videos, prompts, classifier=classifier)
    return {"num_frames": int(videos.shape[2]), "seconds_per_video": seconds / len(prompts),
            "summary": summarise(rows), "videos": rows}


def _count(limit: int):
    def parse(value: str) -> int:
        n = int(value)
        if not 0 <= n <= limit:
            raise argparse.ArgumentTypeError(f"{value!r} must be an integer in 0..{limit}")
        return n
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="pipeline folder (default: the shipped one)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="videos per pipeline call (default 16)")
    parser.add_argument("--steps", type=int, default=None, help="keyframe steps (default: the checkpoint's)")
    parser.add_argument("--interpolation-steps", type=int, default=None,
                        help="interpolation steps per pass (default: the checkpoint's)")
    parser.add_argument("--scheduler", choices=tuple(SCHEDULERS), default=None,
                        help="sampler for both stages (default: the checkpoint's), e.g. ddim with --steps 25 "
                        "--interpolation-steps 25 for the earlier default")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale s (default: the checkpoint's)")
    parser.add_argument("--videos", type=_count(MAX_PROMPTS), default=MAX_PROMPTS // 2,
                        help=f"29-frame videos for part 1, a balanced prefix of the {MAX_PROMPTS} prompts (default "
                             f"{MAX_PROMPTS // 2}: every pair on 2 axis and 2 diagonal directions; 0 skips)")
    parser.add_argument("--interpolation-clips", type=_count(10_000), default=16,
                        help="single-shape held-out clips for part 2, plus a quarter as many two-shape clips "
                             "(default 16; 0 skips)")
    parser.add_argument("--long-videos", type=_count(MAX_PROMPTS), default=16,
                        help="113-frame videos for part 3 (default 16: each direction twice; 0 skips)")
    parser.add_argument("--metrics", type=Path, default=None,
                        help="metric weights folder for the shape classifier (default: the shipped one)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    torch.manual_seed(args.seed)
    folder = args.checkpoint or pretrained()
    pipe = FusionFramesPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    classifier = AttributeClassifier.from_pretrained((args.metrics or EVAL_WEIGHTS_DIR) / "attribute_classifier")
    report = {"checkpoint": str(folder), "seed": args.seed, "torch_threads": torch.get_num_threads(),
              "sampling": {"scheduler": args.scheduler or type(pipe.scheduler).__name__,
                           "steps": args.steps or pipe.settings.num_inference_steps,
                           "interpolation_steps": args.interpolation_steps
                           or pipe.settings.interpolation_num_inference_steps}}

    # 1. colour, shape, direction and steadiness over balanced prompts (29 frames)
    if args.videos:
        r = report["motion_29"] = motion_section(pipe, classifier, args.videos, passes=1, seed=args.seed, args=args,
                                                 progress=progress)
        print(f"1. {args.videos} prompts 'a {{color}} {{shape}} moves {{direction}}', {r['num_frames']} frames "
              f"({r['seconds_per_video']:.2f} s per video):")
        print(format_summary(r["summary"], num_frames=r["num_frames"]))

    # 2. interpolation of ground-truth keyframes of held-out clips vs a linear blend
    if pipe.interpolation_unet is not None and args.interpolation_clips:
        ev = evaluate_interpolation(pipe.interpolation_unet, pipe.interpolation_scheduler, pipe.autoencoder,
                                    split="heldout", num_clips=args.interpolation_clips, seed=args.seed,
                                    num_inference_steps=pipe.settings.interpolation_num_inference_steps,
                                    guidance_scale=pipe.settings.interpolation_guidance_scale,
                                    sampler=pipe.interpolation_sampler(), strength=pipe.settings.interpolation_strength)
        report["interpolation"] = ev
        ev["bars"] = interpolation_bars(ev)
        print(f"2. interpolating true keyframes of {ev['num_clips']} held-out clips (every generated frame against "
              f"the truth; latent blend = the blend of the keyframe latents through the same decoder, autoencoder = "
              f"round trip of the true frames, the ceiling):")
        print(format_interpolation_report(ev))

    # 3. two passes: 113 frames, the same checks
    if pipe.interpolation_unet is not None and args.long_videos:
        r = report["motion_113"] = motion_section(pipe, classifier, args.long_videos, passes=2, seed=args.seed + 1000,
                                                  args=args, progress=progress)
        print(f"3. two passes, {args.long_videos} prompts, {r['num_frames']} frames "
              f"({r['seconds_per_video']:.2f} s per video):")
        print(format_summary(r["summary"], num_frames=r["num_frames"]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
