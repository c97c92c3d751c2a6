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

import math

import torch

from minifusion.data.vocabulary import COLOR_NAMES, HELDOUT_COMBINATIONS, SHAPES
from minifusion.eval.attribute_classifier import AttributeClassifier
from minifusion.eval.pixel_metrics import dominant_color

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


__all__ = ["format_t2i_scores", "score_t2i", "t2i_prompts"]
