"""``python -m minifusion evaluate``: the command line of ``minifusion.eval.evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from minifusion import argtypes
from minifusion.eval.evaluate import METRICS_HELP


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Every toy metric of a pipeline (``toy_metrics``): caption accuracy, FVD, IS and CLIPSIM of generated
    videos, seen and held-out colour-shape pairs apart, and PSNR/SSIM/flicker of interpolation and decoders."""
    from minifusion.eval.evaluate import run

    return run(args)


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="toy FVD / IS / CLIPSIM, caption accuracy, PSNR / SSIM of a pipeline",
                       description=cmd_evaluate.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=METRICS_HELP + "\nExample: python -m minifusion evaluate --num-videos 28 --json "
                                             "outputs/evaluate.json")
    p.add_argument("--checkpoint", type=argtypes.pipeline_folder, default=None, metavar="DIR",
                   help="pipeline folder (default: the shipped data_samples/checkpoints/moving-shapes-motion)")
    p.add_argument("--num-videos", type=argtypes.positive_int, default=112, metavar="N",
                   help="generated videos (default 112: 7 colours x 4 shapes x 4 directions; a smaller N takes a "
                        "balanced prefix, a larger one repeats the prompts); at least 2")
    p.add_argument("--seed", type=argtypes.nonnegative_int, default=0,
                   help="seed of the generators and real clips (default 0)")
    p.add_argument("--steps", type=argtypes.positive_int, default=None,
                   help="keyframe steps (default: the checkpoint's)")
    p.add_argument("--interpolation-steps", type=argtypes.positive_int, default=None, metavar="N",
                   help="interpolation steps per pass (default: the checkpoint's)")
    p.add_argument("--passes", type=int, choices=(0, 1, 2), default=1,
                   help="interpolation passes: 0 -> 8, 1 -> 29, 2 -> 113 frames (default 1)")
    p.add_argument("--guidance", type=argtypes.guidance, default=None,
                   help="keyframe guidance scale s (default: the checkpoint's)")
    p.add_argument("--batch-size", type=argtypes.positive_int, default=16, help="videos per pipeline call (default 16)")
    p.add_argument("--reconstruction-clips", type=argtypes.nonnegative_int, default=8, metavar="N",
                   help="held-out clips for interpolation and decoder PSNR/SSIM (default 8; 0 skips them)")
    p.add_argument("--metrics", type=Path, default=None, metavar="DIR",
                   help="metric weights (default: the shipped data_samples/checkpoints/eval)")
    p.add_argument("--json", type=argtypes.json_file, default=Path("outputs/evaluate.json"), metavar="FILE",
                   help="where to write every figure (default outputs/evaluate.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_evaluate)
