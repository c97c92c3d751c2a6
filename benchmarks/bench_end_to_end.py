"""End to end: time and peak resident memory to generate a 29-frame and a 113-frame video from a prompt.

    .venv/bin/python benchmarks/bench_end_to_end.py [--checkpoint DIR] [--steps N] [--scheduler dpm] [--threads N]

``FusionFramesPipeline.from_pretrained`` (default: the shipped ``data_samples/checkpoints/moving-shapes-motion``),
one prompt, 8 keyframes with guidance (the checkpoint's scale, 6), then one (29 frames) or two (113
frames) interpolation passes with the checkpoint's context guidance (1.5), decoded to 64x64 frames.
Samplers and steps are the checkpoint's defaults (``model_index.json``) unless ``--scheduler`` / ``--steps`` say otherwise.
Each video runs in a fresh Python process (this file with ``--worker``), so the peak resident memory
(``VmHWM``) is that run's alone: it includes the interpreter, torch and the loaded weights, which is
what a user's process would hold. Reported: load time, generation time of the first call (the
pipeline call, decoding included: what ``generate`` waits) and of a second, warm call, and the peak.

Next to it, in the same run: the 29-frame video at the defaults against the sampling of earlier
releases (``BASELINE``: 25 DDIM keyframe steps + 25 DDIM interpolation steps), at each thread count
of ``thread_counts``, each in its own process; the ratio is the speed-up of the defaults.
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
BASELINE = {"scheduler": "ddim", "steps": 25, "interpolation_steps": 25}  # the sampling before DPM-Solver++


def _default_checkpoint() -> Path:
    from minifusion.pipelines import pretrained

    return Path(pretrained())


def worker(checkpoint: Path, frames: int, steps: int | None, interpolation_steps: int | None, seed: int,
           scheduler: str | None = None) -> dict:
    """In this process: load, generate one video (twice: cold, then warm), report times and the peak memory."""
    import numpy as np
    import torch
    from bench_measure import peak_rss_bytes

    from minifusion.pipeline import FusionFramesPipeline

    start = time.perf_counter()
    pipe = FusionFramesPipeline.from_pretrained(checkpoint)
    load_seconds = time.perf_counter() - start
    rss_after_load = peak_rss_bytes()
    seconds, cpu_seconds = [], []
    for _ in range(2):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = pipe(PROMPT, num_keyframes=8, num_inference_steps=steps,
                   interpolation_num_inference_steps=interpolation_steps, interpolation_passes=PASSES[frames],
                   generator=torch.Generator().manual_seed(seed), output_type="np", scheduler=scheduler, progress=False)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    if out.frames.shape[1] != frames:
        raise RuntimeError(f"asked for {frames} frames, the pipeline returned {out.frames.shape[1]}")
    return {
        "frames": frames,
        "shape": list(out.frames.shape),
        "seconds": seconds[0],  # the first call in the process, as `generate` makes it
        "warm_seconds": seconds[1],
        # CPU time of the process: on one thread, what the call takes on an idle core (wall time counts neighbours)
        "cpu_seconds": cpu_seconds[0],
        "warm_cpu_seconds": cpu_seconds[1],
        "scheduler": scheduler or type(pipe.scheduler).__name__,
        "interpolation_scheduler": scheduler or type(pipe.interpolation_scheduler).__name__,
        "steps": steps or pipe.settings.num_inference_steps,
        "interpolation_steps": interpolation_steps or pipe.settings.interpolation_num_inference_steps,
        "load_seconds": load_seconds,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_after_load_bytes": rss_after_load,
        "guidance_scale": pipe.settings.guidance_scale,
        "interpolation_guidance_scale": pipe.settings.interpolation_guidance_scale,
        "threads": torch.get_num_threads(),
        "finite": bool(np.isfinite(out.frames).all()),
    }


def run_in_subprocess(checkpoint: Path, frames: int, *, steps: int | None, interpolation_steps: int | None,
                      threads: int | None, seed: int = 0, scheduler: str | None = None, timeout: float = 1800) -> dict:
    """``worker`` in a fresh interpreter; its JSON line back, or RuntimeError with the child's stderr."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--checkpoint", str(checkpoint),
           "--frames", str(frames), "--seed", str(seed)]
    for flag, value in (("--steps", steps), ("--interpolation-steps", interpolation_steps), ("--scheduler", scheduler)):
        if value is not None:
            cmd += [flag, str(value)]
    env = dict(os.environ)
    if threads is not None:
        cmd += ["--threads", str(threads)]
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the {frames}-frame run failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_end_to_end(*, checkpoint: str | Path | None = None, steps: int | None = None,
                     interpolation_steps: int | None = None, scheduler: str | None = None, threads: int | None = None,
                     lengths: tuple[int, ...] = (29, 113), seed: int = 0, baseline: dict | None = BASELINE,
                     thread_counts: tuple[int, ...] = (1, 2)) -> dict:
    """Both lengths at the defaults (or ``steps`` / ``scheduler``), each in its own process, with ``threads``;
    then the 29-frame video at the defaults and at ``baseline`` for each of ``thread_counts``.

    Returns {"checkpoint", "steps", "interpolation_steps", "scheduler", "videos": {"29": ..., "113": ...},
    "comparison": [{"threads", "default", "baseline", "speedup"}, ...]}.
    """
    folder = Path(checkpoint) if checkpoint is not None else _default_checkpoint()
    if steps is not None and interpolation_steps is None:
        interpolation_steps = steps
    for n in lengths:
        if n not in PASSES:
            raise ValueError(f"video length {n!r} is not one of {', '.join(map(str, PASSES))}")
    ours = dict(steps=steps, interpolation_steps=interpolation_steps, scheduler=scheduler)
    videos = {str(n): run_in_subprocess(folder, n, threads=threads, seed=seed, **ours) for n in lengths}
    comparison = []
    for n_threads in (thread_counts if baseline is not None else ()):
        default = run_in_subprocess(folder, 29, threads=n_threads, seed=seed, **ours)
        old = run_in_subprocess(folder, 29, threads=n_threads, seed=seed, **baseline)
        comparison.append({"threads": n_threads, "default": default, "baseline": old,
                           "speedup": old["seconds"] / default["seconds"],
                           "warm_speedup": old["warm_seconds"] / default["warm_seconds"]})
    first = next(iter(videos.values()))
    return {"checkpoint": str(folder), "prompt": PROMPT, "steps": first["steps"],
            "interpolation_steps": first["interpolation_steps"], "scheduler": first["scheduler"],
            "interpolation_scheduler": first["interpolation_scheduler"], "baseline": baseline, "videos": videos,
            "comparison": comparison}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="pipeline folder (default: the shipped one)")
    parser.add_argument("--steps", type=int, default=None, help="keyframe steps (default: the checkpoint's)")
    parser.add_argument("--interpolation-steps", type=int, default=None,
                        help="steps per pass (default: --steps, or the checkpoint's)")
    parser.add_argument("--scheduler", choices=("dpm", "dpm-sde", "euler", "ddim", "ddpm"), default=None,
                        help="sampler for both stages (default: the checkpoint's)")
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
        result = worker(args.checkpoint, args.frames, args.steps, args.interpolation_steps or args.steps, args.seed,
                        args.scheduler)
        print(json.dumps(result))
        return 0
    import bench_report as report

    result = bench_end_to_end(checkpoint=args.checkpoint, steps=args.steps,
                              interpolation_steps=args.interpolation_steps, scheduler=args.scheduler, threads=args.threads, seed=args.seed)
    print(report.end_to_end_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
