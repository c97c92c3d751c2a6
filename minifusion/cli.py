"""Command line: ``python -m minifusion SUBCOMMAND ...`` (``--help`` on each).

Subcommands grow with the pipeline; each is a thin wrapper over a package function.
"""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path


def _existing_or_creatable_dir(value: str) -> Path:
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"--out {value!r} exists and is not a folder")
    return path


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be an integer >= 1")
    return n


def cmd_render(args: argparse.Namespace) -> int:
    """Render Moving Shapes clips as GIFs."""
    from minifusion.data import MovingShapes
    from minifusion.viz import save_gif

    args.out.mkdir(parents=True, exist_ok=True)
    ds = MovingShapes(split=args.split, num_frames=args.frames, size=args.size, seed=args.seed)
    lines = []
    for i in range(args.num):
        item = ds[i]
        path = save_gif(item["video"], args.out / f"{args.split}_{i:03d}.gif", fps=args.fps, scale=args.scale)
        lines.append(f"{path.name}\t{item['caption']}")
        print(f"{path}  {item['caption']!r}")
    (args.out / "captions.txt").write_text("\n".join(lines) + "\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job for now: a few Moving Shapes clips and the forward noising process."""
    import torch

    from minifusion.data import MovingShapes
    from minifusion.diffusion import DDPMScheduler
    from minifusion.viz import forward_noising_video, save_gif, show_frames

    start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ds = MovingShapes(split="train", num_frames=16, size=64, seed=args.seed)
    written = []
    clips = [ds[i] for i in range(args.num)]
    for i, item in enumerate(clips):
        written.append((save_gif(item["video"], out / f"clip_{i}.gif", fps=8, scale=2), item["caption"]))
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    x0 = clips[0]["video"][:, 0]  # (C, H, W): the first frame of the first clip
    timesteps = torch.linspace(0, scheduler.num_train_timesteps - 1, 24).round().long()
    noising = forward_noising_video(x0, scheduler, timesteps, seed=args.seed)
    written.append((save_gif(noising, out / "forward_noising.gif", fps=6, scale=2), "forward process x_t, t = 0..999"))
    fig = show_frames(noising[:, ::4], labels=[f"t={int(t)}" for t in timesteps[::4]])
    fig.savefig(out / "forward_noising.png", dpi=100, bbox_inches="tight")
    written.append((out / "forward_noising.png", "the same, as a strip"))
    for path, what in written:
        print(f"{path}  ({what})")
    print(f"wrote {len(written)} files to {out}/ in {time.perf_counter() - start:.1f} s")
    return 0


def _output_file(value: str) -> Path:
    path = Path(value)
    if path.suffix.lower() != ".gif":
        raise argparse.ArgumentTypeError(f"--out {value!r} must end in .gif (add --mp4 for an MP4 beside it)")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"--out {value!r}: the folder {str(path.parent)!r} does not exist "
                                         "(create it first)")
    return path


def _guidance(value: str) -> float:
    try:
        g = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"guidance {value!r} is not a number") from None
    if not g >= 0 or g == float("inf"):  # also catches NaN
        raise argparse.ArgumentTypeError(f"guidance {value!r} must be a finite number >= 0 (1 = no guidance)")
    return g


def cmd_generate(args: argparse.Namespace) -> int:
    """Text to video: keyframes, then 0-2 FusionFrames interpolation passes, decoded to a GIF (or MP4)."""
    import torch

    from minifusion.pipeline import FusionFramesPipeline
    from minifusion.pipelines import pretrained
    from minifusion.viz import save_gif

    start = time.perf_counter()
    folder = pretrained() if args.checkpoint is None else args.checkpoint
    pipe = FusionFramesPipeline.from_pretrained(folder)
    frames = pipe(args.prompt, negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
                  guidance_scale=args.guidance, interpolation_passes=args.passes, scheduler=args.scheduler,
                  generator=torch.Generator().manual_seed(args.seed), output_type="pt",
                  progress=not args.no_progress).frames[0]  # (3, F, H, W) in [0, 1]
    paths = [save_gif(frames, args.out, fps=args.fps, scale=args.scale, value_range=(0, 1))]
    if args.mp4:
        from minifusion.viz import save_mp4

        paths.append(save_mp4(frames, args.out.with_suffix(".mp4"), fps=args.fps, scale=args.scale,
                              value_range=(0, 1)))
    seconds = time.perf_counter() - start
    for path in paths:
        print(f"{path}  ({frames.shape[1]} frames of {frames.shape[-1]}x{frames.shape[-2]}, {args.prompt!r}, "
              f"seed {args.seed})")
    print(f"generated in {seconds:.1f} s")
    return 0


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"config file {value!r} does not exist")
    return path


