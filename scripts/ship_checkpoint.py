"""Copy a trained pipeline folder into ``data_samples/checkpoints/NAME`` (half-precision weights) with its card.

The card (``README.md`` beside the weights) is written from what the training runs recorded:
each stage's recipe, step count, last logged loss, seconds per step and training time (from
``OUT/runs/STAGE/log.csv``), its metrics (``metrics.json``), plus the commands given with
``--command``, the seed and the hardware. The runs' small files (recipe, metrics, log, loss
plot, sample pictures) are copied to ``training/STAGE/`` so every figure can be traced.

    python scripts/ship_checkpoint.py --from runs/shapes --command "python -m minifusion train all ..."
    python scripts/ship_checkpoint.py --from runs/interp --stage interpolation   # replace one retrained stage

With ``--stage`` only that stage's components (``STAGE_PARTS``) and ``training/STAGE/`` files are
replaced in the shipped folder and its ``training/summary.json`` entry rewritten; the card is left
as it is (edit its lines for the stage by hand, from the new ``training/STAGE/metrics.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import sys
from pathlib import Path

import torch

from minifusion.models import InterpolationUNet, UNet
from minifusion.pipeline import FusionFramesPipeline
from minifusion.pipelines.model_index import CHECKPOINTS_DIR, DEFAULT_CHECKPOINT

# "keyframes_continued": a run that warm-started from the keyframes stage (recipe ``init_from``), if any
STAGES = ("text_encoder", "autoencoder", "t2i", "keyframes", "keyframes_continued", "interpolation", "decoder", "mfi")
RUN_FILES = ("recipe.json", "metrics.json", "log.csv", "loss.png", "motion.csv", "motion_samples.png",
             "reconstructions.png", "samples.png", "interpolation.png", "compare.png")
EXTRA_PARTS = {"unet": UNet}  # the T2I U-Net (notebook 06 samples it); not a pipeline component
# what --stage replaces: folder -> model class (None: a scheduler folder, copied as it is)
STAGE_PARTS = {"interpolation": {"interpolation_unet": InterpolationUNet, "interpolation_scheduler": None}}


def log_summary(path: Path) -> dict:
    """Steps, last loss, median seconds per step and training seconds (sum over resumed sessions)."""
    rows = list(csv.DictReader(path.open()))
    if not rows:
        return {}
    sessions, last = [], 0.0
    for r in rows:  # wall_time restarts at 0 when a run is resumed
        t = float(r["wall_time"])
        if t < last:
            sessions.append(last)
        last = t
    sessions.append(last)
    rates = sorted(float(r["steps_per_sec"]) for r in rows if float(r["steps_per_sec"]) > 0)
    return {"steps": int(rows[-1]["step"]), "last_loss": float(rows[-1]["loss"]),
            "seconds_per_step": 1 / rates[len(rates) // 2] if rates else None,
            "training_seconds": sum(sessions), "sessions": len(sessions)}


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, no GPU, fp32, torch {torch.__version__}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, required=True, help="trained pipeline folder")
    parser.add_argument("--name", default="moving-shapes", help="checkpoint name (default moving-shapes)")
    parser.add_argument("--command", action="append", default=[], help="a command that trained it (repeatable)")
    parser.add_argument("--note", action="append", default=[], help="a line for the card's notes (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default="configs/moving-shapes.json", help="the train all config the card names")
    parser.add_argument("--threads", default="1 torch thread per training process")
    parser.add_argument("--max-mb", type=float, default=50.0, help="refuse to ship more than this (default 50)")
    parser.add_argument("--card-only", action="store_true", help="only rewrite README.md of a shipped folder")
    parser.add_argument("--stage", choices=sorted(STAGE_PARTS), default=None,
                        help="replace only this retrained stage (its parts and training files) in the shipped folder")
    parser.add_argument("--quality", type=Path, default=None,
                        help="JSON written by benchmarks/bench_quality.py --json, quoted in the card")
    args = parser.parse_args(argv)

    target = CHECKPOINTS_DIR / args.name
    if args.card_only:
        stages = json.loads((target / "training" / "summary.json").read_text())
        size_mb = sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and p.name != "README.md") / 2**20
        (target / "README.md").write_text(card(args, stages, size_mb))
        print(f"rewrote {target / 'README.md'}")
        return 0
    if args.stage:
        return replace_stage(args.source, target, args.stage)
    pipe = FusionFramesPipeline.from_pretrained(args.source)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, dtype=torch.float16)
    for name, cls in EXTRA_PARTS.items():
        if (args.source / name).is_dir():
            cls.from_pretrained(args.source / name).save_pretrained(tmp / name, dtype=torch.float16)
    stages = {}
    for stage in STAGES:
        run = args.source / "runs" / stage
        if not run.is_dir():
            continue
        dest = tmp / "training" / stage
        dest.mkdir(parents=True)
        for name in RUN_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, dest / name)
        metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
        stages[stage] = {**(log_summary(run / "log.csv") if (run / "log.csv").is_file() else {}), "metrics": metrics}
    size_mb = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) / 2**20
    if size_mb > args.max_mb:
        raise SystemExit(f"{tmp} holds {size_mb:.1f} MB, over --max-mb {args.max_mb}")
    (tmp / "README.md").write_text(card(args, stages, size_mb))
    (tmp / "training" / "summary.json").write_text(json.dumps(stages, indent=2, default=str) + "\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    print(f"shipped {args.source} -> {target} ({size_mb:.1f} MB)")
    return 0


def replace_stage(source: Path, target: Path, stage: str) -> int:
    """Copy ``stage``'s parts (float16 weights) and run files from ``source`` into the shipped ``target``."""
    run = source / "runs" / stage
    if not (run / "metrics.json").is_file():
        raise SystemExit(f"{run / 'metrics.json'} does not exist: train the {stage} stage into {source} first")
    for part, model_class in STAGE_PARTS[stage].items():
        if model_class is None:
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            shutil.rmtree(target / part, ignore_errors=True)
            model_class.from_pretrained(source / part).save_pretrained(target / part, dtype=torch.float16)
    dest = target / "training" / stage
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in RUN_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
    summary_path = target / "training" / "summary.json"
    stages = json.loads(summary_path.read_text())
    stages[stage] = {**log_summary(run / "log.csv"), "metrics": json.loads((run / "metrics.json").read_text())}
    summary_path.write_text(json.dumps(stages, indent=2, default=str) + "\n")
    print(f"replaced {stage} in {target} from {source}: {', '.join(STAGE_PARTS[stage])}, training/{stage}/")
    return 0


