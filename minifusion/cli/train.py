"""``python -m minifusion train STAGE``: one stage of the pipeline, or all of them, into a pipeline folder."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

from minifusion import argtypes
from minifusion.json_files import read_json


def _stage_config(path: Path | None, stage: str):
    """A recipe override file, or the ``stage`` section of a pipeline config file (keys = stage names)."""

    from minifusion.training.recipes.all_stages import ORDER

    if path is None or stage == "all":
        return path
    data = read_json(path, "config file")
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


def add_parser(sub) -> None:
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
    p.add_argument("--out", type=argtypes.output_folder, required=True,
                   help="pipeline folder (created); later stages read the parts earlier ones wrote there")
    p.add_argument("--steps", type=argtypes.positive_int, default=None,
                   help="optimiser steps (default: the recipe's; with --resume, the new total)")
    p.add_argument("--config", type=argtypes.config_file, default=None, metavar="FILE",
                   help="JSON file overriding any recipe keys, e.g. {\"training\": {\"lr\": 3e-4}}; "
                        "unknown keys are an error that lists the allowed ones. A pipeline config whose keys are "
                        "stage names (configs/moving-shapes.json) gives each stage its section")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT/runs/STAGE from its newest checkpoint (with its saved recipe "
                        "unless --config is given)")
    p.add_argument("--data", type=argtypes.data_folder, default=None, metavar="DIR",
                   help="train on your own clip folder (GIFs / frame folders + captions.txt) instead of Moving "
                        "Shapes; the text vocabulary is rebuilt from its captions")
    p.add_argument("--seed", type=argtypes.nonnegative_int, default=None,
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
    p.add_argument("--jobs", type=argtypes.positive_int, default=1, metavar="N",
                   help="stage all: train up to N stages at once, each in its own process, each after the stages "
                        "it reads (default 1: one after another). --jobs 2 on two cores: text_encoder beside "
                        "autoencoder, decoder beside t2i, interpolation beside keyframes; logs in OUT/logs/")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or summary line")
    p.set_defaults(func=cmd_train)
