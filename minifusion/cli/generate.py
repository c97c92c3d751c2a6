"""``python -m minifusion generate``: text to video with a pipeline folder (default: the shipped one)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minifusion import argtypes


def cmd_generate(args: argparse.Namespace) -> int:
    """Text to video: keyframes, then 0-2 FusionFrames interpolation passes, decoded to a GIF (or MP4)."""
    import torch

    from minifusion.pipeline import FusionFramesPipeline
    from minifusion.pipelines import pretrained
    from minifusion.viz import save_gif

    start = time.perf_counter()
    folder = pretrained() if args.checkpoint is None else args.checkpoint
    pipe = FusionFramesPipeline.from_pretrained(folder)
    frames = pipe(args.prompt, negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
                  guidance_scale=args.guidance, interpolation_passes=args.passes, scheduler=args.scheduler,
                  generator=torch.Generator().manual_seed(args.seed), output_type="pt",
                  progress=not args.no_progress).frames[0]  # (3, F, H, W) in [0, 1]
    paths = [save_gif(frames, args.out, fps=args.fps, scale=args.scale, value_range=(0, 1))]
    if args.mp4:
        from minifusion.viz import save_mp4

        paths.append(save_mp4(frames, args.out.with_suffix(".mp4"), fps=args.fps, scale=args.scale,
                              value_range=(0, 1)))
    seconds = time.perf_counter() - start
    for path in paths:
        print(f"{path}  ({frames.shape[1]} frames of {frames.shape[-1]}x{frames.shape[-2]}, {args.prompt!r}, "
              f"seed {args.seed})")
    print(f"generated in {seconds:.1f} s")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="text to video with a trained pipeline (default: the shipped one)",
                       description=cmd_generate.__doc__,
                       epilog='Example: python -m minifusion generate "a red circle moves right" --out outputs/demo.gif')
    p.add_argument("prompt", help='a Moving Shapes caption, e.g. "a red circle moves right"')
    p.add_argument("--out", type=argtypes.output_gif, default=Path("outputs/demo.gif"),
                   help="output GIF; its folder must exist (default outputs/demo.gif)")
    p.add_argument("--mp4", action="store_true",
                   help="also write an MP4 beside the GIF (needs: pip install 'minifusion[video]')")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator (default 0)")
    p.add_argument("--steps", type=argtypes.positive_int, default=None,
                   help="keyframe denoising steps (default: the checkpoint's, see model_index.json)")
    p.add_argument("--guidance", type=argtypes.guidance, default=None,
                   help="classifier-free guidance scale s (diffusers' convention; the paper's w = s - 1; "
                        "1 = no guidance; default: the checkpoint's)")
    p.add_argument("--negative-prompt", default=None, help="text to steer away from (default: the null embedding)")
    p.add_argument("--scheduler", choices=("dpm", "dpm-sde", "euler", "ddim", "ddpm"), default=None,
                   help="sampler for both stages: DPM-Solver++ 2M, its SDE variant, Euler, DDIM or DDPM (default: "
                        "the checkpoint's schedulers, see model_index.json)")
    p.add_argument("--passes", type=int, choices=(0, 1, 2), default=1,
                   help="interpolation passes: 0 -> 8 keyframes, 1 -> 29 frames, 2 -> 113 frames (default 1)")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                   help="pipeline folder (default: the shipped data_samples/checkpoints/moving-shapes-motion)")
    p.add_argument("--fps", type=argtypes.positive_int, default=8, help="frame rate of the file (default 8)")
    p.add_argument("--scale", type=argtypes.positive_int, default=2, help="GIF upscale factor (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_generate)