def card(args, stages: dict, size_mb: float) -> str:
    load_name = "" if args.name == DEFAULT_CHECKPOINT else repr(args.name)  # pretrained() loads the default
    lines = [f"# `{args.name}`: the shipped FusionFrames pipeline for Moving Shapes", "",
             "Trained on this project's own Moving Shapes renders by its own recipes "
             "(`python -m minifusion train ...`); nothing was downloaded. Load it with "
             f"`FusionFramesPipeline.from_pretrained(minifusion.pretrained({load_name}))`.", "",
             f"- hardware: {hardware()}; {args.threads}",
             f"- seed: {args.seed} (training and data)",
             f"- weights stored as float16 ({size_mb:.1f} MB in all); they load as float32",
             f"- config: `{args.config}` (each stage's recipe is in `training/STAGE/recipe.json`)", "",
             "## Commands", "", "```"] + args.command + ["```", "", "## Stages", "",
             "| stage | steps | training time | s/step | last logged loss | result |",
             "|---|---|---|---|---|---|"]
    for stage, s in stages.items():
        m = s["metrics"]
        result = {
            "autoencoder": lambda: f"val PSNR {m.get('val_psnr_db', float('nan')):.2f} dB",
            "text_encoder": lambda: (f"tokens read back: {m['token_accuracy_clean']:.1%} clean, "
                                     f"{m['token_accuracy_corrupted']:.1%} corrupted ({m['eval_captions']} captions)"
                                     if "token_accuracy_corrupted" in m else ""),
            "t2i": lambda: "see training/t2i/samples.png",
            "keyframes": lambda: (f"motion check: colour {m['motion']['color_accuracy']:.0%}, direction "
                                  f"{m['motion']['direction_accuracy']:.0%} of {m['motion']['num_videos']} videos"
                                  if "motion" in m else ""),
            "interpolation": lambda: "held-out keyframes, PSNR of the middle frames: " + "; ".join(
                f"{k} {m['eval'][k]['psnr_db']:.2f} dB vs pixel blend {m['eval'][k]['linear_blend_psnr_db']:.2f} dB"
                for k in ("pass1", "pass2") if isinstance(m.get("eval", {}).get(k), dict)),
            "decoder": lambda: (f"{m['variant']}: PSNR {m['video_decoder']['psnr_db']:.2f} dB, SSIM "
                                f"{m['video_decoder']['ssim']:.3f}, flicker ratio {m['video_decoder']['flicker_ratio']:.3f}"
                                f" (image decoder {m['image_decoder']['psnr_db']:.2f} dB, "
                                f"{m['image_decoder']['ssim']:.3f}, {m['image_decoder']['flicker_ratio']:.3f})"
                                if "video_decoder" in m else ""),
        }
        result["keyframes_continued"] = result["keyframes"]
        result = result.get(stage, lambda: "")()
        minutes = s.get("training_seconds", 0) / 60
        sessions = f" ({s['sessions']} sessions)" if s.get("sessions", 1) > 1 else ""
        lines.append(f"| {stage} | {s.get('steps', '?')} | {minutes:.1f} min{sessions} | "
                     f"{s.get('seconds_per_step') or float('nan'):.2f} | {s.get('last_loss', float('nan')):.4g} | "
                     f"{result} |")
    lines += ["", "Training time is the sum of the logged sessions (a resumed run adds one); the machine was "
              "shared with other work, so times are upper bounds.", ""]
    if args.note:
        lines += ["## Notes", ""] + [f"- {n}" for n in args.note] + [""]
    lines += ["## Quality", ""]
    if args.quality is not None and args.quality.is_file():
        q = json.loads(args.quality.read_text())
        options = "" if Path(q["checkpoint"]).name == DEFAULT_CHECKPOINT else f" --checkpoint {q['checkpoint']}"
        options += "" if "interpolation" in q else " --interpolation-clips 0"  # the interpolation part was skipped
        lines += [f"`python benchmarks/bench_quality.py{options} --json {args.quality.as_posix()}` (seed {q['seed']}) "
                  "printed:", ""]
        for key in ("motion_29", "motion_113"):
            m = q.get(key)
            if not m:
                continue
            lines += [f"| prompts `a {{color}} {{shape}} moves {{direction}}`, {m['num_frames']} frames | pairs | videos "
                      "| colour | shape | direction | steady | one object | all three |", "|---|---|---|---|---|---|---|---|---|"]
            for group in ("axis", "diagonal", "all"):
                for pairs in ("all", "seen", "heldout"):
                    r = m["summary"][group][pairs]
                    if r["num_videos"]:
                        lines.append(f"| {group} | {pairs} | {r['num_videos']} | " + " | ".join(
                            f"{r[k]:.1%}" for k in ("color", "shape", "direction", "steady", "one_object", "all_right"))
                            + " |")
            lines.append("")
        ev = q.get("interpolation")
        if ev:
            lines += ["", "| interpolating true keyframes of held-out clips | model | pixel blend | latent blend "
                      "| autoencoder round trip | latent MSE: model | latent MSE: latent blend |",
                      "|---|---|---|---|---|---|---|"]
            for k in ("pass1", "pass2"):
                r = ev.get(k)
                if r:
                    lines.append(f"| {k} (keyframes {r['frame_skip']:g} frames apart) | {r['psnr_db']:.2f} dB | "
                                 f"{r['linear_blend_psnr_db']:.2f} dB | {r.get('latent_blend_psnr_db', float('nan')):.2f}"
                                 f" dB | {r['autoencoder_psnr_db']:.2f} dB | {r.get('latent_mse', float('nan')):.4f} | "
                                 f"{r.get('latent_blend_latent_mse', float('nan')):.4f} |")
        lines.append("")
    else:
        lines += ["Measured by `python benchmarks/bench_quality.py`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
