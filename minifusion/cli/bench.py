"""``python -m minifusion bench``: speed and memory benchmarks (benchmarks/run_all.py), side by side with peers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minifusion import argtypes

BENCH_FIGURES = """\
figures (one table per section; JSON keys in brackets):
  U-Net training step [unet_training_step]: one forward + backward (MSE loss, no optimiser) of the
    default keyframe U-Net on a (4, 4, 8, 16, 16) latent batch with 8 text tokens per video, and of
    each peer on the same batch: diffusers' UNet3DConditionModel and video-diffusion-pytorch's Unet3D,
    built with the keyframe U-Net's widths (32, 64, 128), 2 layers per level, 32-channel heads and
    128-wide text (pip install 'minifusion[bench]' for diffusers; docs/performance.md says why
    video-diffusion-pytorch does not import with torch 2.13.0 CPU). Per model: parameters, GFLOP per
    step (torch.utils.flop_counter: matrix products, convolutions, attention; forward + backward),
    median ms per step, achieved GFLOP/s, and MFU = achieved / the fp32 matmul peak measured in the
    same run (best of n x n matrix products). Target: our MFU >= 1.25x the best peer's.
  interpolation [interpolation]: 8 keyframe latents -> 29 frames with FusionFrames' pair-wise
    interpolator and with the masked-frame (MFI) baseline, default widths, random weights, the same
    25 DDIM steps and context guidance 1.25. Per model: U-Net items per call (pair latents or frames,
    guided batch), GFLOP per video, seconds inside the U-Net, wall seconds. Ratios MFI / FusionFrames
    of U-Net time (target >= 3.5x), wall time, FLOPs, and items per call (29 / 7).
  end to end [end_to_end]: the shipped checkpoint (or --checkpoint) generates a 29-frame and a
    113-frame video from a prompt with the checkpoint's own samplers and step counts (model_index.json;
    benchmarks/bench_end_to_end.py --scheduler / --steps override them) and guidance, and the
    29-frame video again with 25 + 25 DDIM steps for comparison, each in a fresh process: generation
    seconds (target < 2 s for 29 frames), load seconds, and the process's peak resident memory
    (VmHWM; target < 2 GB for 113 frames).
  data [data]: Moving Shapes clips (8 frames of 64x64) rendered per second on one thread (target 500).
  cuda [cuda], only with a GPU: a wider keyframe U-Net (widths 128, 256, 512) training and sampling
    steps in fp32 and under bf16 / fp16 autocast: ms, TFLOP/s, peak GPU memory, speed-up over fp32
    (target: bf16 training >= 1.8x); torch.compile's speed-up of the training step; the pipeline's
    29-frame video with and without autocast.
  targets [targets]: each target's value, bound and met / NOT met. Timings need an idle machine.

--quick: tiny sizes and one step (2 for end to end): every code path runs and the JSON is written,
but the numbers are not measurements (make test runs it)."""


def _benchmarks_dir() -> Path:
    """The checkout's benchmarks/ folder (not part of the installed package)."""
    return Path(__file__).resolve().parents[2] / "benchmarks"


def cmd_bench(args: argparse.Namespace) -> int:
    """Speed and memory benchmarks, side by side with peer U-Nets; tables, and JSON with --json."""
    folder = _benchmarks_dir()
    if not (folder / "run_all.py").is_file():
        raise ValueError(f"bench needs a source checkout of minifusion: the folder {str(folder)!r} with run_all.py "
                         "is missing (the benchmarks are not part of the installed package; clone the repository "
                         "and run it from there)")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    import bench_report as report
    import run_all

    results = run_all.run(quick=args.quick, peers=not args.no_peers, checkpoint=args.checkpoint,
                          threads=args.threads, json_path=args.json)
    print(report.full_report(results))
    if args.json is not None:
        print(f"wrote {args.json}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed and memory benchmarks, side by side with peer U-Nets",
                       description=cmd_bench.__doc__, epilog=BENCH_FIGURES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=argtypes.json_file, default=None, metavar="FILE",
                   help="also write every figure to this JSON file (its folder must exist)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, one step: checks that every benchmark runs; not a measurement")
    p.add_argument("--no-peers", action="store_true",
                   help="leave out the peer U-Nets (diffusers, video-diffusion-pytorch)")
    p.add_argument("--checkpoint", type=argtypes.pipeline_folder, default=None, metavar="DIR",
                   help="pipeline folder for the end-to-end section (default: the shipped "
                        "data_samples/checkpoints/moving-shapes-motion)")
    p.add_argument("--threads", type=argtypes.positive_int, default=None, metavar="N",
                   help="torch threads for every section (default: torch's choice); data rendering uses one")
    p.set_defaults(func=cmd_bench)
