"""The shipped keyframes recipe at a large batch on one GPU, in a time budget, then the motion benchmark.

    .venv/bin/python scripts/gpu_keyframes.py --out outputs/gpu_keyframes            # one CUDA GPU, about 7 min
    .venv/bin/python scripts/gpu_keyframes.py --out /tmp/k --device cpu --quick      # the same code, tiny, on a CPU

The CPU recipe (``configs/keyframes-motion-bias.json``: batch 8, 3000 steps, 67 min on one core) is
what ships; this asks what a GPU does with the same design. Steps:

1. copy the default pipeline's autoencoder, text encoder, T2I U-Net and scheduler into OUT (the
   keyframes stage's inputs, as ``train all`` would have them);
2. train the keyframes stage with that recipe at ``--batch-size`` (same lr; the step count is what
   the budget allows) in two legs: ``--probe-steps`` to time a step, then ``--resume`` to as many
   steps as fit ``--minutes`` (constant lr after warm-up, so two legs equal one run; the probe's time
   includes the stage's set-up - clips, latent cache, model - so the plan errs short);
3. put the new keyframe U-Net into the default pipeline (``OUT/pipeline``) and run
   ``benchmarks/bench_quality.py`` on it (``--videos`` 29-frame videos, on the CPU);
4. write ``OUT/gpu_keyframes.json``: device, batch, steps, seconds per step, training minutes and the
   benchmark's summary, beside the CPU recipe's for comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RECIPE = ROOT / "configs" / "keyframes-motion-bias.json"
T2I_PARTS = ("autoencoder", "text_encoder", "unet", "scheduler")


def recipe_config(*, batch_size: int, steps: int, device: str, quick: bool) -> dict:
    """The shipped keyframes recipe with this run's batch, steps and device (tiny data when ``quick``)."""
    config = json.loads(RECIPE.read_text())
    config["training"] = {**config.get("training", {}), "batch_size": batch_size, "steps": steps, "device": device,
                          "checkpoint_every": 0}
    config["motion_check_every"] = 0  # the benchmark measures at the end
    if quick:
        config["data"] = {"num_clips": 8}
        config["training"]["warmup_steps"] = 1
    return config


def planned_steps(probe_steps: int, probe_seconds: float, minutes: float) -> int:
    """Total steps that fit ``minutes`` of training at the probe's pace (at least the probe's own steps)."""
    if probe_steps < 1 or probe_seconds <= 0 or minutes <= 0:
        raise ValueError(f"need probe_steps >= 1, probe_seconds > 0 and minutes > 0, got {probe_steps}, "
                         f"{probe_seconds}, {minutes}")
    return max(probe_steps, int(minutes * 60 / (probe_seconds / probe_steps)))


def main(argv: list[str] | None = None) -> int:
    from minifusion.argtypes import int_at_least

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="run folder (created; its keyframes run is replaced)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--batch-size", type=int_at_least(1), default=64, help="clips per step (default 64; the CPU recipe: 8)")
    parser.add_argument("--minutes", type=float, default=4.0, help="training time budget (default 4)")
    parser.add_argument("--probe-steps", type=int_at_least(1), default=100, help="steps of the timing leg (default 100)")
    parser.add_argument("--videos", type=int_at_least(1), default=56, help="29-frame videos of the benchmark (default 56)")
    parser.add_argument("--quick", action="store_true", help="tiny: 2 + 2 steps, batch 2, 8 videos at 2 steps")
    args = parser.parse_args(argv)

    import torch

    from minifusion.models import KeyframeUNet
    from minifusion.pipeline import FusionFramesPipeline
    from minifusion.pipelines import pretrained
    from minifusion.training.recipes import train_keyframes

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False; use --device cpu --quick to check the "
              "script without a GPU", file=sys.stderr)
        return 2
    batch, probe = (2, 2) if args.quick else (args.batch_size, args.probe_steps)
    base, out = pretrained(), args.out
    out.mkdir(parents=True, exist_ok=True)
    for part in T2I_PARTS:
        if not (out / part).exists():
            shutil.copytree(base / part, out / part)
    shutil.rmtree(out / "runs" / "keyframes", ignore_errors=True)

    start = time.perf_counter()
    train_keyframes(out, config=recipe_config(batch_size=batch, steps=probe, device=args.device, quick=args.quick),
                    seed=0, progress=not args.quick)
    probe_seconds = time.perf_counter() - start
    steps = probe + 2 if args.quick else planned_steps(probe, probe_seconds, args.minutes)
    train_keyframes(out, config=recipe_config(batch_size=batch, steps=steps, device=args.device, quick=args.quick),
                    seed=0, resume=True, progress=not args.quick)
    train_seconds = time.perf_counter() - start

    pipe = FusionFramesPipeline.from_pretrained(base)
    pipe.keyframe_unet = KeyframeUNet.from_pretrained(out / "keyframe_unet").eval()
    pipe.save_pretrained(out / "pipeline")
    import bench_quality

    videos = 8 if args.quick else args.videos
    bench_args = ["--checkpoint", str(out / "pipeline"), "--videos", str(videos), "--interpolation-clips", "0",
                  "--long-videos", "0", "--json", str(out / "quality.json"), "--no-progress"]
    bench_quality.main(bench_args + (["--steps", "2", "--interpolation-steps", "1"] if args.quick else []))
    quality = json.loads((out / "quality.json").read_text())
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    report = {"device": device_name, "batch_size": batch, "steps": steps, "probe_steps": probe,
              "seconds_per_step": probe_seconds / probe, "training_minutes": train_seconds / 60,
              "clips_seen": steps * batch, "benchmark": quality["motion_29"]["summary"],
              "benchmark_command": "python benchmarks/bench_quality.py " + " ".join(bench_args),
              "cpu_recipe": {"batch_size": 8, "steps": 3000, "clips_seen": 24000, "training_minutes": 67.2,
                             "card": "data_samples/checkpoints/moving-shapes-motion/README.md"}}
    (out / "gpu_keyframes.json").write_text(json.dumps(report, indent=2) + "\n")
    s = report["benchmark"]
    print(f"{device_name}: {steps} steps at batch {batch} ({steps * batch} clips) in {train_seconds / 60:.1f} min "
          f"({report['seconds_per_step']:.3f} s/step); direction axis {s['axis']['all']['direction']:.1%}, diagonal "
          f"{s['diagonal']['all']['direction']:.1%}, steady {s['all']['all']['steady']:.1%} over {videos} videos; "
          f"wrote {out / 'gpu_keyframes.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