def _existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"data folder {value!r} does not exist or is not a folder")
    return path


def _nonnegative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be an integer >= 0")
    return n


def _stage_config(path: Path | None, stage: str):
    """A recipe override file, or the ``stage`` section of a pipeline config file (keys = stage names)."""
    import json

    from minifusion.training.recipes.all_stages import ORDER

    if path is None or stage == "all":
        return path
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {str(path)!r} is not valid JSON: {e}") from None
    if isinstance(data, dict) and data and set(data) <= set(ORDER):  # a pipeline config such as configs/*.json
        return data.get(stage, {})
    return path


# OS errors of a full or read-only disk: said plainly, without a traceback
_DISK_ERRORS = tuple(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS")
                     if hasattr(errno, name))


def cmd_train(args: argparse.Namespace) -> int:
    """Train one stage of the pipeline (or all of them, in order) into the pipeline folder --out."""
    from minifusion.training.distributed import distributed_session
    from minifusion.training.recipes.all_stages import StageFailed

    with distributed_session() as ctx:
        try:
            path, seconds = _train(args)
        except (FloatingPointError, OSError, StageFailed) as e:  # NaN losses, a failed write or stage: not bad input
            if not isinstance(e, OSError) or e.errno in _DISK_ERRORS or "checkpoint" in str(e):
                print(f"error: {e}", file=sys.stderr)
                return 1
            raise
    if ctx.is_main:
        print(f"{args.stage}: wrote {path} in {seconds / 60:.1f} min")
    return 0


def _train(args: argparse.Namespace) -> tuple[Path, float]:
    from minifusion.training.recipes import train_stage

    extra = {}
    if args.temporal is not None:
        if args.stage not in ("keyframes", "all"):
            raise ValueError(f"--temporal applies to the keyframes stage only, not to {args.stage!r}")
        extra["temporal"] = args.temporal
    if args.variant is not None:
        if args.stage not in ("decoder", "all"):
            raise ValueError(f"--variant applies to the decoder stage only, not to {args.stage!r}")
        extra["variant"] = args.variant
    if args.skip:
        if args.stage != "all":
            raise ValueError(f"--skip applies to the stage 'all' only, not to {args.stage!r}")
        extra["skip"] = tuple(args.skip)
    if args.jobs != 1:
        if args.stage != "all":
            raise ValueError(f"--jobs applies to the stage 'all' only, not to {args.stage!r}")
        extra["jobs"] = args.jobs
    start = time.perf_counter()
    path = train_stage(args.stage, args.out, steps=args.steps, config=_stage_config(args.config, args.stage),
                       resume=args.resume, data_dir=args.data, seed=args.seed, progress=not args.no_progress,
                       **extra)
    return path, time.perf_counter() - start


