"""``python -m minifusion ablate table1|table2|table3``: the command line of ``minifusion.eval.ablation``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from minifusion import argtypes

ABLATION_BASE = "moving-shapes"  # the shipped pipeline with the paper's keyframe design: the tables' base

ABLATE_HELP = """\
tables (each variant trained from the same base weights, with the same budget and seeds):
  table1  keyframes stage, the four temporal variants (FusionFrames Table 1): FVD, IS, CLIPSIM and caption
          accuracy of generated keyframe videos (the project's own small metric models), pixel direction
  table2  FusionFrames interpolation vs masked-frame interpolation (Table 2): PSNR of the middle frames
          (pass 1, pass 2), flicker ratio, FVD, seconds per video, parameters
  table3  image decoder vs the four temporal decoders (Table 3): PSNR, SSIM, flicker ratio, parameters

Every (variant, seed) run is kept in OUT/TABLE/VARIANT/seed_K/ and skipped once it has a result at the
same --steps and evaluation options, so a table can be filled over several sittings (an interrupted run
resumes from its checkpoint). OUT/TABLE.md and OUT/TABLE.json hold mean +- sample std over the seeds,
the hardware and the command, the training cost per step, and list the runs still missing;
--table-only rewrites them from the finished runs while another process is still filling the table.

Example: python -m minifusion ablate table3 --steps 600 --seeds 3 --out results
"""


def cmd_ablate(args: argparse.Namespace) -> int:
    """Re-run one of the paper's ablation tables at toy scale (train, evaluate, tabulate; resumable)."""
    import torch

    from minifusion.eval.ablation import AblationOptions, run_table, write_table
    from minifusion.eval.ablation_tables import TABLES
    from minifusion.pipelines.model_index import pretrained

    if args.figure_seed is not None and not args.figure:
        raise ValueError(f"--figure-seed {args.figure_seed} draws the figure of --figure; give --figure too")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    base = args.base if args.base is not None else pretrained(ABLATION_BASE)
    if not Path(base).is_dir():
        raise ValueError(f"base pipeline folder {str(base)!r} does not exist")
    spec = TABLES[args.table]
    options = AblationOptions(num_videos=args.num_videos, num_clips=args.num_clips,
                              num_inference_steps=args.eval_steps, device=args.device)
    if args.table_only:  # re-render from the finished runs, stating what ran them (the earlier table's lines)
        previous = args.out / f"{spec.key}.json"
        stated = json.loads(previous.read_text()) if previous.is_file() else {}
        # no earlier table: the command that fills this one is this command line without --table-only
        fill = "python -m minifusion " + " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--table-only")
        path = write_table(spec, out=args.out, steps=args.steps or spec.default_steps, seeds=args.seeds,
                           options=options, command=stated.get("command", fill), machine=stated.get("hardware"))
    else:
        path = run_table(spec, out=args.out, base=Path(base), steps=args.steps, seeds=args.seeds,
                         variants=tuple(args.variants) if args.variants else None, options=options,
                         progress=not args.no_progress)
    print(path.read_text())
    print(f"wrote {path} and {path.with_suffix('.json')}")
    if args.figure:
        from minifusion.eval.ablation_figures import table_figure

        print(f"wrote {table_figure(spec.key, args.out, seed=args.figure_seed, num_inference_steps=args.eval_steps)}")
    return 0


def add_parser(sub) -> None:
    from minifusion.eval.ablation_tables import TABLES

    p = sub.add_parser("ablate", help="re-run the paper's Table 1, 2 or 3 at toy scale (resumable)",
                       description=cmd_ablate.__doc__, epilog=ABLATE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=sorted(TABLES), help="which table")
    p.add_argument("--out", type=Path, default=Path("results"), help="results folder (default results/)")
    p.add_argument("--steps", type=argtypes.positive_int, default=None,
                   help="training steps per run (default: the table's: "
                        + ", ".join(f"{k} {s.default_steps}" for k, s in sorted(TABLES.items())) + ")")
    p.add_argument("--seeds", type=argtypes.positive_int, default=3, help="seeds 0..K-1 per variant (default 3)")
    p.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                   help="only these variants (default: all of the table's)")
    p.add_argument("--base", type=Path, default=None, metavar="DIR",
                   help="pipeline folder with the frozen parts every run starts from (default: the shipped "
                        f"{ABLATION_BASE}, the paper's design, which results/ was measured on)")
    p.add_argument("--num-videos", type=argtypes.positive_int, default=28, help="generated videos per run (table 1)")
    p.add_argument("--num-clips", type=argtypes.positive_int, default=16,
                   help="held-out clips per run (tables 2 and 3)")
    p.add_argument("--eval-steps", type=argtypes.positive_int, default=25, help="sampling steps of the evaluation")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--threads", type=argtypes.positive_int, default=None,
                   help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--table-only", action="store_true",
                   help="only write OUT/TABLE.md and .json from the runs already finished (train and evaluate "
                        "nothing), e.g. while another process is still filling the table")
    p.add_argument("--figure", action="store_true",
                   help="also draw OUT/TABLE.png: what each variant of one seed produces (needs the runs' weights "
                        "on this machine; only result.json is committed)")
    p.add_argument("--figure-seed", type=argtypes.nonnegative_int, default=None, metavar="K",
                   help="the seed --figure draws (default: of the seeds whose runs all have their weights here, "
                        "the one with the most runs)")
    p.set_defaults(func=cmd_ablate)
