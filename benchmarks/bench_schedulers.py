"""Samplers: quality against seconds per video on the shipped checkpoint, every scheduler at 5-50 steps.

    .venv/bin/python benchmarks/bench_schedulers.py --json benchmarks/results/schedulers.json \
        [--schedulers dpm euler ddim ddpm] [--steps 5 10 15 25 50] [--interpolation-steps N]
        [--timestep-spacing trailing] [--seeds 0 1] [--num-videos 28] [--threads 1]

For every (scheduler, steps, seed) the pipeline's two schedulers are swapped for that class, built from
each stage's own config (schedule, prediction type, the latent-range thresholding), and
``minifusion.eval.evaluate_pipeline`` generates ``--num-videos`` 29-frame videos of the balanced prompt
grid with ``steps`` keyframe steps and ``steps`` interpolation steps (or ``--interpolation-steps``), in
batches of 16, and scores them:
FVD and caption accuracy from the attribute classifier, CLIPSIM, and the pixel checks (colour and
direction of motion). The same seed gives every sampler the same prompts and the same starting noise.
Seconds per video is the generation time over the number of videos (batches of 16, ``--threads``).

``--interpolation-clips N`` measures the interpolation stage alone instead, which the metrics above
cannot see (they read 8 frames of each video, the keyframes): the true keyframes of N held-out clips are
interpolated with each sampler at each step count (``evaluate_interpolation`` with the sampler swapped
in), and the PSNR (dB) of the middle frames against the true frames is kept for both passes.

Each finished run is written to the JSON at once and skipped when the command runs again, so an
interrupted sweep resumes. ``--table`` prints the markdown tables (mean and, over seeds, min-max) and
``--plot FILE`` draws quality against U-Net calls per video, from the JSON alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

NAMES = {"dpm": "DPM-Solver++ 2M", "dpm-sde": "SDE-DPM-Solver++ 2M", "euler": "Euler", "ddim": "DDIM", "ddpm": "DDPM"}
VARIANTS = {"dpm-sde": ("dpm", {"algorithm_type": "sde-dpmsolver++"})}  # name -> (pipeline scheduler, config)


def run_one(pipe, scheduler: str, steps: int, interpolation_steps: int, seed: int, num_videos: int, metrics,
            spacing: str | None = None) -> dict:
    """Scores of ``num_videos`` videos sampled with ``scheduler`` at ``steps`` keyframe and
    ``interpolation_steps`` interpolation steps (``spacing``: another timestep spacing than the checkpoint's)."""
    from minifusion.eval.evaluate import evaluate_pipeline
    from minifusion.pipeline import SCHEDULERS

    spacing = spacing or pipe.scheduler.config["timestep_spacing"]
    name, extra = VARIANTS.get(scheduler, (scheduler, {}))
    pipe.scheduler = SCHEDULERS[name].from_config(pipe.scheduler.config, timestep_spacing=spacing, **extra)
    pipe.interpolation_scheduler = SCHEDULERS[name].from_config(pipe.interpolation_scheduler.config,
                                                                timestep_spacing=spacing, **extra)
    r = evaluate_pipeline(pipe, num_videos=num_videos, seed=seed, passes=1, steps=steps,
                          interpolation_steps=interpolation_steps,
                          reconstruction_clips=0, metrics=metrics, progress=False)
    g = r["groups"]["all"]
    return {"scheduler": scheduler, "steps": steps, "interpolation_steps": interpolation_steps, "seed": seed,
            "timestep_spacing": spacing, "num_videos": num_videos,
            "seconds_per_video": r["seconds"]["generation"] / num_videos, "threads": r["torch_threads"],
            "fvd": g["fvd"], "clipsim": g["clipsim"], "caption_accuracy": g["caption_accuracy"],
            "color_accuracy": g["pixel"]["color_accuracy"], "direction_accuracy": g["pixel"]["direction_accuracy"],
            "background_flicker": g["pixel"]["background_flicker"]}


def interpolation_quality(pipe, scheduler: str, steps: int, seed: int, num_clips: int) -> dict:
    """PSNR of interpolating true keyframes of held-out clips with ``scheduler`` at ``steps`` steps per pass."""
    import torch

    from minifusion.eval.interpolation_eval import evaluate_interpolation
    from minifusion.pipeline import SCHEDULERS
    from minifusion.pipelines.interpolation import interpolate_pass

    name, extra = VARIANTS.get(scheduler, (scheduler, {}))
    sampler = SCHEDULERS[name].from_config(pipe.interpolation_scheduler.config, **extra)
    guidance = pipe.settings.interpolation_guidance_scale

    def interpolate(latents, *, frame_skip, generator):
        return interpolate_pass(pipe.interpolation_unet, sampler, latents, frame_skip=frame_skip,
                                num_inference_steps=steps, guidance_scale=guidance, generator=generator,
                                progress_bar_config={"disable": True})

    start = time.perf_counter()
    with torch.inference_mode():
        r = evaluate_interpolation(pipe.interpolation_unet, pipe.interpolation_scheduler, pipe.autoencoder,
                                   num_clips=num_clips, seed=seed, interpolate_fn=interpolate)
    return {"scheduler": scheduler, "steps": steps, "seed": seed, "num_clips": num_clips,
            "seconds": time.perf_counter() - start,
            **{f"{k}_psnr_db": r[k]["psnr_db"] for k in ("pass1", "pass2") if r.get(k)},
            **{f"{k}_latent_blend_psnr_db": r[k]["latent_blend_psnr_db"] for k in ("pass1", "pass2") if r.get(k)}}


def interpolation_table(runs: list[dict]) -> str:
    lines = ["| sampler | steps per pass | PSNR pass 1 (dB) | PSNR pass 2 (dB) |", "| --- | --- | --- | --- |"]
    order = list(NAMES)
    for r in sorted(runs, key=lambda r: (order.index(r["scheduler"]), r["steps"], r["seed"])):
        lines.append(f"| {NAMES[r['scheduler']]} | {r['steps']} | {r['pass1_psnr_db']:.2f} | "
                     f"{r['pass2_psnr_db']:.2f} |")
    if runs:
        lines.append(f"| latent blend of the keyframes (no model) | - | {runs[0]['pass1_latent_blend_psnr_db']:.2f} | "
                     f"{runs[0]['pass2_latent_blend_psnr_db']:.2f} |")
    return "\n".join(lines)


def mean_caption_accuracy(run: dict) -> float:
    """Mean over the prompt's attributes (colour, shape, motion, direction) of the classifier's accuracy."""
    acc = run["caption_accuracy"]
    return statistics.mean(acc[k] for k in ("color", "shape", "motion", "direction"))


def summary(runs: list[dict]) -> list[dict]:
    """One row per (scheduler, steps, interpolation steps): mean and (min, max) over seeds of every figure."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        spacing = r.get("timestep_spacing", "leading")
        key = (r["scheduler"], r["steps"], r.get("interpolation_steps", r["steps"]), spacing)
        groups.setdefault(key, []).append(r)
    rows = []
    for (name, steps, interpolation_steps, spacing), rs in groups.items():
        row = {"scheduler": name, "steps": steps, "interpolation_steps": interpolation_steps, "spacing": spacing,
               "seeds": sorted(r["seed"] for r in rs)}
        for key, get in (("seconds_per_video", lambda r: r["seconds_per_video"]), ("fvd", lambda r: r["fvd"]),
                         ("clipsim", lambda r: r["clipsim"]), ("caption", mean_caption_accuracy),
                         ("color", lambda r: r["color_accuracy"]), ("direction", lambda r: r["direction_accuracy"])):
            values = [get(r) for r in rs]
            row[key] = (statistics.mean(values), min(values), max(values))
        rows.append(row)
    order = list(NAMES)
    return sorted(rows, key=lambda row: (order.index(row["scheduler"]), row["spacing"], row["steps"],
                                         row["interpolation_steps"]))


def table(runs: list[dict]) -> str:
    def cell(v, fmt):
        mean, lo, hi = v
        return f"{mean:{fmt}} ({lo:{fmt}}-{hi:{fmt}})" if hi > lo else f"{mean:{fmt}}"

    lines = ["| sampler | spacing | steps (keyframes + interpolation) | seeds | s / video | FVD | CLIPSIM | "
             "caption accuracy | colour | direction |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary(runs):
        lines.append(f"| {NAMES[row['scheduler']]} | {row['spacing']} | "
                     f"{row['steps']} + {row['interpolation_steps']} | "
                     f"{len(row['seeds'])} | {row['seconds_per_video'][0]:.2f} | "
                     f"{cell(row['fvd'], '.0f')} | {cell(row['clipsim'], '.3f')} | {cell(row['caption'], '.3f')} | "
                     f"{cell(row['color'], '.2f')} | {cell(row['direction'], '.2f')} |")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    """Quality against the cost of a video: U-Net calls per 29-frame video (keyframe + interpolation steps).

    The x axis counts calls rather than the sweep's seconds, which followed the machine's load; on one
    idle thread seconds grow linearly with the calls (``python -m minifusion bench`` measures two points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary(runs)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("fvd", "FVD (toy; lower is better)"), ("clipsim", "CLIPSIM (higher is better)"),
              ("caption", "caption accuracy (higher is better)"))
    for name in NAMES:
        rs = [r for r in rows if r["scheduler"] == name and r["steps"] == r["interpolation_steps"]
              and r["spacing"] == "leading"]
        if not rs:
            continue
        x = [2 * r["steps"] for r in rs]
        for ax, (key, label) in zip(axes, panels):
            mean = [r[key][0] for r in rs]
            err = [[r[key][0] - r[key][1] for r in rs], [r[key][2] - r[key][0] for r in rs]]
            ax.errorbar(x, mean, yerr=err, marker="o", capsize=3, label=NAMES[name])
            for r, xi, yi in zip(rs, x, mean):
                ax.annotate(str(r["steps"]), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7)
    for r in rows:  # the unequal splits (fewer interpolation steps: the video metrics read only keyframes)
        if r["steps"] != r["interpolation_steps"] and r["spacing"] == "leading" and len(r["seeds"]) > 1:
            for ax, (key, _) in zip(axes, panels):
                ax.plot(r["steps"] + r["interpolation_steps"], r[key][0], "k*", ms=11,
                        label=f"{NAMES[r['scheduler']]} {r['steps']} + {r['interpolation_steps']}")
    for ax, (_, label) in zip(axes, panels):
        ax.set_xscale("log")
        ax.set_xticks([10, 20, 30, 50, 100], ["10", "20", "30", "50", "100"])
        ax.minorticks_off()
        ax.set_xlabel("U-Net calls per 29-frame video (keyframe + interpolation steps)", fontsize=8)
        ax.set_title(label, fontsize=9)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("samplers on the shipped checkpoint: numbers are steps per stage; bars span the seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="results file (read to resume, written per run)")
    parser.add_argument("--schedulers", nargs="+", choices=list(NAMES), default=list(NAMES))
    parser.add_argument("--steps", nargs="+", type=int, default=[5, 10, 15, 25, 50])
    parser.add_argument("--interpolation-steps", type=int, default=None,
                        help="interpolation steps for every run (default: the same as the keyframe steps)")
    parser.add_argument("--timestep-spacing", choices=("leading", "trailing", "linspace"), default=None,
                        help="timestep spacing of both stages (default: the checkpoint's)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--num-videos", type=int, default=28)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", type=Path, default=None, help="pipeline folder (default: the shipped one)")
    parser.add_argument("--interpolation-clips", type=int, default=None, metavar="N",
                        help="measure the interpolation stage alone on N held-out clips (see above)")
    parser.add_argument("--table", action="store_true", help="print the table from the JSON and stop")
    parser.add_argument("--plot", type=Path, default=None, help="draw the plot from the JSON to this file and stop")
    args = parser.parse_args(argv)
    data = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    if args.table or args.plot:
        if args.table:
            print(table(data["runs"]))
            print(interpolation_table(data.get("interpolation_runs", [])))
        if args.plot:
            plot(data["runs"], args.plot)
        return 0

    import torch

    from minifusion.eval.toy_metrics import ToyMetrics
    from minifusion.pipeline import FusionFramesPipeline
    from minifusion.pipelines import pretrained

    torch.set_num_threads(args.threads)
    folder = args.checkpoint or Path(pretrained())
    pipe = FusionFramesPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    metrics = ToyMetrics.from_pretrained()
    data.update(checkpoint=str(folder), num_videos=args.num_videos)
    if args.interpolation_clips:
        runs = data.setdefault("interpolation_runs", [])
        done = {(r["scheduler"], r["steps"], r["seed"]) for r in runs if r["num_clips"] == args.interpolation_clips}
        for seed in args.seeds:
            for steps in args.steps:
                for name in args.schedulers:
                    if (name, steps, seed) in done:
                        continue
                    r = interpolation_quality(pipe, name, steps, seed, args.interpolation_clips)
                    runs.append({**r, "command": " ".join(["python", *sys.argv])})
                    args.json.write_text(json.dumps(data, indent=1) + "\n")
                    print(f"{name:>7} {steps:>3} steps: PSNR pass 1 {r['pass1_psnr_db']:.2f} dB, "
                          f"pass 2 {r['pass2_psnr_db']:.2f} dB ({r['seconds']:.0f} s)", flush=True)
        print(interpolation_table(runs))
        return 0
    spacing = args.timestep_spacing or pipe.scheduler.config["timestep_spacing"]
    done = {(r["scheduler"], r["steps"], r.get("interpolation_steps", r["steps"]), r.get("timestep_spacing", "leading"),
             r["seed"]) for r in data["runs"] if r["num_videos"] == args.num_videos}
    for seed in args.seeds:
        for steps in args.steps:
            interpolation_steps = steps if args.interpolation_steps is None else args.interpolation_steps
            for name in args.schedulers:
                if (name, steps, interpolation_steps, spacing, seed) in done:
                    continue
                start = time.perf_counter()
                r = run_one(pipe, name, steps, interpolation_steps, seed, args.num_videos, metrics, spacing)
                data["runs"].append({**r, "command": " ".join(["python", *sys.argv])})
                args.json.write_text(json.dumps(data, indent=1) + "\n")
                print(f"{name:>5} {spacing} {steps:>3} + {interpolation_steps:>3} steps seed {seed}: "
                      f"FVD {r['fvd']:.0f} CLIPSIM {r['clipsim']:.3f} "
                      f"caption {mean_caption_accuracy(r):.3f} {r['seconds_per_video']:.2f} s/video "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(table(data["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