def _add_train_parser(sub) -> None:
    from minifusion.training.recipes import STAGES

    stages = "\n".join(f"  {name:<12} {stage.help}" + (f" (needs: {', '.join(stage.requires)})"
                                                        if stage.requires else "") for name, stage in STAGES.items())
    p = sub.add_parser(
        "train", help="train a stage of the pipeline (" + ", ".join(STAGES) + ")",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=cmd_train.__doc__ + "\n\nstages, in training order:\n" + stages
        + "\n  all          every stage above in this order into one pipeline folder; finished stages are skipped",
        epilog="All stages write into one pipeline folder: OUT/<part>/ (save_pretrained weights) and "
               "OUT/runs/<stage>/ (recipe.json, log.csv, loss.png, checkpoints/, metrics.json).\n"
               "Under torchrun the same command trains on several processes (DistributedDataParallel; gloo on "
               "CPU, NCCL on GPU): each takes an equal share of the recipe's batch, the result matches one "
               "process, rank 0 writes the files (docs/distributed.md).\n"
               "Examples:\n  python -m minifusion train autoencoder --out runs/shapes --steps 2000\n"
               "  python -m minifusion train all --out runs/shapes --config configs/moving-shapes-motion.json --skip mfi "
               "--jobs 2\n"
               "  torchrun --standalone --nproc_per_node=2 -m minifusion train t2i --out runs/shapes   # 2 processes",
    )
    p.add_argument("stage", choices=[*STAGES, "all"], metavar="STAGE", help="one of: " + ", ".join([*STAGES, "all"]))
    p.add_argument("--out", type=_existing_or_creatable_dir, required=True,
                   help="pipeline folder (created); later stages read the parts earlier ones wrote there")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="optimiser steps (default: the recipe's; with --resume, the new total)")
    p.add_argument("--config", type=_existing_file, default=None, metavar="FILE",
                   help="JSON file overriding any recipe keys, e.g. {\"training\": {\"lr\": 3e-4}}; "
                        "unknown keys are an error that lists the allowed ones. A pipeline config whose keys are "
                        "stage names (configs/moving-shapes.json) gives each stage its section")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT/runs/STAGE from its newest checkpoint (with its saved recipe "
                        "unless --config is given)")
    p.add_argument("--data", type=_existing_dir, default=None, metavar="DIR",
                   help="train on your own clip folder (GIFs / frame folders + captions.txt) instead of Moving "
                        "Shapes; the text vocabulary is rebuilt from its captions")
    p.add_argument("--seed", type=_nonnegative_int, default=None,
                   help="seed of the training run and of the data (default: the recipe's, 0)")
    from minifusion.models.keyframe_unet import TEMPORAL_VARIANTS

    p.add_argument("--temporal", choices=TEMPORAL_VARIANTS, default=None, metavar="VARIANT",
                   help="keyframes stage: how time is added to the frozen T2I U-Net, one of "
                        + ", ".join(TEMPORAL_VARIANTS) + " (default: the recipe's, conv1d_attn1d_blocks)")
    from minifusion.training.recipes.decoder import VARIANTS as DECODER_VARIANTS

    p.add_argument("--variant", choices=DECODER_VARIANTS, default=None, metavar="VARIANT",
                   help="decoder stage: the temporal video decoder, one of " + ", ".join(DECODER_VARIANTS)
                        + " (default: the recipe's)")
    p.add_argument("--skip", nargs="+", choices=list(STAGES), default=None, metavar="STAGE",
                   help="stage all: stages to leave out, e.g. --skip mfi")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="stage all: train up to N stages at once, each in its own process, each after the stages "
                        "it reads (default 1: one after another). --jobs 2 on two cores: text_encoder beside "
                        "autoencoder, decoder beside t2i, interpolation beside keyframes; logs in OUT/logs/")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or summary line")
    p.set_defaults(func=cmd_train)


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
    return Path(__file__).resolve().parents[1] / "benchmarks"


def _json_file(value: str) -> Path:
    path = Path(value)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"--json {value!r}: the folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"--json {value!r} is a folder, not a file")
    return path


def _pipeline_dir(value: str) -> Path:
    path = Path(value)
    if not (path / "model_index.json").is_file():
        raise argparse.ArgumentTypeError(f"--checkpoint {value!r} is not a pipeline folder (no model_index.json in it)")
    return path


def cmd_bench(args: argparse.Namespace) -> int:
    """Speed and memory benchmarks of issue 6, side by side with peer U-Nets; tables, and JSON with --json."""
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


