"""The caption language alone: random sentences of the Moving Shapes grammar, for text-only training.

FusionFrames (arXiv 2311.13073, section 3) conditions on a language model trained on text alone
(Flan-UL2), never on the video data. The toy counterpart is trained on this corpus: captions drawn
from ``caption_for`` with every form and modifier of the grammar (single and two-shape captions,
every motion, direction, speed, size and background) and every (colour, shape) pair - held-out
pairs included, because text pretraining knows nothing of which pairs a video split shows.

``random_attributes(rng)`` draws one caption's attributes; ``CaptionCorpus`` is an indexed dataset
whose item i (``{"caption": str, "attributes": dict}``) is a pure function of (seed, i).

Taught in notebook 05 (notebooks/05_unet_blocks.ipynb).
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from minifusion.checks import check_number, positive_int
from minifusion.data.captions import caption_for, parse_caption
from minifusion.data.vocabulary import (
    BACKGROUND_NAMES,
    COLOR_NAMES,
    DIRECTION_NAMES,
    LOW_CONTRAST,
    MOTIONS,
    NONE,
    ROTATABLE_SHAPES,
    SHAPES,
    SIZES,
    SPEEDS,
)

TWO_SHAPE_FRACTION = 0.25  # share of two-shape captions ("a red circle and a blue square move left")


def random_attributes(rng: np.random.Generator, *, two_shape_fraction: float = TWO_SHAPE_FRACTION) -> dict:
    """Attributes of one random grammatical caption (the keys ``parse_caption`` returns)."""
    background = str(rng.choice(BACKGROUND_NAMES))
    colors = [c for c in COLOR_NAMES if c not in LOW_CONTRAST[background]]
    out = {"background": background, "color": str(rng.choice(colors)), "speed": "normal", "size": "normal",
           "color2": NONE, "shape2": NONE, "direction": NONE}
    if rng.random() < two_shape_fraction:
        first, second = rng.choice(len(colors) * len(SHAPES), size=2, replace=False)  # two different shapes
        out["color"], out["shape"] = colors[first // len(SHAPES)], SHAPES[first % len(SHAPES)]
        out["color2"], out["shape2"] = colors[second // len(SHAPES)], SHAPES[second % len(SHAPES)]
        out["motion"], out["direction"] = "moves", str(rng.choice(DIRECTION_NAMES))
        return out
    out["motion"] = str(rng.choice(MOTIONS))
    out["shape"] = str(rng.choice(ROTATABLE_SHAPES if out["motion"] == "rotates" else SHAPES))
    if out["motion"] == "moves":
        out["direction"] = str(rng.choice(DIRECTION_NAMES))
    out["speed"], out["size"] = str(rng.choice(SPEEDS)), str(rng.choice(SIZES))
    return out


class CaptionCorpus(Dataset):
    """``length`` random captions of the grammar; item i = ``{"caption", "attributes"}`` from (seed, i).

    Args:
        length: number of items.
        seed: corpus seed.
        two_shape_fraction: share of two-shape captions.
        captions: instead of the grammar, cycle through these captions (a ``--data`` folder's);
            their attributes are parsed where they fit the grammar, else ``{}``.
    """

    def __init__(self, length: int = 100_000, *, seed: int = 0, two_shape_fraction: float = TWO_SHAPE_FRACTION,
                 captions: list[str] | None = None) -> None:
        positive_int("length", length)
        check_number("two_shape_fraction", two_shape_fraction, minimum=0, maximum=1)
        if captions is not None and (not captions or not all(isinstance(c, str) and c.strip() for c in captions)):
            raise ValueError("captions must be a non-empty list of non-empty strings")
        self.length, self.seed, self.two_shape_fraction = length, int(seed), float(two_shape_fraction)
        self.captions = None if captions is None else list(captions)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} is out of range for a CaptionCorpus of {self.length} captions")
        if self.captions is not None:
            caption = self.captions[index % len(self.captions)]
            try:
                attributes = parse_caption(caption)
            except ValueError:
                attributes = {}
            return {"caption": caption, "attributes": attributes}
        attributes = random_attributes(np.random.default_rng((self.seed, int(index))),
                                       two_shape_fraction=self.two_shape_fraction)
        # A bounce's direction is not a caption word (``parse_caption`` gives "none"); the grammar needs one.
        words = {**attributes, "direction": "right"} if attributes["motion"] == "bounces" else attributes
        return {"caption": caption_for(**words), "attributes": attributes}


__all__ = ["TWO_SHAPE_FRACTION", "CaptionCorpus", "random_attributes"]
