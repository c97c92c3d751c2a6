"""``python -m minifusion evaluate-t2i``: colour and shape of a pipeline folder's text-to-image model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from minifusion import argtypes
from minifusion.data.vocabulary import COLOR_NAMES, SHAPES
from minifusion.eval.attribute_classifier import AttributeClassifier
from minifusion.eval.t2i_scores import format_t2i_scores, score_t2i
from minifusion.eval.toy_metrics import EVAL_WEIGHTS_DIR


def cmd_evaluate_t2i(args: argparse.Namespace) -> int:
    """Colour and shape of the T2I model's images (attribute classifier on still frames, and the pixels), seen
    and held-out (colour, shape) pairs apart; the shipped pipeline's T2I beside it."""
    from minifusion.pipelines import pretrained
    from minifusion.training.recipes.t2i import load_t2i

    torch.manual_seed(args.seed)
    classifier = AttributeClassifier.from_pretrained((args.metrics or EVAL_WEIGHTS_DIR) / "attribute_classifier")
    folders = {"this T2I": args.checkpoint or pretrained()}
    other = args.compare or pretrained()
    if not args.no_compare and Path(folders["this T2I"]).resolve() != Path(other).resolve():
        folders["shipped T2I" if args.compare is None else Path(other).name] = other
    results = {}
    for name, folder in folders.items():
        results[name] = score_t2i(load_t2i(folder), classifier, samples_per_pair=args.samples_per_pair,
                                  seed=args.seed, num_inference_steps=args.steps, guidance_scale=args.guidance)
    print(f"T2I samples of 'a {{color}} {{shape}} moves {{direction}}', {args.samples_per_pair} per (colour, shape) "
          f"pair, {args.steps} DDIM steps, guidance {args.guidance:g}, seed {args.seed}:")
    for name, folder in folders.items():
        print(f"  {name}: {folder}")
    print(format_t2i_scores(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {name: {k: v for k, v in r.items() if k != "images"} | {"checkpoint": str(folders[name])}
                  for name, r in results.items()}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.grid is not None:
        from minifusion.viz import show_frames

        rows = {f"{name}: {c}": r["images"][[i for i, p in enumerate(r["rows"]) if p["color"] == c][::args.samples_per_pair]]
                .transpose(0, 1) for name, r in results.items() for c in COLOR_NAMES}  # (C, 4 shapes, H, W)
        fig = show_frames(rows, labels=list(SHAPES))
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.grid, dpi=80, bbox_inches="tight")
        print(f"wrote {args.grid}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate-t2i", help="colour and shape accuracy of a pipeline folder's text-to-image model",
                       description=cmd_evaluate_t2i.__doc__,
                       epilog="Example: python -m minifusion evaluate-t2i --checkpoint runs/shapes --grid t2i.png")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                   help="pipeline folder with autoencoder/, text_encoder/, unet/, scheduler/ (default: the shipped one)")
    p.add_argument("--compare", type=Path, default=None, metavar="DIR",
                   help="a second pipeline folder whose T2I is scored beside it (default: the shipped one, when "
                        "--checkpoint is another)")
    p.add_argument("--no-compare", action="store_true", help="do not score a second T2I beside it")
    p.add_argument("--samples-per-pair", type=argtypes.positive_int, default=4, metavar="N",
                   help="images per (colour, shape) pair (default 4: 112 images)")
    p.add_argument("--steps", type=argtypes.positive_int, default=25, help="DDIM steps (default 25)")
    p.add_argument("--guidance", type=float, default=5.0, help="guidance scale s (default 5, the t2i recipe's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise (default 0)")
    p.add_argument("--metrics", type=Path, default=None, metavar="DIR",
                   help="metric weights (default: the shipped data_samples/checkpoints/eval)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the figures to FILE")
    p.add_argument("--grid", type=Path, default=None, metavar="PNG",
                   help="also save one image per (model, colour, shape) as a PNG grid")
    p.set_defaults(func=cmd_evaluate_t2i)
