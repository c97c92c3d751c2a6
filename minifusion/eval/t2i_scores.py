"""Does the text-to-image model draw the prompted colour and shape? ``python -m minifusion evaluate-t2i``.

The T2I stage (FusionFrames, section 3: the model every video stage is built on) is judged on
the images it samples for ``a {color} {shape} moves {direction}`` over every (colour, shape)
pair: each image is shown to the shipped attribute classifier as a still video (its colour and
shape heads read still frames of real clips at 100% and 99.3-99.6%), and its dominant
foreground colour is read from the pixels as well. Pairs that the training split never shows
together (``HELDOUT_COMBINATIONS``) are reported apart: they test whether colour and shape
words compose.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from minifusion.argtypes import int_at_least
from minifusion.data.vocabulary import COLOR_NAMES, HELDOUT_COMBINATIONS, SHAPES
from minifusion.eval.attribute_classifier import AttributeClassifier
from minifusion.eval.pixel_metrics import dominant_color
from minifusion.eval.toy_metrics import EVAL_WEIGHTS_DIR

DIRECTIONS = ("left", "right", "up", "down")


def t2i_prompts(samples_per_pair: int = 4) -> list[dict]:
    """``samples_per_pair`` prompts per (colour, shape) pair, cycling through 4 directions."""
    return [{"prompt": f"a {c} {s} moves {DIRECTIONS[k % 4]}", "color": c, "shape": s,
             "heldout": (c, s) in HELDOUT_COMBINATIONS}
            for c in COLOR_NAMES for s in SHAPES for k in range(samples_per_pair)]


@torch.no_grad()
def score_t2i(parts: dict, classifier: AttributeClassifier, *, samples_per_pair: int = 4, seed: int = 0,
              num_inference_steps: int = 25, guidance_scale: float = 5.0, batch_size: int = 64) -> dict:
    """Colour (classifier and pixels) and shape accuracy of T2I samples, all / seen / held-out pairs."""
    from minifusion.training.recipes.t2i import sample_t2i

    prompts = t2i_prompts(samples_per_pair)
    generator = torch.Generator().manual_seed(seed)
    images = torch.cat([sample_t2i(parts["unet"], parts["text_encoder"], parts["autoencoder"],
                                   [p["prompt"] for p in prompts[i:i + batch_size]], scheduler=parts["scheduler"],
                                   num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                   generator=generator).cpu()
                        for i in range(0, len(prompts), batch_size)])  # (N, 3, H, W) in [-1, 1]
    stills = images[:, :, None].expand(-1, -1, 8, -1, -1)  # (N, 3, 8, H, W): a still video
    predicted = classifier.predict(stills)
    pixel_colors = dominant_color(stills)
    rows = [{**p, "found_color": predicted["color"][i], "found_shape": predicted["shape"][i],
             "pixel_color": pixel_colors[i]} for i, p in enumerate(prompts)]

    def shares(subset):
        n = len(subset)
        return {"num_images": n,
                "color": sum(r["found_color"] == r["color"] for r in subset) / n if n else math.nan,
                "pixel_color": sum(r["pixel_color"] == r["color"] for r in subset) / n if n else math.nan,
                "shape": sum(r["found_shape"] == r["shape"] for r in subset) / n if n else math.nan}

    return {"all": shares(rows), "seen": shares([r for r in rows if not r["heldout"]]),
            "heldout": shares([r for r in rows if r["heldout"]]), "images": images, "rows": rows,
            "settings": {"samples_per_pair": samples_per_pair, "seed": seed, "steps": num_inference_steps,
                         "guidance_scale": guidance_scale}}


def format_t2i_scores(results: dict[str, dict]) -> str:
    """One line per (model, pairs): colour by the classifier and by the pixels, shape."""
    lines = [f"  {'model':<28} {'pairs':<8} {'images':>6}  {'colour':>7} {'colour (pixels)':>15} {'shape':>7}"]
    for name, r in results.items():
        for pairs in ("all", "seen", "heldout"):
            s = r[pairs]
            lines.append(f"  {name:<28} {pairs:<8} {s['num_images']:>6}  {s['color']:>7.1%} {s['pixel_color']:>15.1%} "
                         f"{s['shape']:>7.1%}")
    return "\n".join(lines)


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


def add_evaluate_t2i_parser(sub) -> None:
    p = sub.add_parser("evaluate-t2i", help="colour and shape accuracy of a pipeline folder's text-to-image model",
                       description=cmd_evaluate_t2i.__doc__,
                       epilog="Example: python -m minifusion evaluate-t2i --checkpoint runs/shapes --grid t2i.png")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                   help="pipeline folder with autoencoder/, text_encoder/, unet/, scheduler/ (default: the shipped one)")
    p.add_argument("--compare", type=Path, default=None, metavar="DIR",
                   help="a second pipeline folder whose T2I is scored beside it (default: the shipped one, when "
                        "--checkpoint is another)")
    p.add_argument("--no-compare", action="store_true", help="do not score a second T2I beside it")
    p.add_argument("--samples-per-pair", type=int_at_least(1), default=4, metavar="N",
                   help="images per (colour, shape) pair (default 4: 112 images)")
    p.add_argument("--steps", type=int_at_least(1), default=25, help="DDIM steps (default 25)")
    p.add_argument("--guidance", type=float, default=5.0, help="guidance scale s (default 5, the t2i recipe's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise (default 0)")
    p.add_argument("--metrics", type=Path, default=None, metavar="DIR",
                   help="metric weights (default: the shipped data_samples/checkpoints/eval)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the figures to FILE")
    p.add_argument("--grid", type=Path, default=None, metavar="PNG",
                   help="also save one image per (model, colour, shape) as a PNG grid")
    p.set_defaults(func=cmd_evaluate_t2i)


__all__ = ["add_evaluate_t2i_parser", "format_t2i_scores", "score_t2i", "t2i_prompts"]
