"""Where the motion benchmark's failures start: room to move along the prompted direction, generated vs real.

The motion benchmark (``bench_quality.py``) scores each video; this asks where the failed ones began.
It regenerates the benchmark's keyframes (the same prompts, batches and seeds: the pipeline draws the
keyframe noise first, so the keyframes do not depend on the interpolation passes), takes the object's
centroid in the first keyframe, and measures its *room*: how far it can travel along the prompted
direction before its centre leaves the frame (frame widths). Reported: direction and steadiness per
third of the room, from the benchmark's JSON, and the distance real Moving Shapes objects travel over
the 28 source frames a video spans (what the room must hold).

    python benchmarks/motion_failures.py --quality benchmarks/results/quality_moving-shapes-motion.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import generate  # noqa: E402  (benchmarks/ is not a package)

from minifusion.data import MovingShapes  # noqa: E402
from minifusion.data.vocabulary import DIRECTIONS  # noqa: E402
from minifusion.eval import centroid_trajectory  # noqa: E402
from minifusion.pipeline import FusionFramesPipeline  # noqa: E402
from minifusion.pipelines import pretrained  # noqa: E402


def room(x: float, y: float, direction: str) -> float:
    """Distance (frame units) from (x, y) to the frame's edge along ``direction`` (y grows downward)."""
    dx, dy = DIRECTIONS[direction]
    norm = math.hypot(dx, dy)
    dx, dy = dx / norm, dy / norm
    limits = []
    if dx:
        limits.append(((1 - x) if dx > 0 else x) / abs(dx))
    if dy:
        limits.append(((1 - y) if dy > 0 else y) / abs(dy))
    return min(limits)


def real_travel(num_clips: int, seed: int) -> torch.Tensor:
    """Distance (frame units) real 'moves' clips travel over 28 source frames."""
    clips = MovingShapes("val", num_frames=29, frame_skip=1, size=64, length=num_clips, motions=["moves"],
                         backgrounds=("black",), simple_fraction=1.0, seed=seed)
    videos = torch.stack([clips[i]["video"] for i in range(num_clips)])  # (N, 3, 29, 64, 64) in [-1, 1]
    path = centroid_trajectory(videos)
    return (path[:, -1] - path[:, 0]).norm(dim=-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", type=Path, required=True, help="bench_quality.py's JSON (its motion_29 part)")
    parser.add_argument("--real-clips", type=int, default=200, help="real clips for the travel distances")
    args = parser.parse_args(argv)
    report = json.loads(args.quality.read_text())
    rows, sampling = report["motion_29"]["videos"], report["sampling"]
    pipe = FusionFramesPipeline.from_pretrained(report["checkpoint"] if Path(report["checkpoint"]).is_dir()
                                                else pretrained())
    pipe.set_progress_bar_config(disable=True)
    keyframes = generate(pipe, [r["prompt"] for r in rows], passes=0, seed=report["seed"], batch_size=16,
                         steps=sampling["steps"], guidance=None, progress=False)  # (N, 3, 8, 64, 64) in [0, 1]
    start = centroid_trajectory(keyframes, value_range=(0, 1))[:, 0]  # (N, 2)
    rooms = [room(float(x), float(y), r["direction"]) if not math.isnan(x) else math.nan
             for (x, y), r in zip(start.tolist(), rows)]
    order = sorted(range(len(rows)), key=lambda i: rooms[i])
    print(f"{len(rows)} videos of {report['checkpoint']}: room along the prompted direction from the first keyframe")
    print(f"{'third':<8} {'room (frame widths)':<22} {'videos':>6} {'direction':>10} {'steady':>8}")
    for k, name in enumerate(("least", "middle", "most")):
        part = order[k * len(order) // 3:(k + 1) * len(order) // 3]
        lo, hi = rooms[part[0]], rooms[part[-1]]
        ok = sum(rows[i]["direction_ok"] for i in part) / len(part)
        steady = sum(rows[i]["steady"] for i in part) / len(part)
        print(f"{name:<8} {lo:5.2f} - {hi:5.2f}{'':<10} {len(part):>6} {ok:>10.1%} {steady:>8.1%}")
    failed = [i for i in range(len(rows)) if not (rows[i]["direction_ok"] and rows[i]["steady"])]
    travel = real_travel(args.real_clips, report["seed"])
    print(f"failed (direction or steadiness): {len(failed)}; their median room "
          f"{torch.tensor([rooms[i] for i in failed]).nanmedian():.2f}, the others' "
          f"{torch.tensor([rooms[i] for i in range(len(rows)) if i not in failed]).nanmedian():.2f}")
    q = torch.quantile(travel, torch.tensor([0.1, 0.5, 0.9]))
    print(f"real 'moves' clips ({args.real_clips}) travel over 28 source frames: median {q[1]:.2f}, "
          f"10-90% {q[0]:.2f}-{q[2]:.2f} frame widths")
    return 0


if __name__ == "__main__":
    sys.exit(main())
