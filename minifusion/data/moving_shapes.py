"""Moving Shapes: a procedurally rendered, captioned video dataset with exact ground truth.

Item i of a split is a pure function of (seed, split, i): its random
numbers come from `np.random.default_rng((seed, split_id, i))`, never from shared state,
so any sampler order, several workers, distributed ranks and an exact resume all see the
same clips. Items are dicts::

    {"video": (C, F, H, W) float32 tensor in [-1, 1],
     "caption": "a red circle moves right",
     "attributes": {"color", "shape", "motion", "direction", "speed", "size", "spin",
                    "background", "num_objects", "color2", "shape2", "wall",
                    "contact_time", "heldout", "times"}}

Attributes that do not apply hold "none" (or -1.0 for contact_time), so the default
DataLoader collate works. `times` are the frame times in source frames (k * frame_skip);
`ds.render(i, times)` renders the same clip at any other (float) times.

Splits: "train" and "val" use the same (colour, shape) pairs with different random
streams; "heldout" shows only `HELDOUT_COMBINATIONS`, which train and val never show.

Taught in notebook 01 (notebooks/01_moving_shapes.ipynb).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from minifusion.checks import check_int, check_number
from minifusion.data.clips import check_clip_length, make_params
from minifusion.data.render import ClipParams, render_clip
from minifusion.data.vocabulary import (
    BACKGROUND_NAMES,
    COLOR_NAMES,
    DIRECTION_NAMES,
    HELDOUT_COMBINATIONS,
    LOW_CONTRAST,
    MOTIONS,
    ROTATABLE_SHAPES,
    SHAPES,
    check_choice,
    check_choices,
)

SPLITS: tuple[str, ...] = ("train", "val", "heldout")
_SPLIT_ID = {"train": 0, "val": 1, "heldout": 2}
DEFAULT_LENGTH = {"train": 10_000, "val": 1_000, "heldout": 1_000}
Pair = tuple[str, str]


class MovingShapes(Dataset):
    """Indexed dataset of captioned Moving Shapes clips.

    Args:
        split: "train", "val" or "heldout".
        num_frames: frames per clip (>= 2).
        size: frame height and width in pixels (>= 8).
        frame_skip: source frames between returned frames (the toy keyframe model uses 4).
        seed: base seed (int >= 0); different seeds give different clips.
        length: number of items (default 10000 for train, 1000 for val and heldout).
        colors, shapes, motions, directions: optional lists restricting the attributes drawn.
        backgrounds: backgrounds drawn from ("black", "light"); default black only.
        simple_fraction: share of clips in the simplest form "a {color} {shape} moves {direction}";
            the rest is spread evenly over modified moves, two shapes, bounces, rotates, grows, shrinks.
    """

    def __init__(
        self,
        split: str = "train",
        *,
        num_frames: int = 8,
        size: int = 64,
        frame_skip: int = 4,
        seed: int = 0,
        length: int | None = None,
        colors: Sequence[str] | None = None,
        shapes: Sequence[str] | None = None,
        motions: Sequence[str] | None = None,
        directions: Sequence[str] | None = None,
        backgrounds: Sequence[str] = ("black",),
        simple_fraction: float = 0.65,
    ) -> None:
        self.split = check_choice("split", split, SPLITS)
        self.num_frames, self.frame_skip = check_clip_length(num_frames, frame_skip)
        self.size = check_int("size", size, minimum=8, numpy=True, note="(pixels)")
        self.seed = check_int("seed", seed, minimum=0, numpy=True)
        length = DEFAULT_LENGTH[split] if length is None else length
        self.length = check_int("length", length, minimum=1, numpy=True)
        self.simple_fraction = float(check_number("simple_fraction", simple_fraction, minimum=0, maximum=1))
        self.colors = check_choices("colors", colors, COLOR_NAMES) or COLOR_NAMES
        self.shapes = check_choices("shapes", shapes, SHAPES) or SHAPES
        self.motions = check_choices("motions", motions, MOTIONS) or MOTIONS
        self.directions = check_choices("directions", directions, DIRECTION_NAMES) or DIRECTION_NAMES
        self.backgrounds = check_choices("backgrounds", backgrounds, BACKGROUND_NAMES)
        self._plan = {bg: self._plan_background(bg) for bg in self.backgrounds}

    @staticmethod
    def heldout_combinations() -> frozenset[Pair]:
        """(colour, shape) pairs that only the "heldout" split shows."""
        return HELDOUT_COMBINATIONS

    def _plan_background(self, bg: str) -> dict:
        """Pairs and clip forms available on background `bg` under the filters; fail early if none."""
        allowed = [(c, s) for c in self.colors for s in self.shapes if c not in LOW_CONTRAST[bg]]
        train = [p for p in allowed if p not in HELDOUT_COMBINATIONS]
        first = [p for p in allowed if p in HELDOUT_COMBINATIONS] if self.split == "heldout" else train
        second = allowed if self.split == "heldout" else train  # the other shape of a two-shape clip
        if not first:
            raise ValueError(
                f"no (color, shape) pair of split {self.split!r} on background {bg!r} matches colors "
                f"{list(self.colors)} and shapes {list(self.shapes)}; held-out pairs are "
                f"{sorted(HELDOUT_COMBINATIONS)}"
            )
        forms = []
        if "moves" in self.motions:
            forms.append("moves")
            if any(q != p for p in first for q in second):
                forms.append("two")
        if "bounces" in self.motions and self.num_frames >= 3:
            forms.append("bounces")
        if "rotates" in self.motions and any(s in ROTATABLE_SHAPES for _, s in first):
            forms.append("rotates")
        forms += [m for m in ("grows", "shrinks") if m in self.motions]
        if not forms:
            raise ValueError(f"motions {list(self.motions)} cannot be shown with shapes {list(self.shapes)} "
                             f"and num_frames {self.num_frames} on background {bg!r}")
        return {"first": first, "second": second, "forms": forms,
                "rotatable": [p for p in first if p[1] in ROTATABLE_SHAPES]}

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"index must be an integer, got {type(index).__name__}") from None
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} is out of range for a MovingShapes split of length {self.length}")
        return np.random.default_rng((self.seed, _SPLIT_ID[self.split], i))

    def _attributes(self, rng: np.random.Generator) -> dict:
        """Draw the attributes of one clip (the caption follows from them)."""
        bg = self.backgrounds[rng.integers(len(self.backgrounds))]
        plan = self._plan[bg]
        forms = plan["forms"]
        simple = forms[0] == "moves" and rng.random() < self.simple_fraction
        form = "simple" if simple else forms[rng.integers(len(forms))]

        def pick(seq: Sequence):
            return seq[rng.integers(len(seq))]

        pairs = plan["rotatable"] if form == "rotates" else plan["first"]
        color, shape = pick(pairs)
        attrs = {"color": color, "shape": shape, "background": bg, "motion": form, "direction": None}
        if form in ("simple", "moves", "two", "bounces"):
            attrs["direction"] = pick(self.directions)
        if form in ("simple", "moves", "two"):
            attrs["motion"] = "moves"
        if form == "two":
            attrs["color2"], attrs["shape2"] = pick([p for p in plan["second"] if p != (color, shape)])
        # Modifiers: always one for the non-simple "moves" form, half the time for the others.
        if form == "moves" or (form in ("bounces", "rotates", "grows", "shrinks") and rng.random() < 0.5):
            kind = "speed" if form in ("grows", "shrinks") or rng.random() < 0.5 else "size"
            attrs[kind] = pick(("slow", "fast") if kind == "speed" else ("small", "big"))
        return attrs

    def clip_params(self, index: int) -> ClipParams:
        """The trajectory, caption and attributes of clip `index` (no pixels rendered)."""
        rng = self._rng(index)
        return make_params(**self._attributes(rng), num_frames=self.num_frames, frame_skip=self.frame_skip, seed=rng)

    def render(self, index: int, times: Sequence[float] | np.ndarray) -> torch.Tensor:
        """Clip `index` rendered at arbitrary times (source frames): (C, len(times), H, W) in [-1, 1]."""
        return render_clip(self.clip_params(index), times, self.size)

    def __getitem__(self, index: int) -> dict:
        params = self.clip_params(index)
        video = render_clip(params, params.times, self.size)  # (C, F, H, W)
        attributes = dict(params.attributes)
        attributes["times"] = torch.from_numpy(params.times.astype(np.float32))
        return {"video": video, "caption": params.caption, "attributes": attributes}

    def __repr__(self) -> str:
        return (f"MovingShapes(split={self.split!r}, num_frames={self.num_frames}, size={self.size}, "
                f"frame_skip={self.frame_skip}, seed={self.seed}, length={self.length})")
