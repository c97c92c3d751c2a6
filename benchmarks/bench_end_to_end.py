"""End to end: time and peak resident memory to generate a 29-frame and a 113-frame video from a prompt.

    .venv/bin/python benchmarks/bench_end_to_end.py [--checkpoint DIR] [--steps 25] [--threads N]

``FusionFramesPipeline.from_pretrained`` (default: the shipped ``data_samples/checkpoints/moving-shapes``),
one prompt, 8 keyframes with ``--steps`` keyframe steps and guidance (the checkpoint's scale, 6),
then one (29 frames) or two (113 frames) interpolation passes of ``--steps`` steps each with context
guidance (1.25), decoded to 64x64 frames. Each length runs in a fresh Python process (this file with
``--worker``), so the peak resident memory (``VmHWM``) is that run's alone: it includes the
interpreter, torch and the loaded weights, which is what a user's process would hold. Reported:
load time, generation time (the pipeline call, decoding included) and the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "a red circle moves right"
PASSES = {29: 1, 113: 2}  # frames -> interpolation passes (8 keyframes)


def _default_checkpoint() -> Path:
    from minifusion.pipelines import pretrained

    return Path(pretrained())


def worker(checkpoint: Path, frames: int, steps: int, interpolation_steps: int, seed: int) -> dict:
    """In this process: load, generate one video, report times and this process's peak memory."""
    import numpy as np
    import torch

    from bench_measure import peak_rss_bytes
    from minifusion.pipeline import FusionFramesPipeline

    start = time.perf_counter()
    pipe = FusionFramesPipeline.from_pretrained(checkpoint)
    load_seconds = time.perf_counter() - start
    rss_after_load = peak_rss_bytes()
    start = time.perf_counter()
    out = pipe(PROMPT, num_keyframes=8, num_inference_steps=steps,
               interpolation_num_inference_steps=interpolation_steps,
               interpolation_passes=PASSES[frames], generator=torch.Generator().manual_seed(seed), output_type="np",
               progress=False)
    seconds = time.perf_counter() - start
    if out.frames.shape[1] != frames:
        raise RuntimeError(f"asked for {frames} frames, the pipeline returned {out.frames.shape[1]}")
    return {
        "frames": frames,
        "shape": list(out.frames.shape),
        "seconds": seconds,
        "load_seconds": load_seconds,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_after_load_bytes": rss_after_load,
        "guidance_scale": pipe.settings.guidance_scale,
        "interpolation_guidance_scale": pipe.settings.interpolation_guidance_scale,
        "threads": torch.get_num_threads(),
        "finite": bool(np.isfinite(out.frames).all()),
    }


def run_in_subprocess(checkpoint: Path, frames: int, *, steps: int, interpolation_steps: int, threads: int | None,
                      seed: int = 0, timeout: float = 1800) -> dict:
    """``worker`` in a fresh interpreter; its JSON line back, or RuntimeError with the child's stderr."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--checkpoint", str(checkpoint),
           "--frames", str(frames), "--steps", str(steps), "--interpolation-steps", str(interpolation_steps),
           "--seed", str(seed)]
    env = dict(os.environ)
    if threads is not None:
        cmd += ["--threads", str(threads)]
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the {frames}-frame run failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_end_to_end(*, checkpoint: str | Path | None = None, steps: int = 25, interpolation_steps: int | None = None,
                     threads: int | None = None, lengths: tuple[int, ...] = (29, 113), seed: int = 0) -> dict:
    """Both lengths, each in its own process; returns {"checkpoint", "steps", "videos": {"29": ..., "113": ...}}."""
    folder = Path(checkpoint) if checkpoint is not None else _default_checkpoint()
    interpolation_steps = steps if interpolation_steps is None else interpolation_steps
    for n in lengths:
        if n not in PASSES:
            raise ValueError(f"video length {n!r} is not one of {', '.join(map(str, PASSES))}")
    videos = {str(n): run_in_subprocess(folder, n, steps=steps, interpolation_steps=interpolation_steps,
                                        threads=threads, seed=seed) for n in lengths}
    return {"checkpoint": str(folder), "prompt": PROMPT, "steps": steps, "interpolation_steps": interpolation_steps,
            "videos": videos}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="pipeline folder (default: the shipped one)")
    parser.add_argument("--steps", type=int, default=25, help="keyframe steps (default 25)")
    parser.add_argument("--interpolation-steps", type=int, default=None, help="steps per pass (default: --steps)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, choices=sorted(PASSES), default=None, help="--worker: video length")
    parser.add_argument("--worker", action="store_true", help="internal: one video in this process, JSON on stdout")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # `measure` when run as a file
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        if args.frames is None or args.checkpoint is None:
            parser.error("--worker needs --frames and --checkpoint")
        result = worker(args.checkpoint, args.frames, args.steps, args.interpolation_steps or args.steps, args.seed)
        print(json.dumps(result))
        return 0
    import bench_report as report

    result = bench_end_to_end(checkpoint=args.checkpoint, steps=args.steps,
                              interpolation_steps=args.interpolation_steps, threads=args.threads, seed=args.seed)
    print(report.end_to_end_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
