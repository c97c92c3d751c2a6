"""``python -m minifusion evaluate``: every toy metric of a pipeline, seen and held-out prompts apart.

FusionFrames (arXiv 2311.13073, section 5) judges text-to-video by FVD, IS and CLIPSIM of generated
videos and interpolation and decoders by PSNR/SSIM against real frames. ``evaluate_pipeline`` does
the same at toy scale (``toy_metrics``):

1. prompts ``a {color} {shape} moves {left|right|up|down}`` (``prompt_grid``: 7 x 4 x 4 = 112, in an
   order whose every prefix of 28 holds each colour-shape pair once and each direction 7 times) ->
   generated videos (``--num-videos`` N, seeded), and two sets of real Moving Shapes clips of the
   same prompts rendered at the same frame times;
2. ``ToyMetrics`` on them: caption accuracy per attribute, FVD (and the real-vs-real floor), IS per
   head, CLIPSIM; plus the weight-free pixel checks (dominant colour, centroid direction, background
   flicker) and the frame-to-frame change relative to the real clips; for all prompts, for the seen
   colour-shape pairs and for the held-out pairs (``HELDOUT_COMBINATIONS``, never in training);
3. reconstruction on held-out clips: interpolation of true keyframes (pass 1 and 2) and the image and
   video decoders, each by PSNR, SSIM and flicker ratio against the exact ground truth.

``METRICS_HELP`` (the command's ``--help``) says what every figure means.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
import torch

from minifusion.checks import check_int, positive_int
from minifusion.data import COLOR_NAMES, HELDOUT_COMBINATIONS, SHAPES, make_params, render_clip
from minifusion.eval.pixel_metrics import background_flicker, dominant_color, motion_direction
from minifusion.eval.toy_metrics import ToyMetrics
from minifusion.eval.video_metrics import frame_difference, reconstruction_report, ssim

FOUR_DIRECTIONS = ("left", "right", "up", "down")
GROUPS = ("all", "seen_pairs", "heldout_pairs")
METRICS_HELP = """\
what each figure means (JSON keys in brackets; see minifusion.eval):
  caption accuracy [caption_accuracy]: the shipped attribute classifier's answer on each generated video
    against what its prompt states, per attribute (colour, shape, motion, direction, speed, size,
    background; a plain prompt states normal speed and size on a black background) and for the whole
    caption (every attribute right). Real clips of the same prompts score ~100% (bar 98% per attribute).
  FVD [fvd]: Frechet distance between Gaussian fits of the classifier's penultimate features (96-d) of the
    generated videos and of real clips of the same prompts; lower is better. It grows as sets shrink, so
    compare runs of the same --num-videos only, next to [real.fvd_real_vs_real], the distance between two
    real sets of the same prompts (what a perfect generator would get).
  IS [inception_score]: exp(E KL(p(y|x) || p(y))) of the classifier's probabilities, per head; between 1 and
    the number of classes; [real.inception_score] is the same for real clips of the prompts (7 colours,
    4 shapes, 4 directions at most). Above the real clips' value means more varied than prompted (e.g.
    moving in 8 directions when 4 were asked for), not better.
  CLIPSIM [clipsim]: mean cosine similarity of the contrastive text-video model's embeddings of each
    video and its prompt; [clipsim_other_prompts] pairs each video with the next video's prompt (another
    colour and shape: the level of a wrong prompt), [real.clipsim] is real clips with their prompts.
  pixel checks [pixel]: weight-free: share whose dominant foreground colour / centroid direction is the
    prompted one, and the mean background flicker (colour units per frame; 0 = still background).
  frame change [pixel.frame_change_ratio]: mean |x_t+1 - x_t| of the generated videos over that of the
    real clips (1 = as much change per frame as the real motion; flicker or blur shift it).
  reconstruction [reconstruction]: on held-out clips, PSNR (dB), SSIM and flicker ratio (frame-to-frame
    change of the result over the ground truth's; 1 is right, above 1 flickers) of interpolating the
    true keyframes (pass 1: keyframes 4 frames apart; pass 2: 1 apart, quarter frames) and of the
    image and video decoders' round trips.
Every group is reported for all prompts, the seen colour-shape pairs and the held-out pairs."""


def prompt_grid(num_videos: int = 112) -> list[dict]:
    """The first ``num_videos`` prompts (cycling) of the balanced order described in the module docstring.

    Entry k: colour k % 7, shape k % 4, direction (k // 28 + (k % 28) // 7) % 4; the 112 entries are
    every (colour, shape, direction) once. Each is ``{"prompt", "color", "shape", "direction", "heldout"}``.
    """
    positive_int("num_videos", num_videos)
    out = []
    for k in range(num_videos):
        j = k % 112
        c, s, d = COLOR_NAMES[j % 7], SHAPES[j % 4], FOUR_DIRECTIONS[(j // 28 + (j % 28) // 7) % 4]
        out.append({"prompt": f"a {c} {s} moves {d}", "color": c, "shape": s, "direction": d,
                    "heldout": (c, s) in HELDOUT_COMBINATIONS})
    return out


def real_clips(grid: list[dict], num_frames: int, *, seed: int, stream: int) -> torch.Tensor:
    """(N, 3, num_frames, 64, 64) in [-1, 1]: a Moving Shapes clip per prompt, rendered at ``num_frames``
    evenly spaced times over the keyframes' span (source frames 0 to 28); ``stream`` picks a disjoint set."""
    times = np.linspace(0.0, 28.0, num_frames)
    clips = []
    for i, g in enumerate(grid):
        params = make_params(color=g["color"], shape=g["shape"], motion="moves", direction=g["direction"],
                             num_frames=8, frame_skip=4, seed=np.random.default_rng((seed, 1000 + stream, i)))
        clips.append(render_clip(params, times, 64))
    return torch.stack(clips)


def generate(pipe, prompts: list[str], *, passes: int, seed: int, batch_size: int, steps: int | None,
             guidance: float | None, interpolation_steps: int | None, progress: bool) -> torch.Tensor:
    """(N, 3, F, H, W) videos in [0, 1]; batch b uses a generator seeded with seed + b."""
    videos = []
    for b, start in enumerate(range(0, len(prompts), batch_size)):
        out = pipe(prompts[start:start + batch_size], interpolation_passes=passes, num_inference_steps=steps,
                   guidance_scale=guidance, interpolation_num_inference_steps=interpolation_steps, output_type="pt",
                   generator=torch.Generator().manual_seed(seed + b), progress=False)
        videos.append(out.frames.float().cpu())
        if progress:
            print(f"  generated {min(start + batch_size, len(prompts))}/{len(prompts)} videos", file=sys.stderr,
                  flush=True)
    return torch.cat(videos)


def pixel_checks(videos: torch.Tensor, real: torch.Tensor, grid: list[dict]) -> dict:
    """Weight-free checks of generated videos in [0, 1] against the prompts and real clips in [-1, 1]."""
    colors = dominant_color(videos, value_range=(0, 1))
    directions = motion_direction(videos, value_range=(0, 1))
    flicker = background_flicker(videos, value_range=(0, 1))
    change = frame_difference(videos * 2 - 1).double().sum() / frame_difference(real).double().sum()
    n = len(grid)
    return {"color_accuracy": sum(c == g["color"] for c, g in zip(colors, grid)) / n,
            "direction_accuracy": sum(d == g["direction"] for d, g in zip(directions, grid)) / n,
            "background_flicker": float(flicker.nanmean()) if torch.isfinite(flicker).any() else math.nan,
            "frame_change_ratio": float(change), "colors": colors, "directions": directions}


def reconstruction_metrics(pipe, *, num_clips: int, seed: int, interpolation_steps: int | None) -> dict:
    """PSNR, SSIM and flicker ratio of interpolation (both passes) and of the decoders on held-out clips."""
    from minifusion.data import MovingShapes
    from minifusion.eval.interpolation_eval import evaluate_interpolation
    from minifusion.training.recipes.decoder import reconstruct

    out: dict = {"num_clips": num_clips}
    if pipe.interpolation_unet is not None:
        steps = interpolation_steps or pipe.settings.interpolation_num_inference_steps
        ev = evaluate_interpolation(pipe.interpolation_unet, pipe.interpolation_scheduler, pipe.autoencoder,
                                    split="heldout", num_clips=num_clips, seed=seed, num_inference_steps=steps,
                                    guidance_scale=pipe.settings.interpolation_guidance_scale,
                                    sampler=pipe.interpolation_sampler(), strength=pipe.settings.interpolation_strength,
                                    return_frames=True)
        for key in ("pass1", "pass2"):
            res = ev.get(key)
            if res is None:
                continue
            frames = res.pop("frames")
            truth, model, blend = frames["truth"], frames["model"], frames["blend"]
            middle = torch.ones(truth.shape[2], dtype=torch.bool)
            middle[::4] = False  # keyframes every 4th frame
            res["ssim"] = float(ssim(model[:, :, middle], truth[:, :, middle]).double().mean())
            res["linear_blend_ssim"] = float(ssim(blend[:, :, middle], truth[:, :, middle]).double().mean())
            res["flicker_ratio"] = reconstruction_report(model, truth)["flicker_ratio"]
            out[f"interpolation_{key}"] = res
    clips = MovingShapes(split="heldout", num_frames=8, frame_skip=1, seed=seed, length=num_clips,
                         backgrounds=("black", "light"))
    truth = torch.stack([clips[i]["video"] for i in range(len(clips))])
    for name, model in (("image_decoder", pipe.autoencoder), ("video_decoder", pipe.video_decoder)):
        if model is not None:
            out[name] = reconstruction_report(reconstruct(model, truth), truth)
    return out


def _group_indices(grid: list[dict]) -> dict[str, list[int]]:
    return {"all": list(range(len(grid))), "seen_pairs": [i for i, g in enumerate(grid) if not g["heldout"]],
            "heldout_pairs": [i for i, g in enumerate(grid) if g["heldout"]]}


def evaluate_pipeline(pipe, *, num_videos: int = 112, seed: int = 0, passes: int = 1, steps: int | None = None,
                      guidance: float | None = None, interpolation_steps: int | None = None, batch_size: int = 16,
                      reconstruction_clips: int = 8, metrics: ToyMetrics | None = None, progress: bool = True) -> dict:
    """Every toy metric of ``pipe`` (a ``FusionFramesPipeline`` with 64x64 frames), as a JSON-ready dict."""
    check_int("num_videos", num_videos, minimum=2, note="(FVD needs two)")
    check_int("reconstruction_clips", reconstruction_clips, minimum=0, note="(0 skips them)")
    metrics = metrics or ToyMetrics.from_pretrained()
    grid = prompt_grid(num_videos)
    prompts = [g["prompt"] for g in grid]
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    videos = generate(pipe, prompts, passes=passes, seed=seed, batch_size=batch_size, steps=steps, guidance=guidance,
                      interpolation_steps=interpolation_steps, progress=progress)  # (N, 3, F, H, W) in [0, 1]
    seconds["generation"] = time.perf_counter() - start
    if tuple(videos.shape[-2:]) != (64, 64):
        raise ValueError(f"the metrics were trained on 64x64 Moving Shapes frames; this pipeline makes "
                         f"{videos.shape[-2]}x{videos.shape[-1]} frames")
    start = time.perf_counter()
    real_a = real_clips(grid, videos.shape[2], seed=seed, stream=1)
    real_b = real_clips(grid, videos.shape[2], seed=seed, stream=2)
    gen, ref_a, ref_b = (metrics.measure(videos, value_range=(0, 1)), metrics.measure(real_a),
                         metrics.measure(real_b))
    pixel = pixel_checks(videos, real_a, grid)
    groups = {}
    for name, idx in _group_indices(grid).items():
        if not idx:
            continue
        sub = [grid[i] for i in idx]
        report = metrics.report(gen.subset(idx), [prompts[i] for i in idx], reference=ref_a.subset(idx),
                                reference_2=ref_b.subset(idx))
        report["pixel"] = {k: v for k, v in pixel_checks(videos[idx], real_a[idx], sub).items()
                           if k not in ("colors", "directions")}
        groups[name] = report
    seconds["metrics"] = time.perf_counter() - start
    start = time.perf_counter()
    reconstruction = (reconstruction_metrics(pipe, num_clips=reconstruction_clips, seed=seed,
                                             interpolation_steps=interpolation_steps)
                      if reconstruction_clips else None)
    seconds["reconstruction"] = time.perf_counter() - start
    preds = gen.predictions()
    sims = metrics.similarities(gen, prompts)
    per_video = [{**g, "predicted": {k: v[i] for k, v in preds.items()}, "clipsim": float(sims[i]),
                  "pixel_color": pixel["colors"][i], "pixel_direction": pixel["directions"][i]}
                 for i, g in enumerate(grid)]
    return {"num_videos": num_videos, "num_frames": int(videos.shape[2]), "seed": seed, "passes": passes,
            "steps": steps or pipe.settings.num_inference_steps,
            "guidance": guidance if guidance is not None else pipe.settings.guidance_scale,
            "batch_size": batch_size, "torch_threads": torch.get_num_threads(), "seconds": seconds,
            "groups": groups, "reconstruction": reconstruction, "videos": per_video}


# -- printing ---------------------------------------------------------------------------------------------
def _fmt(value, kind: str = "f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.1%}" if kind == "%" else f"{value:.{kind}f}" if kind.isdigit() else f"{value:.3f}"


def format_report(result: dict) -> str:
    """The table ``evaluate`` prints: one column per group of prompts, real clips' values in brackets."""
    groups = [g for g in GROUPS if g in result["groups"]]
    cols = {g: result["groups"][g] for g in groups}
    width = 24
    lines = [f"{'':<34}" + "".join(f"{name.replace('_', ' '):>{width}}" for name in groups),
             f"{'videos':<34}" + "".join(f"{c['num_videos']:>{width}}" for c in cols.values())]

    def row(label, get, kind="%"):
        cells = []
        for c in cols.values():
            value, real = get(c)
            text = _fmt(value, kind) + ("" if real is None else f" ({_fmt(real, kind)})")
            cells.append(f"{text:>{width}}")
        lines.append(f"{label:<34}" + "".join(cells))

    lines.append("caption accuracy (real clips)")
    for name in ("color", "shape", "motion", "direction", "speed", "size", "background", "caption"):
        label = "  whole caption" if name == "caption" else f"  {name}"
        row(label, lambda c, n=name: (c["caption_accuracy"].get(n), c["real"]["caption_accuracy"].get(n)))
    row("FVD (real vs real)", lambda c: (c["fvd"], c["real"]["fvd_real_vs_real"]), "2")
    for name in ("color", "shape", "direction"):
        row(f"IS {name} (real)", lambda c, n=name: (c["inception_score"][n], c["real"]["inception_score"][n]), "2")
    row("CLIPSIM (real)", lambda c: (c["clipsim"], c["real"]["clipsim"]), "3")
    row("CLIPSIM, other prompts", lambda c: (c["clipsim_other_prompts"], None), "3")
    row("pixel check: colour", lambda c: (c["pixel"]["color_accuracy"], None))
    row("pixel check: direction", lambda c: (c["pixel"]["direction_accuracy"], None))
    row("background flicker", lambda c: (c["pixel"]["background_flicker"], None), "4")
    row("frame change / real clips'", lambda c: (c["pixel"]["frame_change_ratio"], None), "2")
    rec = result.get("reconstruction")
    if rec:
        lines.append(f"{'reconstruction, ' + str(rec['num_clips']) + ' held-out clips':<34}{'PSNR dB':>9}{'SSIM':>9}"
                     f"{'flicker ratio':>16}")
        for key, label in (("interpolation_pass1", "interpolation pass 1"), ("interpolation_pass2",
                                                                               "interpolation pass 2"),
                           ("image_decoder", "image decoder"), ("video_decoder", "video decoder")):
            r = rec.get(key)
            if r:
                lines.append(f"  {label:<32}{_fmt(r['psnr_db'], '2'):>9}{_fmt(r['ssim'], '3'):>9}"
                             f"{_fmt(r['flicker_ratio'], '3'):>16}"
                             + (f"   (linear blend {r['linear_blend_psnr_db']:.2f} dB)" if "linear_blend_psnr_db" in r
                                else ""))
    s = result["seconds"]
    lines.append(f"{result['num_videos']} videos of {result['num_frames']} frames, {result['steps']} keyframe steps, "
                 f"guidance {result['guidance']:g}, seed {result['seed']}; generation {s['generation']:.0f} s "
                 f"({s['generation'] / result['num_videos']:.1f} s per video), metrics {s['metrics']:.0f} s, "
                 f"reconstruction {s['reconstruction']:.0f} s, torch threads: {result['torch_threads']}")
    return "\n".join(lines)


def _json_ready(value):
    """NaN and inf -> None (JSON has neither); tensors and numpy numbers -> floats."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, np.integer)) or (torch.is_tensor(value) and value.ndim == 0):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(args) -> int:
    """The ``evaluate`` command on parsed arguments (see ``minifusion.cli``)."""
    from minifusion.pipeline import FusionFramesPipeline
    from minifusion.pipelines import pretrained

    start = time.perf_counter()
    folder = pretrained() if args.checkpoint is None else args.checkpoint
    metrics = ToyMetrics.from_pretrained(args.metrics)
    pipe = FusionFramesPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    result = evaluate_pipeline(pipe, num_videos=args.num_videos, seed=args.seed, passes=args.passes, steps=args.steps,
                               guidance=args.guidance, interpolation_steps=args.interpolation_steps,
                               batch_size=args.batch_size, reconstruction_clips=args.reconstruction_clips,
                               metrics=metrics, progress=not args.no_progress)
    result = {"checkpoint": str(folder), "metric_weights": str(args.metrics or "shipped"), **result}
    result["seconds"]["total"] = time.perf_counter() - start
    print(f"evaluate {folder}")
    print(format_report(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_json_ready(result), indent=2) + "\n")
    print(f"wrote {args.json} in {result['seconds']['total']:.0f} s")
    return 0


__all__ = ["FOUR_DIRECTIONS", "METRICS_HELP", "evaluate_pipeline", "format_report", "generate", "pixel_checks",
           "prompt_grid", "real_clips", "reconstruction_metrics", "run"]