def _add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed and memory benchmarks, side by side with peer U-Nets (issue 6)",
                       description=cmd_bench.__doc__, epilog=BENCH_FIGURES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=_json_file, default=None, metavar="FILE",
                   help="also write every figure to this JSON file (its folder must exist)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, one step: checks that every benchmark runs; not a measurement")
    p.add_argument("--no-peers", action="store_true",
                   help="leave out the peer U-Nets (diffusers, video-diffusion-pytorch)")
    p.add_argument("--checkpoint", type=_pipeline_dir, default=None, metavar="DIR",
                   help="pipeline folder for the end-to-end section (default: the shipped "
                        "data_samples/checkpoints/moving-shapes-motion)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="torch threads for every section (default: torch's choice); data rendering uses one")
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    from minifusion.eval.ablate_command import add_ablate_parser
    from minifusion.eval.evaluate_command import add_evaluate_parser
    from minifusion.eval.probe_command import add_probe_text_parser
    from minifusion.eval.t2i_scores import add_evaluate_t2i_parser

    parser = argparse.ArgumentParser(
        prog="python -m minifusion",
        description="minifusion: FusionFrames text-to-video diffusion at laptop scale.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="render sample clips and the forward noising process to a folder",
                       description=cmd_demo.__doc__)
    p.add_argument("--out", type=_existing_or_creatable_dir, default=Path("outputs"), help="output folder (created)")
    p.add_argument("--num", type=_positive_int, default=4, help="number of clips (default 4)")
    p.add_argument("--seed", type=int, default=0, help="dataset and noise seed (default 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("render", help="render Moving Shapes clips as GIFs with a captions file",
                       description=cmd_render.__doc__)
    p.add_argument("--out", type=_existing_or_creatable_dir, required=True, help="output folder (created)")
    p.add_argument("--split", default="train", help="train, val or heldout (default train)")
    p.add_argument("--num", type=_positive_int, default=8, help="number of clips (default 8)")
    p.add_argument("--frames", type=_positive_int, default=16, help="frames per clip (default 16)")
    p.add_argument("--size", type=_positive_int, default=64, help="frame size in pixels (default 64)")
    p.add_argument("--fps", type=_positive_int, default=8, help="GIF frame rate (default 8)")
    p.add_argument("--scale", type=_positive_int, default=1, help="GIF upscale factor (default 1)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("generate", help="text to video with a trained pipeline (default: the shipped one)",
                       description=cmd_generate.__doc__,
                       epilog='Example: python -m minifusion generate "a red circle moves right" --out outputs/demo.gif')
    p.add_argument("prompt", help='a Moving Shapes caption, e.g. "a red circle moves right"')
    p.add_argument("--out", type=_output_file, default=Path("outputs/demo.gif"),
                   help="output GIF; its folder must exist (default outputs/demo.gif)")
    p.add_argument("--mp4", action="store_true",
                   help="also write an MP4 beside the GIF (needs: pip install 'minifusion[video]')")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator (default 0)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="keyframe denoising steps (default: the checkpoint's, see model_index.json)")
    p.add_argument("--guidance", type=_guidance, default=None,
                   help="classifier-free guidance scale s (diffusers' convention; the paper's w = s - 1; "
                        "1 = no guidance; default: the checkpoint's)")
    p.add_argument("--negative-prompt", default=None, help="text to steer away from (default: the null embedding)")
    p.add_argument("--scheduler", choices=("dpm", "dpm-sde", "euler", "ddim", "ddpm"), default=None,
                   help="sampler for both stages: DPM-Solver++ 2M, its SDE variant, Euler, DDIM or DDPM (default: "
                        "the checkpoint's schedulers, see model_index.json)")
    p.add_argument("--passes", type=int, choices=(0, 1, 2), default=1,
                   help="interpolation passes: 0 -> 8 keyframes, 1 -> 29 frames, 2 -> 113 frames (default 1)")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                   help="pipeline folder (default: the shipped data_samples/checkpoints/moving-shapes-motion)")
    p.add_argument("--fps", type=_positive_int, default=8, help="frame rate of the file (default 8)")
    p.add_argument("--scale", type=_positive_int, default=2, help="GIF upscale factor (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_generate)

    _add_train_parser(sub)
    add_evaluate_parser(sub)
    add_probe_text_parser(sub)
    add_evaluate_t2i_parser(sub)
    add_ablate_parser(sub)
    _add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, ImportError) as e:  # bad input or a missing optional package: a message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
