"""Moving Shapes render speed: clips per second on one thread, next to the 500 clips/s target.

    python benchmarks/bench_data.py [--seconds S] [--json FILE]

Times `MovingShapes(...)[i]` end to end (drawing attributes, placing shapes, rendering,
building the item dict) for 8 frames of 64x64 by default, with `torch.set_num_threads(1)`.
The target is what keeps data loading far below the cost of a training step on a CPU.
A later `python -m minifusion bench` calls `bench_render` directly.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from minifusion.data import MovingShapes

TARGET_CLIPS_PER_SECOND = 500.0


def bench_render(
    *,
    seconds: float = 2.0,
    num_frames: int = 8,
    size: int = 64,
    frame_skip: int = 4,
    split: str = "train",
    threads: int = 1,
    warmup: int = 20,
) -> dict:
    """Render clips for about `seconds` and return the measured rate and its settings."""
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    ds = MovingShapes(split, num_frames=num_frames, size=size, frame_skip=frame_skip, length=10**9)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for i in range(warmup):
            ds[i]
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(50):  # check the clock every 50 clips
                ds[warmup + count]
                count += 1
    finally:
        torch.set_num_threads(previous)
    rate = count / elapsed
    return {
        "benchmark": "moving_shapes_render",
        "clips_per_second": rate,
        "ms_per_clip": 1000.0 / rate,
        "target_clips_per_second": TARGET_CLIPS_PER_SECOND,
        "meets_target": rate >= TARGET_CLIPS_PER_SECOND,
        "clips": count,
        "seconds": elapsed,
        "num_frames": num_frames,
        "size": size,
        "frame_skip": frame_skip,
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to render (default 2)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels (default 64)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    try:
        result = bench_render(seconds=args.seconds, num_frames=args.frames, size=args.size)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Moving Shapes, {result['num_frames']} frames of {result['size']}x{result['size']}, 1 thread")
    print(f"{'':>10} {'clips/s':>10} {'ms/clip':>9}")
    print(f"{'measured':>10} {result['clips_per_second']:>10.0f} {result['ms_per_clip']:>9.2f}")
    print(f"{'target':>10} {TARGET_CLIPS_PER_SECOND:>10.0f} {1000 / TARGET_CLIPS_PER_SECOND:>9.2f}")
    print("meets target" if result["meets_target"] else "BELOW TARGET")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
