"""Does the shipped pipeline draw what it is asked? Colour, direction, interpolation and 113-frame steadiness.

Measured from the pixels of generated videos (``minifusion.eval`` pixel metrics; no learned judge):

1. prompts ``a {color} {shape} moves {direction}`` over every colour, every shape and the four
   directions left, right, up, down -> 29-frame videos (keyframes + one interpolation pass): the
   share whose dominant foreground colour is the prompted one, and the share whose centroid moves
   in the prompted direction; prompts whose (colour, shape) pair is held out of training are
   reported separately (the model never saw those combinations);
2. interpolation of ground-truth keyframes of held-out clips (FusionFrames, section 3.2): PSNR of
   the generated middle frames against the true frames, next to a linear blend of the two
   keyframes, for the first pass (keyframes 4 frames apart) and the second (1 apart, quarter frames);
3. two passes (113 frames): the share of videos whose object moves in the prompted direction
   with no jump back: no frame-to-frame step against the prompted direction larger than
   ``--jump`` pixels (a seam between interpolation windows would show as one).

Bars (issue 4): colour >= 90%, direction >= 80%, interpolation above the blend for both passes.

    python benchmarks/bench_quality.py                       # the shipped checkpoint
    python benchmarks/bench_quality.py --checkpoint runs/shapes --json results/quality.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from minifusion.data import COLOR_NAMES, HELDOUT_COMBINATIONS, SHAPES
from minifusion.data.vocabulary import DIRECTIONS
from minifusion.eval import centroid_trajectory, dominant_color, motion_direction
from minifusion.pipeline import FusionFramesPipeline
from minifusion.pipelines import pretrained
from minifusion.training.recipes.interpolation import evaluate_interpolation

FOUR_DIRECTIONS = ("left", "right", "up", "down")


def prompt_grid(colors=COLOR_NAMES, shapes=SHAPES, directions=FOUR_DIRECTIONS) -> list[dict]:
    """Every (colour, shape, direction) as ``{"prompt", "color", "shape", "direction", "heldout"}``."""
    heldout = {tuple(p) for p in HELDOUT_COMBINATIONS}
    return [{"prompt": f"a {c} {s} moves {d}", "color": c, "shape": s, "direction": d, "heldout": (c, s) in heldout}
            for c in colors for s in shapes for d in directions]


def generate(pipe: FusionFramesPipeline, prompts: list[str], *, passes: int, seed: int, batch_size: int,
             steps: int | None, guidance: float | None, progress: bool) -> torch.Tensor:
    """(N, 3, F, H, W) videos in [0, 1]; batch b uses the generator seeded with seed + b."""
    videos = []
    for b, start in enumerate(range(0, len(prompts), batch_size)):
        out = pipe(prompts[start:start + batch_size], interpolation_passes=passes, num_inference_steps=steps,
                   guidance_scale=guidance, output_type="pt", progress=progress,
                   generator=torch.Generator().manual_seed(seed + b))
        videos.append(out.frames.cpu())
        if progress:
            print(f"  {min(start + batch_size, len(prompts))}/{len(prompts)} videos", file=sys.stderr, flush=True)
    return torch.cat(videos)


def score(videos: torch.Tensor, grid: list[dict]) -> dict:
    """Colour and direction accuracy, overall and split by held-out pairs."""
    colors = dominant_color(videos, value_range=(0, 1))
    directions = motion_direction(videos, value_range=(0, 1))
    rows = [{**g, "found_color": c, "found_direction": d} for g, c, d in zip(grid, colors, directions)]

    def acc(subset, key):
        return sum(r[f"found_{key}"] == r[key] for r in subset) / len(subset) if subset else math.nan

    out = {}
    for name, subset in (("all", rows), ("seen_pairs", [r for r in rows if not r["heldout"]]),
                         ("heldout_pairs", [r for r in rows if r["heldout"]])):
        out[name] = {"num_videos": len(subset), "color_accuracy": acc(subset, "color"),
                     "direction_accuracy": acc(subset, "direction")}
    out["videos"] = rows
    return out


def steadiness(videos: torch.Tensor, directions: list[str], *, jump_pixels: float) -> dict:
    """Share of videos that move the prompted way with no backward step larger than ``jump_pixels``."""
    size = videos.shape[-1]
    trajectory = centroid_trajectory(videos, value_range=(0, 1))  # (N, F, 2) frame units
    found = motion_direction(videos, value_range=(0, 1))
    steady, worst = [], []
    for traj, want, got in zip(trajectory, directions, found):
        unit = torch.tensor(DIRECTIONS[want], dtype=torch.float32)
        unit = unit / unit.norm()
        along = traj @ unit  # (F,) position along the prompted direction
        steps = along[1:] - along[:-1]
        steps = steps[torch.isfinite(steps)]
        back = float((-steps).max()) * size if steps.numel() else math.inf  # pixels
        worst.append(back)
        steady.append(got == want and back <= jump_pixels)
    return {"num_videos": len(steady), "num_frames": int(videos.shape[2]), "steady_fraction": sum(steady) / len(steady),
            "jump_pixels": jump_pixels, "largest_backward_step_pixels": worst}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="pipeline folder (default: the shipped one)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="videos per pipeline call (default 16)")
    parser.add_argument("--steps", type=int, default=None, help="keyframe steps (default: the checkpoint's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale s (default: the checkpoint's)")
    parser.add_argument("--interpolation-clips", type=int, default=16, help="held-out clips for part 2 (default 16)")
    parser.add_argument("--steady-videos", type=int, default=28,
                        help="113-frame videos for part 3 (default 28: each colour x 4 directions)")
    parser.add_argument("--jump", type=float, default=1.0, help="largest allowed backward step in pixels (default 1)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N prompts of part 1 (smoke runs)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    torch.manual_seed(args.seed)
    folder = args.checkpoint or pretrained()
    pipe = FusionFramesPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    report = {"checkpoint": str(folder), "seed": args.seed, "torch_threads": torch.get_num_threads()}

    # 1. colour and direction over the prompt grid (29 frames)
    grid = prompt_grid()[: args.limit]
    start = time.perf_counter()
    videos = generate(pipe, [g["prompt"] for g in grid], passes=1, seed=args.seed, batch_size=args.batch_size,
                      steps=args.steps, guidance=args.guidance, progress=progress)
    seconds = time.perf_counter() - start
    report["prompts"] = score(videos, grid)
    report["prompts"]["seconds_per_video"] = seconds / len(grid)
    print(f"1. {len(grid)} prompts 'a {{color}} {{shape}} moves {{left|right|up|down}}', {videos.shape[2]} frames "
          f"({seconds / len(grid):.2f} s per video):")
    for name in ("all", "seen_pairs", "heldout_pairs"):
        r = report["prompts"][name]
        print(f"   {name:<14} {r['num_videos']:>4} videos   colour {r['color_accuracy']:6.1%} (bar 90%)   "
              f"direction {r['direction_accuracy']:6.1%} (bar 80%, chance 12.5%)")

    # 2. interpolation of ground-truth keyframes of held-out clips vs a linear blend
    if pipe.interpolation_unet is not None:
        ev = evaluate_interpolation(pipe.interpolation_unet, pipe.interpolation_scheduler, pipe.autoencoder,
                                    split="heldout", num_clips=args.interpolation_clips, seed=args.seed,
                                    num_inference_steps=pipe.settings.interpolation_num_inference_steps,
                                    guidance_scale=pipe.settings.interpolation_guidance_scale)
        report["interpolation"] = ev
        print(f"2. interpolating true keyframes of {ev['num_clips']} held-out clips (PSNR of the middle frames):")
        for k in ("pass1", "pass2"):
            r = ev[k]
            if r is None:
                continue
            verdict = "better" if r["psnr_db"] > r["linear_blend_psnr_db"] else "NOT better"
            print(f"   {k} (keyframes {r['frame_skip']:g} frames apart): model {r['psnr_db']:.2f} dB, linear blend "
                  f"{r['linear_blend_psnr_db']:.2f} dB -> {verdict}; blend of the keyframe latents through the "
                  f"same decoder {r['latent_blend_psnr_db']:.2f} dB; autoencoder round trip (ceiling) "
                  f"{r['autoencoder_psnr_db']:.2f} dB")
            verdict = "better" if r["latent_mse"] < r["latent_blend_latent_mse"] else "NOT better"
            print(f"      in latent space (no decoder ceiling): model MSE {r['latent_mse']:.4f}, blend of the keyframe "
                  f"latents {r['latent_blend_latent_mse']:.4f} -> {verdict}")

        # 3. two passes: 113 frames, steady motion
        steady_grid = [g for g in prompt_grid(shapes=SHAPES) if g["shape"] == SHAPES[COLOR_NAMES.index(g["color"])
                                                                                        % len(SHAPES)]]
        steady_grid = steady_grid[: args.steady_videos]
        start = time.perf_counter()
        long = generate(pipe, [g["prompt"] for g in steady_grid], passes=2, seed=args.seed + 1000,
                        batch_size=args.batch_size, steps=args.steps, guidance=args.guidance, progress=progress)
        report["steadiness"] = steadiness(long, [g["direction"] for g in steady_grid], jump_pixels=args.jump)
        report["steadiness"]["seconds_per_video"] = (time.perf_counter() - start) / len(steady_grid)
        r = report["steadiness"]
        print(f"3. two passes, {r['num_frames']} frames, {r['num_videos']} videos: {r['steady_fraction']:.1%} move "
              f"the prompted way without a backward step over {args.jump:g} px "
              f"({r['seconds_per_video']:.2f} s per video)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
